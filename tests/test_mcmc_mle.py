"""MCMC-MLE (Geyer 1994): importance weights and ESS, the refresh rule, and consistency on a Gaussian.

Consistency: with the whole data set as the batch, the loss's stationary point satisfies
Σ_j w̃_j T(y_j) = mean_i T(x_i) for the Gaussian sufficient statistics T = (x, x xᵀ), i.e. the
self-normalised importance-sampling (SNIS) estimate of the model's moments equals the sample moments.  So
the fitted model's mean and covariance differ from the MLE (sample mean, 1/n sample covariance) by the
SNIS error of the final reference, whose standard deviation is sqrt(Var/ESS) (Kong 1992): sqrt(Σ_ii/ESS)
for a mean and sqrt((Σ_ij² + Σ_ii Σ_jj)/ESS) for a covariance entry.  Each is compared with the
Bonferroni normal quantile (5 quantities, family level 1e-3).
"""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from ebmlab import ConfigError
from ebmlab.energies import Quadratic
from ebmlab.objectives import MCMCMLE, build, importance_ess_fraction
from ebmlab.samplers import MALA, Info, Sampler, SamplerState

DT = torch.float64
MU = torch.tensor([1.0, -1.0], dtype=DT)
COV = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=DT)
BONFERRONI_5 = norm.ppf(1 - 1e-3 / (2 * 5))


def gaussian_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(COV).T


class ExactQuadraticSampler(Sampler):
    """Each step returns fresh exact draws from the current Quadratic model (the sanity path)."""

    name = "exact_quadratic"
    uses_grad = False

    def init(self, energy, x0):
        return SamplerState(x=x0, energy=energy(x0).detach())

    def step(self, energy, state, generator=None):
        x = energy.sample(state.x.shape[0], generator=generator).to(state.x)
        ones = torch.ones(x.shape[0], dtype=x.dtype)
        return SamplerState(x=x, energy=energy(x).detach()), Info(ones, ones.bool(), ~ones.bool(), 0.0, 1)


def test_ess_fraction_matches_numpy():
    lw = torch.randn(500, generator=torch.Generator().manual_seed(0), dtype=DT) * 1.5
    w = np.exp(lw.numpy())
    assert importance_ess_fraction(lw) == pytest.approx(w.sum() ** 2 / (len(w) * (w**2).sum()), rel=1e-12)
    assert importance_ess_fraction(torch.zeros(10)) == pytest.approx(1.0)
    assert importance_ess_fraction(torch.tensor([0.0, -1e4, -1e4])) == pytest.approx(1 / 3)


def _with_reference(obj, ref, u_ref):
    obj.load_state_dict({"reference": ref, "reference_energy": u_ref, "refreshes": torch.tensor(0)})
    return obj


def test_loss_value_and_gradient_match_importance_weights():
    x = gaussian_data(50, 1)
    ref = gaussian_data(300, 2) * 1.3
    psi = Quadratic(2, mean=[0.5, -0.5], precision=[[1.5, 0.2], [0.2, 0.7]], dtype=DT)
    theta = Quadratic(2, mean=[0.8, -0.9], precision=[[1.2, 0.4], [0.4, 0.6]], dtype=DT)
    with torch.no_grad():
        u_ref = psi(ref)
    obj = _with_reference(MCMCMLE(ess_threshold=1e-6), ref, u_ref)
    out = obj(theta, x)
    out.loss.backward()

    with torch.no_grad():
        lw = (u_ref - theta(ref)).numpy()
    w = np.exp(lw - lw.max())
    w_tilde = w / w.sum()
    expected = float(theta(x).mean()) + (np.log(np.exp(lw - lw.max()).mean()) + lw.max())
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-12)
    assert out.stats["ess_fraction"] == pytest.approx(w.sum() ** 2 / (len(w) * (w**2).sum()), rel=1e-10)
    assert out.stats["refreshed"] == 0.0

    # gradient: mean_i ∇U(x_i) - Σ_j w̃_j ∇U(y_j), with ∇_μ U(x) = -P (x - μ)
    P = theta.precision().detach().numpy()
    grad_mu = -(P @ (x.numpy() - theta.mean.detach().numpy()).T).mean(1) + (
        P @ (ref.numpy() - theta.mean.detach().numpy()).T) @ w_tilde
    assert np.allclose(theta.mean.grad.numpy(), grad_mu, rtol=1e-10, atol=1e-12)


