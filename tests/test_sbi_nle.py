"""Conditional energies, context pass-through of the objectives, NLE / NPE fitting and batched posterior sampling."""
import math
import warnings

import pytest
import torch

from ebmlab import ConfigError, DataError, SamplingWarning
from ebmlab.energies.base import Energy
from ebmlab.energies.conditional import BoundContext, ConditionalMLPEnergy
from ebmlab.objectives.denoising_score_matching import DenoisingScoreMatching
from ebmlab.objectives.energy_discrepancy import EnergyDiscrepancy
from ebmlab.objectives.nce import NoiseContrastiveEstimation
from ebmlab.sbi import NLE, NPE, get_task
from ebmlab.sbi.posterior import sample_batched
from ebmlab.samplers import sample


def gen(k):
    return torch.Generator().manual_seed(k)


class ShiftedQuadratic(Energy):
    """U(x | c) = ½ a |x − c|² (conditional) — or ½ a |x|² when called without context."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(1.3))

    def forward(self, x, context=None):
        c = 0.0 if context is None else context
        return 0.5 * self.a * (x - c).pow(2).sum(1)


@pytest.mark.parametrize("objective", [EnergyDiscrepancy(t=0.5, m=3), DenoisingScoreMatching(sigma=0.3)])
def test_context_is_passed_through_ed_and_dsm_exactly(objective):
    # translation invariance: the loss of U(x | c) on (x, c) equals the loss of U(x) on x − c, with the same noise
    x = torch.randn(64, 2, generator=gen(1))
    c = torch.randn(64, 2, generator=gen(2))
    e = ShiftedQuadratic()
    with_ctx = objective(e, x, generator=gen(3), context=c).loss
    shifted = objective(e, x - c, generator=gen(3)).loss
    assert torch.allclose(with_ctx, shifted, atol=1e-5)
    with_ctx.backward()
    assert e.a.grad is not None and torch.isfinite(e.a.grad)


def test_context_reaches_the_energy_in_nce():
    x = torch.randn(64, 2, generator=gen(4))
    c = torch.randn(64, 2, generator=gen(5))
    e = ShiftedQuadratic()
    nce = NoiseContrastiveEstimation(log_z_init=0.0)
    a = nce(e, x, generator=gen(6), context=c).loss
    b = nce(e, x, generator=gen(6), context=torch.zeros_like(c)).loss
    assert torch.isfinite(a) and not torch.allclose(a, b)


def test_conditional_mlp_and_bound_context_work_with_the_samplers():
    with torch.random.fork_rng(devices=[]):
        net = ConditionalMLPEnergy(2, 3, hidden=(16,))
    from ebmlab._core.random import init_parameters_
    init_parameters_(net, gen(7))
    x = torch.randn(5, 2, generator=gen(8))
    c = torch.randn(5, 3, generator=gen(9))
    bound = BoundContext(net, c)
    assert torch.allclose(bound(x), net(x, context=c))
    draws, info = sample(bound, "mala", x, 10, burn_in=5, generator=gen(10), adapt="per_chain")
    assert draws.shape == (10, 5, 2) and torch.isfinite(draws).all()
    with pytest.raises(ConfigError, match="conditional energy"):
        net(x)
    with pytest.raises(DataError, match="context must have shape"):
        net(x, context=torch.zeros(4, 3))


@pytest.mark.parametrize("cls", [NLE, NPE])
def test_estimators_learn_the_gaussian_linear_posterior_mean(cls):
    """Closed form p(θ | x_o) = N(x_o / 2, 0.05 I); an untrained or wrong model sits at the prior mean 0. (ED noise
    variance t = 0.05: this smooth 20-D joint is learnt in 400 steps at it; the default t = 0.01, chosen for
    two_moons' thin crescents, needs thousands of steps.)"""
    task = get_task("gaussian_linear")
    th = task.sample_prior(3000, generator=gen(11))
    x = task.simulate(th, generator=gen(12))
    est = cls(objective="ed", hidden=(64, 64), steps=400, objective_params={"t": 0.05, "m": 16},
              random_state=0).fit(th, x, prior=task)
    x_o = torch.stack([task.observation(1), task.observation(2)])
    post, info = est.sample_posterior(x_o, 400, generator=gen(13), chains_per_observation=40, burn_in=150, thin=2,
                                      return_info=True, warn=False)
    assert post.shape == (2, 400, 10) and len(info.per_observation) == 2
    err = (post.double().mean(1) - x_o / 2).abs()
    prior_err = (x_o / 2).abs()
    assert float(err.mean()) < 0.5 * float(prior_err.mean())


def test_sample_posterior_shapes_support_and_bad_input():
    task = get_task("two_moons")
    th = task.sample_prior(500, generator=gen(14))
    x = task.simulate(th, generator=gen(15))
    est = NLE(hidden=(16, 16), steps=30, random_state=0)
    with pytest.raises(ConfigError, match="not fitted"):
        est.sample_posterior(task.observation(1), 10)
    est.fit(th, x, prior=task)
    one = est.sample_posterior(task.observation(1), 50, generator=gen(16), chains_per_observation=10, burn_in=20,
                               warn=False)
    assert one.shape == (50, 2) and task.support.contains(one.double()).all()
    auto, info = est.sample_posterior(torch.stack([task.observation(1), task.observation(2)]), 40, generator=gen(19),
                                      chains_per_observation=10, burn_in=20, sampler="auto", advise_budget=400,
                                      return_info=True, warn=False)
    assert auto.shape == (2, 40, 2) and info.advice is not None and len(info.advice.ranking) == 4
    assert info.sampler == info.advice.ranking[0].kwargs["name"]
    _, info = est.sample_posterior(torch.stack([task.observation(1), task.observation(2)]), 20, generator=gen(20),
                                   chains_per_observation=10, burn_in=20, return_info=True, warn=False, labels=[1, 2])
    assert [d.observation for d in info.per_observation] == [1, 2] and info.summary().startswith("obs 1: ")
    with pytest.raises(DataError, match=r"x_o must have shape \[2\]"):
        est.sample_posterior(torch.zeros(3), 10)
    with pytest.raises(DataError, match="outside the prior support"):
        NLE(steps=1).fit(th + 5.0, x, prior=task)


def test_a_stuck_observation_is_named_in_a_warning():
    # observation label 8 has curvature 1e6: with one burn-in step its chains keep the initial step size and stick
    def potential(phi, x):
        return 0.5 * x[:, 0] * phi.pow(2).sum(1)

    x_obs = torch.tensor([[1.0], [1e6]])
    propose = lambda n: (torch.randn(n, 2, generator=gen(17)), torch.zeros(n))
    with pytest.warns(SamplingWarning, match="observation 8") as rec:
        theta, info = sample_batched(potential, x_obs, 100, dim=2, propose=propose, to_theta=lambda p: p,
                                     sampler="mala", chains_per_observation=10, burn_in=1, thin=1, init="prior",
                                     generator=gen(18), labels=[7, 8])
    assert any("observation 8: " in str(w.message) and "10 of 10 chains stuck" in str(w.message) for w in rec)
    assert info.per_observation[1].stuck_chains > 0 and info.per_observation[0].stuck_chains == 0
    assert theta.shape == (2, 100, 2)


def test_pcd_trains_the_joint_energy_of_nle_and_npe_refuses_it():
    """objective="pcd": persistent MALA chains on the prior-tilted joint energy (the stats show PCD's energy gap and
    acceptance); NPE's conditional energy has no joint to sample, so it is a one-line ConfigError."""
    task = get_task("gaussian_linear")
    th = task.sample_prior(400, generator=gen(21))
    x = task.simulate(th, generator=gen(22))
    est = NLE(objective="pcd", hidden=(16, 16), steps=30, batch_size=64, random_state=0).fit(th, x, prior=task)
    last = est.history_.stats[-1]
    assert "energy_gap" in last and 0.0 < last["acceptance"] <= 1.0 and math.isfinite(est.history_.loss[-1])
    post = est.sample_posterior(task.observation(1), 20, generator=gen(23), chains_per_observation=4, burn_in=10,
                                warn=False)
    assert post.shape == (20, 10) and torch.isfinite(post).all()
    with pytest.raises(ConfigError, match="'pcd' trains the joint energy of NLE only"):
        NPE(objective="pcd", steps=1).fit(th, x, prior=task)


def test_sir_init_mode_weights_and_chunking(monkeypatch):
    """SIR starts put the exact share of chains in each of two separated modes (weights .3 / .7, uniform proposal):
    within 4 binomial standard errors; chunked evaluation gives the same draws as one call."""
    import ebmlab.sbi.posterior as post

    def potential(phi, x):                        # −log[.3 N(φ; −3 + x, .1²) + .7 N(φ; 3 + x, .1²)], x = 0
        phi = phi[:, 0] - x[:, 0]
        comp = torch.stack([math.log(.3) - 0.5 * ((phi + 3) / .1) ** 2, math.log(.7) - 0.5 * ((phi - 3) / .1) ** 2])
        return -torch.logsumexp(comp, 0)

    def propose(n, g):
        phi = torch.rand(n, 1, generator=g) * 10 - 5
        return phi, torch.full((n,), -math.log(10.0))

    x = torch.zeros(1, 1)
    chains, n = 4000, 200_000
    g1 = torch.Generator().manual_seed(3)
    start = post.sir_init(potential, x, chains, lambda m: propose(m, g1), n, g1)
    share = float((start[:, 0] < 0).double().mean())
    # importance-sampling ESS here is ~ n / 8 (uniform proposal on a 10-wide box, modes of width .1), far above chains
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / chains), share
    monkeypatch.setattr(post, "SIR_CHUNK", 7_777)
    g2 = torch.Generator().manual_seed(3)
    chunked = post.sir_init(potential, x, chains, lambda m: propose(m, g2), n, g2)
    assert torch.equal(chunked, start)


