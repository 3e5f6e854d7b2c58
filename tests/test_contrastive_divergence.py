"""CD, PCD and short-run MLE: loss formula, buffer mechanics, and consistency on a Gaussian."""
import pytest
import torch

from ebmlab import ConfigError
from ebmlab.energies.quadratic import Quadratic
from ebmlab.objectives import ContrastiveDivergence, PersistentCD, ShortRunMLE, build
from ebmlab.samplers import MALA, ULA


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor([[1.4, 0.0], [0.6, 0.8]], dtype=torch.float64)
    return torch.randn(n, 2, generator=g, dtype=torch.float64) @ L.T + torch.tensor([1.0, -1.0], dtype=torch.float64)


def _train(objective, x, steps, lr, seed=0):
    q = Quadratic(2).double()
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    means, covs = [], []
    for it in range(steps):
        idx = torch.randint(0, x.shape[0], (256,), generator=g)
        out = objective(q, x[idx], generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if it >= steps // 2:  # Polyak averaging of the second half of the iterates
            means.append(q.mean.detach().clone())
            covs.append(q.covariance().detach().clone())
    return torch.stack(means).mean(0), torch.stack(covs).mean(0)


@pytest.mark.parametrize("name", ["pcd", "short_run", "cd"])
def test_mcmc_mle_objectives_recover_the_gaussian_mle(name):
    # MALA targets p_theta exactly, so with enough steps the gradient is the MLE gradient and the fixed point is the
    # sample mean and (1/n) covariance. Starting point: N(0, I), far from the data (mean (1,-1), var 1.96/1.0).
    x = _data(4000)
    steps = {"pcd": 10, "short_run": 25, "cd": 10}[name]
    kwargs = {"sampler": MALA(step_size=0.5), "steps": steps}
    if name == "pcd":
        kwargs.update(buffer_size=512, reinit_prob=0.0, init="gaussian")
    if name == "short_run":
        kwargs.update(init="gaussian")
    obj = build(name, **kwargs)
    if hasattr(obj, "prepare"):
        obj.prepare(x)
    mean, cov = _train(obj, x, steps=600, lr=0.02)
    # Tolerance: stochastic-approximation noise of Polyak-averaged Adam with 256-row batches and 256 MCMC negatives
    # (sd of a mean estimate from 256 draws is ~0.09; averaging 300 correlated iterates reduces it several-fold).
    assert torch.allclose(mean, x.mean(0), atol=0.08), (mean, x.mean(0))
    assert torch.allclose(cov, torch.cov(x.T, correction=0), atol=0.15), (cov, torch.cov(x.T))


def test_loss_is_data_energy_minus_negative_energy_plus_penalty():
    q = Quadratic(2).double()
    x = _data(64)
    obj = ContrastiveDivergence(sampler=ULA(step_size=0.01), steps=1, energy_reg=0.5)
    g = torch.Generator().manual_seed(0)
    out = obj(q, x, generator=g)
    # Reproduce the negatives with the same generator state and compute the loss by hand
    g2 = torch.Generator().manual_seed(0)
    state = obj.sampler.init(q, x)
    state, _ = obj.sampler.step(q, state, generator=g2)
    u_x, u_n = q(x), q(state.x)
    expected = u_x.mean() - u_n.mean() + 0.5 * (u_x.pow(2).mean() + u_n.pow(2).mean())
    assert torch.allclose(out.loss, expected)
    assert out.stats["energy_gap"] == pytest.approx(float((u_n.mean() - u_x.mean()).detach()))
    assert out.stats["acceptance"] == 1.0


def test_negatives_carry_no_gradient_to_the_sampler_path():
    q = Quadratic(2).double()
    x = _data(32)
    out = ContrastiveDivergence(steps=2)(q, x)
    grads = torch.autograd.grad(out.loss, list(q.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in q.parameters())  # sampling did not accumulate parameter gradients


def test_pcd_buffer_persists_reinitialises_and_round_trips():
    q = Quadratic(2).double()
    x = _data(100)
    obj = PersistentCD(steps=1, buffer_size=50, reinit_prob=0.0, init="uniform")
    obj.prepare(x)
    g = torch.Generator().manual_seed(0)
    obj(q, x[:10], generator=g)
    buf1 = obj.negatives().clone()
    lo, hi = x.min(0).values, x.max(0).values
    assert buf1.shape == (50, 2)
    obj(q, x[:10], generator=g)
    changed = (obj.negatives() != buf1).any(1)
    assert 1 <= int(changed.sum()) <= 10  # only the drawn chains moved
    state = obj.state_dict()
    other = PersistentCD(steps=1, buffer_size=50)
    other.load_state_dict(state)
    assert torch.equal(other.negatives(), obj.negatives())
    # with reinit_prob=1 every chain restarts from the uniform box before its step
    full = PersistentCD(steps=1, buffer_size=50, reinit_prob=1.0)
    full.prepare(x)
    out = full(q, x[:40], generator=g)
    assert out.stats["reinit_fraction"] == 1.0
    assert (buf1[~torch.isnan(buf1[:, 0])] >= lo - 0.1 * (hi - lo) - 1e-9).all()


@pytest.mark.parametrize(
    "factory, kwargs, match",
    [
        (ContrastiveDivergence, {"steps": 0}, "steps must be an integer >= 1"),
        (ContrastiveDivergence, {"sampler": 3}, "sampler must be a Sampler or a registered name"),
        (ContrastiveDivergence, {"sampler": "langevin2"}, "unknown sampler 'langevin2'; valid names are: .*mala"),
        (PersistentCD, {"reinit_prob": 1.5}, r"reinit_prob must be in \[0, 1\]"),
        (PersistentCD, {"buffer_size": 0}, "buffer_size"),
        (PersistentCD, {"init": "laplace"}, "init must be one of uniform, gaussian, bernoulli"),
        (ShortRunMLE, {"energy_reg": -1}, "energy_reg must be a finite number >= 0"),
        # the step size belongs to the Sampler object (one place for it), not to the objective
        (lambda **k: build("cd", **k), {"step_size": 0.2}, "objective 'cd' has no option 'step_size'; allowed options: sampler, steps"),
        (lambda **k: build("pcd", **k), {"n_steps": 3}, "objective 'pcd' has no option 'n_steps'; allowed options: sampler, steps"),
    ],
)
def test_bad_options_raise_config_error(factory, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        factory(**kwargs)


def test_unknown_objective_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"unknown objective 'cdd'; valid names are: .*cd.*pcd"):
        build("cdd")