def test_refresh_fires_only_when_ess_drops():
    x = gaussian_data(100, 3)
    energy = Quadratic(2, dtype=DT)
    obj = MCMCMLE(sampler=ExactQuadraticSampler(), n_samples=500, ess_threshold=0.5, burn_in=1, steps=1)
    g = torch.Generator().manual_seed(4)
    first = obj(energy, x, generator=g)
    assert obj.refreshes == 1 and first.stats["ess_fraction"] == pytest.approx(1.0)
    same = obj(energy, x, generator=g)       # θ unchanged: weights all equal, no refresh
    assert same.stats["refreshed"] == 0.0 and obj.refreshes == 1
    with torch.no_grad():
        energy.mean.add_(torch.tensor([3.0, 0.0], dtype=DT))   # far away: the weights degenerate
    low = importance_ess_fraction(obj.state_dict()["reference_energy"] - energy(obj.reference).detach())
    assert low < 0.5
    moved = obj(energy, x, generator=g)
    assert moved.stats["refreshed"] == 1.0 and obj.refreshes == 2
    assert moved.stats["ess_fraction_before_refresh"] == pytest.approx(low, rel=1e-10)
    assert moved.stats["ess_fraction"] == pytest.approx(1.0)
    # the refreshed reference comes from the moved model
    assert float(obj.reference[:, 0].mean()) == pytest.approx(3.0, abs=4.5 / math.sqrt(500))


def _fit(sampler, x, seed, n_samples=4000, steps=20):
    energy = Quadratic(2, dtype=DT)
    obj = MCMCMLE(sampler=sampler, n_samples=n_samples, steps=steps, burn_in=200, ess_threshold=0.5)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(energy.parameters(), lr=0.03)
    for step in range(700):
        if step == 400:
            for group in opt.param_groups:
                group["lr"] = 0.003
        out = obj(energy, x, generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    out = obj(energy, x, generator=g)
    return energy, obj, out


def _z_vs_mle(energy, x, ess):
    xc = x - x.mean(0)
    s_mle = xc.T @ xc / x.shape[0]
    cov = energy.covariance().detach()
    mean_err = energy.mean.detach() - x.mean(0)
    z_mean = mean_err / torch.sqrt(torch.diagonal(s_mle) / ess)
    pairs = [(0, 0), (0, 1), (1, 1)]
    z_cov = torch.stack([(cov[i, j] - s_mle[i, j]) / torch.sqrt((s_mle[i, j] ** 2 + s_mle[i, i] * s_mle[j, j]) / ess)
                         for i, j in pairs])
    return torch.cat([z_mean, z_cov])


def test_exact_reference_samples_recover_the_mle():
    x = gaussian_data(2000, 5)
    energy, obj, out = _fit(ExactQuadraticSampler(), x, 6)
    ess = out.stats["ess_fraction"] * obj.n_samples
    z = _z_vs_mle(energy, x, ess)
    assert torch.all(z.abs() < BONFERRONI_5), z
    assert obj.refreshes > 1


def test_mala_reference_samples_recover_the_mle():
    x = gaussian_data(2000, 7)
    energy, obj, out = _fit(MALA(step_size=0.1), x, 8)
    ess = out.stats["ess_fraction"] * obj.n_samples
    z = _z_vs_mle(energy, x, ess)
    assert torch.all(z.abs() < BONFERRONI_5), z
    assert 0.3 < out.stats["acceptance"] < 0.9  # step size adapted toward MALA's 0.574


def test_build_defaults_and_state():
    obj = build("mcmc_mle")
    assert isinstance(obj.sampler, MALA) and obj.n_samples == 1000 and obj.ess_threshold == 0.5
    assert obj.state_dict() == {}
    x = gaussian_data(64, 9).float()
    out = obj(Quadratic(2), x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    state = obj.state_dict()
    other = build("mcmc_mle")
    other.load_state_dict(state)
    assert torch.equal(other.reference, obj.reference) and other.refreshes == obj.refreshes


def test_the_step_size_belongs_to_the_sampler_object():
    with pytest.raises(ConfigError, match="objective 'mcmc_mle' has no option 'step_size'; allowed options: sampler"):
        build("mcmc_mle", step_size=0.1)
    assert build("mcmc_mle", sampler=MALA(step_size=0.03)).sampler.step_size == 0.03


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"steps": 0}, "steps"),
        ({"ess_threshold": 0.0}, "ess_threshold"),
        ({"ess_threshold": 1.5}, "ess_threshold"),
        ({"sampler": "nope"}, "unknown sampler 'nope'"),
        ({"sampler": 3}, "sampler must be"),
        ({"burn_in": -1}, "burn_in"),
        ({"init": 5}, "init must be"),
        ({"init_noise": -1.0}, "init_noise"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MCMCMLE(**kwargs)