def test_sir_init_doubles_the_proposals_until_the_ess_is_reached():
    """Modes of width .01 on a 10-wide box: 1,000 prior draws have an ESS of about 2; the pool doubles (1,000,
    2,000, 4,000, ...) until the ESS reaches min_init_ess, then the mode share is within 4 standard errors of .3;
    max_proposals caps the doubling; bad values are one-line errors."""
    import ebmlab.sbi.posterior as post
    from ebmlab import ConfigError

    def potential(phi, x):
        phi = phi[:, 0] - x[:, 0]
        comp = torch.stack([math.log(.3) - 0.5 * ((phi + 3) / .01) ** 2, math.log(.7) - 0.5 * ((phi - 3) / .01) ** 2])
        return -torch.logsumexp(comp, 0)

    def propose(n, g):
        return torch.rand(n, 1, generator=g) * 10 - 5, torch.full((n,), -math.log(10.0))

    g = torch.Generator().manual_seed(4)
    x = torch.zeros(2, 1)
    start, ess, total = post.sir_init(potential, x, 2000, lambda m: propose(m, g), 1000, g, min_init_ess=300,
                                      max_proposals=10**6, return_info=True)
    assert start.shape == (4000, 1)
    for j in range(2):
        assert ess[j] >= 300 and total[j] in {1000 * 2 ** i for i in range(11)} and total[j] >= 64_000
        share = float((start[2000 * j:2000 * (j + 1), 0] < 0).double().mean())
        assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 * (1 / 2000 + 1 / ess[j])), share
    _, ess, total = post.sir_init(potential, x[:1], 10, lambda m: propose(m, g), 1000, g, min_init_ess=10**9,
                                  max_proposals=5000, return_info=True)
    assert total == [5000] and ess[0] < 300
    with pytest.raises(ConfigError, match="max_proposals must be >= n_proposals"):
        post.sir_init(potential, x, 10, lambda m: propose(m, g), 1000, g, max_proposals=10)
    with pytest.raises(ConfigError, match="min_init_ess must be a number >= 0"):
        post.sir_init(potential, x, 10, lambda m: propose(m, g), 1000, g, min_init_ess=-1)


