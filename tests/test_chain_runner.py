"""The one chain runner (ebmlab.samplers.sample): adaptation (global and per chain), the stuck-chain report, keep=,
and the global RNG left untouched."""
import math
import warnings

import pytest
import torch

import ebmlab
from ebmlab import ConfigError, SamplingWarning
from ebmlab.energies.analytic import Banana, Gaussian, GaussianMixture
from ebmlab.energies.quadratic import Quadratic
from ebmlab.samplers import HMC, MALA, ULA, Gibbs, RandomWalkMetropolis, sample
from ebmlab.samplers.adaptation import DualAveraging

DT = torch.float64


def _two_scale_mixture():
    # two modes 20 apart with standard deviations 0.05 and 2: a chain never crosses, and the best MALA step
    # differs by (2 / 0.05)^2 = 1600 between them
    means = torch.tensor([[-10.0, 0.0], [10.0, 0.0]], dtype=DT)
    return GaussianMixture(means, torch.tensor([0.05, 2.0], dtype=DT)), means


@pytest.mark.parametrize("sampler", [MALA(step_size=0.1), HMC(step_size=0.1, n_leapfrog=3),
                                     RandomWalkMetropolis(step_size=0.1)], ids=lambda s: s.name)
def test_per_chain_adaptation_tunes_each_chain_to_its_own_scale(sampler):
    mix, means = _two_scale_mixture()
    x0 = torch.cat([means[0].expand(40, 2), means[1].expand(40, 2)])
    x, info = sample(mix, sampler, x0, steps=800, burn_in=500, adapt="per_chain", generator=3)
    h = info.step_size_per_chain
    assert info.adapted == "per_chain" and h.shape == (80,)
    # every chain reaches the target acceptance, in both modes
    acc = info.acceptance_per_chain
    assert float(acc[:40].mean()) == pytest.approx(sampler.target_accept, abs=0.1)
    assert float(acc[40:].mean()) == pytest.approx(sampler.target_accept, abs=0.1)
    # step sizes scale like the mode's variance (HMC/MALA: h ~ sigma^2 ... sigma; RWM: h ~ sigma): ratio >= 20
    assert float(h[40:].median() / h[:40].median()) > 20
    # the draws of each mode have the mode's variance (MCSE from the effective sample size of each group)
    for sl, sd in ((slice(0, 40), 0.05), (slice(40, 80), 2.0)):
        v = x[:, sl].reshape(-1, 2).var(0)
        ess = ebmlab.metrics.ess(x[:, sl, 0])  # draws x chains
        assert torch.allclose(v / sd**2, torch.ones(2, dtype=DT), atol=6 * math.sqrt(2 / ess)), (v, sd, ess)


def test_global_adaptation_cannot_serve_both_scales_and_reports_it():
    mix, means = _two_scale_mixture()
    x0 = torch.cat([means[0].expand(40, 2), means[1].expand(40, 2)])
    _, info = sample(mix, MALA(step_size=0.1), x0, steps=300, burn_in=300, generator=3)
    assert info.adapted == "global" and info.step_size_per_chain is None
    acc = info.acceptance_per_chain
    assert float(acc[40:].mean()) > 0.95 > 0.3 > float(acc[:40].mean())  # one step size: too small or too large


def test_stuck_chains_are_counted_and_warned_about():
    narrow = Gaussian(torch.zeros(2, dtype=DT), 1e-4 * torch.eye(2, dtype=DT))
    x0 = torch.zeros(32, 2, dtype=DT)
    with pytest.warns(SamplingWarning, match=r"32 of 32 chains .* accepted fewer than 5%"):
        _, info = sample(narrow, MALA(step_size=1.0), x0, steps=50, adapt=False, generator=0)
    assert info.stuck_chains == 32 and info.stuck_fraction == 1.0
    assert info.stuck_chains == int((info.acceptance_per_chain < info.stuck_threshold).sum())
    # a healthy run: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        _, ok = sample(narrow, MALA(step_size=1e-5), x0, steps=200, burn_in=200, generator=0)
    assert ok.stuck_chains == 0
    # warn=False still counts (what objectives use)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        _, quiet = sample(narrow, MALA(step_size=1.0), x0, steps=50, adapt=False, warn=False, generator=0)
    assert quiet.stuck_chains == 32


def test_dispersed_starts_on_the_banana_get_stuck_globally_and_not_per_chain():
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(200, 2, generator=g, dtype=DT) * 2 - 1) * 30
    with pytest.warns(SamplingWarning, match="stuck"):
        _, glob = sample(Banana(), MALA(step_size=0.1), x0, steps=400, burn_in=300, generator=1)
    assert glob.stuck_chains > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        _, per = sample(Banana(), MALA(step_size=0.1), x0, steps=400, burn_in=300, adapt="per_chain", generator=1)
    assert per.stuck_chains == 0