@pytest.mark.parametrize("task_name", ["two_moons", "slcp", "gaussian_linear"])
def test_fitted_estimators_pickle(task_name):
    """A fitted NLE survives pickle (tasks hold no local functions): same potential after the round trip."""
    import pickle

    task = get_task(task_name)
    g = torch.Generator().manual_seed(0)
    theta = task.sample_prior(64, generator=g)
    est = NLE(steps=3, batch_size=32, hidden=(16,), random_state=0).fit(theta, task.simulate(theta, generator=g),
                                                                       prior=task)
    back = pickle.loads(pickle.dumps(est))
    z = torch.randn(5, task.dim_theta + task.dim_x, generator=g)
    assert torch.equal(back.energy_(z), est.energy_(z))
    assert back.prior_.symmetries == () or back.prior_.canonical(theta[:3]).shape == theta[:3].shape


def test_nle_and_npe_follow_the_estimator_conventions():
    """Keyword-only constructor that stores its parameters; get_params / set_params / repr; unknown names refused."""
    from ebmlab import ConfigError
    from ebmlab.sbi import NPE

    for cls in (NLE, NPE):
        est = cls(steps=7, hidden=(16,), random_state=3)
        params = est.get_params()
        assert params["steps"] == 7 and params["hidden"] == (16,) and params["objective"] == "ed"
        assert set(params) == set(cls.parameter_names())
        assert est.set_params(lr=5e-4) is est and est.lr == 5e-4
        assert repr(est).startswith(f"{cls.__name__}(objective='ed'")
        assert not [k for k in vars(est) if k.endswith("_")]  # nothing fitted before fit
        with pytest.raises(ConfigError, match="unknown parameter 'stepz'"):
            est.set_params(stepz=3)
        with pytest.raises(TypeError):
            cls("ed")  # keyword-only, as EnergyModel and GEBM


def test_nle_bounded_theta_input_feeds_the_network_the_standardised_box_parameters():
    """theta_input="bounded" (default): E_ψ(ξ | η) = net(ξ, (T(φ(η)) − mean θ) / std θ); "unconstrained" feeds η;
    anything else is a one-line error naming the allowed values."""
    from ebmlab import ConfigError
    from ebmlab.sbi import get_task

    task = get_task("two_moons")
    g = torch.Generator().manual_seed(0)
    theta = task.sample_prior(200, generator=g)
    x = task.simulate(theta, generator=g)
    est = NLE(steps=2, batch_size=32, hidden=(8,), random_state=0).fit(theta, x, prior=task)
    wrapper = est.energy_.net
    eta = est.theta_std_(task.to_unconstrained(theta)).float()
    xi = est.x_std_(x).float()
    th_std = (theta - theta.mean(0)) / theta.std(0)
    assert torch.allclose(wrapper(xi, context=eta), wrapper.net(xi, context=th_std.float()), atol=1e-5)
    plain = NLE(steps=2, batch_size=32, hidden=(8,), random_state=0, theta_input="unconstrained").fit(
        theta, x, prior=task)
    assert isinstance(plain.energy_.net, ConditionalMLPEnergy)
    with pytest.raises(ConfigError, match="theta_input must be one of bounded, unconstrained; got 'box'"):
        NLE(steps=2, theta_input="box").fit(theta, x, prior=task)


def test_run_case_reports_the_sir_start_per_observation():
    """``ebmlab.bench.sbi.run_case`` records the SIR start's ESS and prior draws per observation: the first pool is
    n_proposals, doubled while the ESS is below min_init_ess, never above max_proposals."""
    from ebmlab.bench.sbi import run_case

    r = run_case("two_moons", 300, steps=20, n_samples=40, observations=(1, 2), hidden=(16,), seed=0,
                 sample_kwargs={"chains_per_observation": 4, "burn_in": 5, "thin": 1, "n_proposals": 1000,
                                "min_init_ess": 50.0, "max_proposals": 64_000})
    assert len(r["init_ess"]) == 2 and len(r["init_proposals"]) == 2
    for ess, n in zip(r["init_ess"], r["init_proposals"]):
        assert n in {1000 * 2 ** i for i in range(7)}
        assert ess >= 50.0 or n == 64_000
        assert 1.0 <= ess <= n
    assert 0.0 <= r["c2st_mean"] <= 1.0


@pytest.mark.parametrize("cls", [NLE, NPE])
def test_ensemble_energy_is_the_mean_of_members_fitted_alone(cls):
    """ensemble_size=K trains K networks on the same simulations with seeds seed + k · MEMBER_SEED_STRIDE and uses
    the mean energy (a product of experts): each member equals the single fit with that seed, member 0 is the
    plain ensemble_size=1 fit, and members differ."""
    from ebmlab.sbi.estimators import MEMBER_SEED_STRIDE

    task = get_task("two_moons")
    g = torch.Generator().manual_seed(0)
    theta = task.sample_prior(200, generator=g)
    x = task.simulate(theta, generator=g)
    kw = dict(steps=5, batch_size=32, hidden=(8,))
    ens = cls(ensemble_size=3, random_state=4, **kw).fit(theta, x, prior=task)
    singles = [cls(random_state=4 + MEMBER_SEED_STRIDE * k, **kw).fit(theta, x, prior=task) for k in range(3)]
    assert len(ens.histories_) == 3 and ens.history_ is ens.histories_[0] and ens.seed_ == 4
    z = torch.randn(7, task.dim_theta + task.dim_x, generator=g)
    eta, xi = z[:, :task.dim_theta], z[:, task.dim_theta:]
    pot = ens.posterior_potential()
    members = torch.stack([s.posterior_potential()(eta, xi) for s in singles])
    assert torch.allclose(pot(eta, xi), members.mean(0), atol=1e-5)
    assert not torch.allclose(members[0], members[1], atol=1e-3)
    assert torch.allclose(singles[0].posterior_potential()(eta, xi),
                          cls(random_state=4, **kw).fit(theta, x, prior=task).posterior_potential()(eta, xi))
    post = ens.sample_posterior(task.observation(1), 50, generator=gen(1), chains_per_observation=10, burn_in=20,
                                thin=1, warn=False)
    assert post.shape == (50, task.dim_theta) and bool(torch.isfinite(post).all())
    for bad in (0, 1.5, "2"):
        with pytest.raises(ConfigError, match="ensemble_size must be an integer >= 1"):
            cls(ensemble_size=bad, **kw).fit(theta, x, prior=task)