def test_a_user_step_size_is_kept_exactly_without_adaptation_and_reported_with_it():
    x0 = torch.zeros(8, 2, dtype=DT)
    _, fixed = sample(Quadratic(2, dtype=DT), MALA(step_size=0.123), x0, steps=5, burn_in=5, adapt=False, generator=0)
    assert fixed.step_size == 0.123 and fixed.state.step_size == 0.123 and fixed.adapted is False
    _, tuned = sample(Quadratic(2, dtype=DT), MALA(step_size=0.123), x0, steps=5, burn_in=50, generator=0)
    assert tuned.adapted == "global" and tuned.step_size != 0.123 and tuned.step_size == tuned.state.step_size
    _, given = sample(Quadratic(2, dtype=DT), MALA(step_size=0.123), x0, steps=5, step_size=0.3, generator=0)
    assert given.step_size == 0.3


def test_keep_last_is_the_final_state_of_keep_all():
    x0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    xs, a = sample(Quadratic(3, dtype=DT), MALA(step_size=0.2), x0, steps=25, burn_in=10, generator=5)
    last, b = sample(Quadratic(3, dtype=DT), MALA(step_size=0.2), x0, steps=25, burn_in=10, generator=5, keep="last")
    assert last.shape == (16, 3) and torch.equal(last, xs[-1]) and a.acceptance_rate == b.acceptance_rate


def test_per_chain_dual_averaging_is_the_scalar_recursion_run_per_chain():
    da = DualAveraging(0.6, bounds=(1e-3, 2.0))
    h0 = torch.tensor([0.1, 0.5, 1.0], dtype=DT)
    acc = torch.rand(30, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    acc[4, 1] = float("nan")
    vec = da.init(h0)
    scal = [da.init(float(h)) for h in h0]
    for t in range(30):
        vec = da.update(vec, acc[t])
        scal = [da.update(s, float(acc[t, c])) for c, s in enumerate(scal)]
    want = torch.tensor([da.final(s) for s in scal], dtype=DT)
    assert torch.allclose(da.final(vec), want, rtol=1e-12)


def test_dual_averaging_bounds_hold_on_a_flat_energy():
    da = DualAveraging(0.574, bounds=(0.01, 1.0))
    s = da.init(0.1)
    for _ in range(200):  # every proposal accepted: the unclipped step would grow without limit
        s = da.update(s, 1.0)
    assert s.step_size == pytest.approx(1.0) and da.final(s) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="h_min <= h_max"):
        DualAveraging(0.5, bounds=(1.0, 0.1))


@pytest.mark.parametrize("kwargs, match", [
    ({"adapt": "per_chain"}, "needs burn_in > 0"),
    ({"adapt": "chainwise", "burn_in": 3}, "adapt must be"),
    ({"keep": "first"}, "keep must be"),
    ({"step_size": torch.ones(5)}, r"shape \[chains\]"),
    ({"step_size": -1.0}, "step_size"),
])
def test_bad_runner_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sample(Quadratic(2), MALA(), torch.zeros(4, 2), steps=3, **kwargs)


def test_per_chain_needs_a_sampler_that_takes_per_chain_steps():
    with pytest.raises(ConfigError, match="takes one float step size"):
        sample(Quadratic(2), ULA(), torch.zeros(4, 2), steps=3, step_size=torch.full((4,), 0.1))


def test_sampling_and_fitting_leave_the_global_rng_untouched():
    before = torch.get_rng_state()
    sample(Quadratic(2), MALA(), torch.zeros(4, 2), steps=5, burn_in=5, generator=torch.Generator().manual_seed(0))
    sample(Quadratic(2), "rwm", torch.zeros(4, 2), steps=5, generator=1)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for seed in (3, None):
        h = ebmlab.fit(Quadratic(2), x, ebmlab.objectives.build("pcd", steps=2, buffer_size=64), steps=3,
                       batch_size=16, seed=seed)
        assert isinstance(h.seed, int)
    assert torch.equal(torch.get_rng_state(), before)


def test_fit_without_a_seed_records_one_that_reproduces_the_run():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=DT)

    def run(seed):
        e = Quadratic(2, dtype=DT)
        h = ebmlab.fit(e, x, ebmlab.objectives.build("cd", steps=2), steps=5, batch_size=16, seed=seed)
        return e, h

    a, ha = run(None)
    b, hb = run(ha.seed)
    c, hc = run(None)
    assert ha.seed == hb.seed != hc.seed
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_discrete_samplers_run_through_the_same_runner():
    from ebmlab.energies.ising import IsingLattice

    e = IsingLattice(3, 0.2)
    x0 = torch.zeros(8, 9)
    xs, info = sample(e, Gibbs(), x0, steps=4, thin=2, generator=0)
    assert xs.shape == (2, 8, 9) and info.adapted is False and info.stuck_chains == 0
