"""Tests of the learnable Gaussian energy ``Quadratic``."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ebmlab import ConfigError
from ebmlab.energies import Quadratic, build_energy

PREC = [[2.0, 0.6], [0.6, 0.8]]
MEAN = [0.5, -1.0]


def _random_raw(dim, seed, scale):
    q = Quadratic(dim).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q.mean.copy_(torch.randn(dim, generator=g, dtype=torch.float64))
        q.log_diag.copy_(scale * torch.randn(dim, generator=g, dtype=torch.float64))
        q.lower.copy_(scale * torch.randn(q.lower.shape, generator=g, dtype=torch.float64))
    return q


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_precision_is_positive_definite_for_random_raw_parameters(dim, scale):
    for seed in range(20):
        q = _random_raw(dim, seed, scale)
        p = q.precision().detach()
        assert torch.allclose(p, p.T, rtol=1e-12, atol=1e-12)
        assert torch.linalg.cholesky_ex(p).info == 0
        # the Cholesky factor is exactly L (unique with positive diagonal)
        L = q.cholesky().detach()
        assert torch.all(torch.diagonal(L) > 0)
        assert torch.allclose(torch.triu(L, 1), torch.zeros_like(L))
        assert torch.allclose(q.covariance() @ p, torch.eye(dim, dtype=torch.float64), atol=1e-8 * float(torch.linalg.cond(p)))


def test_init_round_trips_mean_and_precision():
    q = Quadratic(2, mean=MEAN, precision=PREC, dtype=torch.float64)
    assert torch.allclose(q.precision().detach(), torch.tensor(PREC, dtype=torch.float64), rtol=0, atol=1e-14)
    assert torch.allclose(q.mean.detach(), torch.tensor(MEAN, dtype=torch.float64))
    assert Quadratic(3).mean.dtype == torch.get_default_dtype()
    with pytest.raises(ConfigError, match="dtype"):
        Quadratic(2, dtype=torch.int64)


def test_energy_and_log_prob_match_scipy():
    q = Quadratic(2, mean=MEAN, precision=PREC, dtype=torch.float64)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    cov = np.linalg.inv(np.array(PREC))
    ref = stats.multivariate_normal(np.array(MEAN), cov).logpdf(x.numpy())
    assert np.allclose(q.log_prob(x).detach().numpy(), ref, rtol=0, atol=1e-6)
    # U is exactly ½(x-μ)ᵀP(x-μ) with the stored precision
    c = x - q.mean.detach()
    u_ref = 0.5 * torch.einsum("bi,ij,bj->b", c, q.precision().detach(), c)
    assert torch.allclose(q(x).detach(), u_ref, rtol=1e-12, atol=1e-12)


def test_log_prob_integrates_to_one_on_a_grid():
    q = Quadratic(2, mean=MEAN, precision=PREC, dtype=torch.float64)
    # the marginal stds are <= 1.3; [-12, 12]² holds all the mass up to ~1e-20, and the midpoint
    # rule on a smooth Gaussian with h = 0.02 has error far below 1e-6
    h = 0.02
    t = torch.arange(-12 + h / 2, 12, h, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        mass = torch.exp(q.log_prob(pts)).sum() * h * h
    assert abs(float(mass) - 1.0) < 1e-6


@pytest.mark.parametrize("dim", [1, 3])
def test_analytic_gradient_matches_autograd(dim):
    q = _random_raw(dim, 7, 0.5)
    x = torch.randn(16, dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u, g = q.energy_and_grad(x)
    xr = x.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(q(xr).sum(), xr)
    assert torch.allclose(u, q(x).detach(), rtol=1e-12, atol=1e-12)
    assert torch.allclose(g, g_auto, rtol=1e-10, atol=1e-12)
    assert not u.requires_grad and not g.requires_grad
    assert torch.allclose(q.score(x), -g_auto)


def test_log_normalizer_and_its_gradient_match_log_det():
    q = _random_raw(3, 3, 0.5)
    ref = 1.5 * math.log(2 * math.pi) - 0.5 * torch.logdet(q.precision())
    assert torch.allclose(q.log_normalizer(), ref.detach(), rtol=0, atol=1e-12)
    params = [q.log_diag, q.lower]
    g = torch.autograd.grad(q.log_normalizer(), params, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    assert torch.allclose(g[0], g_ref[0], atol=1e-10)
    assert g[1] is None and torch.allclose(g_ref[1], torch.zeros(3, dtype=torch.float64), atol=1e-10)


def test_sample_moments_within_monte_carlo_error():
    q = Quadratic(2, mean=MEAN, precision=PREC, dtype=torch.float64)
    n = 20000
    x = q.sample(n, generator=torch.Generator().manual_seed(0))
    cov = torch.tensor(np.linalg.inv(np.array(PREC)))
    mu = torch.tensor(MEAN, dtype=torch.float64)
    z_mean = (x.mean(0) - mu) / torch.sqrt(torch.diagonal(cov) / n)
    # second moments: Var((x_i-μ_i)(x_j-μ_j)) = C_ii C_jj + C_ij² for a Gaussian
    c = x - mu
    emp = c.T @ c / n
    se = torch.sqrt((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n)
    z_cov = (emp - cov) / se
    # 2 + 3 distinct statistics, Bonferroni at overall level 1e-3
    crit = stats.norm.isf(1e-3 / (2 * 5))
    assert torch.all(z_mean.abs() < crit)
    assert torch.all(z_cov.abs() < crit)
    assert torch.equal(x, q.sample(n, seed=0))


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="dim"):
        Quadratic(0)
    with pytest.raises(ConfigError, match="positive definite"):
        Quadratic(2, precision=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ConfigError, match="symmetric"):
        Quadratic(2, precision=[[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ConfigError, match=r"shape \(2,\)"):
        Quadratic(2, mean=[0.0, 1.0, 2.0])
    with pytest.raises(ConfigError, match="finite"):
        Quadratic(2, mean=[0.0, float("nan")])
    with pytest.raises(ConfigError, match="3 elements"):
        Quadratic(2)(torch.zeros(4, 3))


def test_registered_by_name():
    q = build_energy("quadratic", 4)
    assert isinstance(q, Quadratic) and q.dim == 4
    assert torch.allclose(q.precision(), torch.eye(4))


def _far_gaussian(n, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.7]], dtype=torch.float64)
    return torch.tensor([5.0, -3.0, 4.0], dtype=torch.float64) + torch.randn(n, 3, generator=g, dtype=torch.float64) @ a.T


def test_prepare_starts_at_the_data_moments():
    """prepare(data) sets μ = x̄ and P = S⁻¹ (S with 1/n) exactly, for the parameters not given."""
    x = _far_gaussian(500, 0)
    q = Quadratic(3, dtype=torch.float64)
    q.prepare(x)
    s = torch.cov(x.T, correction=0)
    assert torch.allclose(q.mean.detach(), x.mean(0), atol=1e-12)
    assert torch.allclose(q.covariance().detach(), s, atol=1e-10)
    # the exact log-likelihood at the start is the Gaussian maximum: its gradient vanishes
    q.zero_grad()
    (-q.log_prob(x).mean()).backward()
    assert max(float(p.grad.abs().max()) for p in q.parameters()) < 1e-9
    # parameters given to the constructor are kept
    q2 = Quadratic(3, mean=[0.0, 0.0, 0.0], dtype=torch.float64)
    q2.prepare(x)
    assert torch.equal(q2.mean.detach(), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(q2.covariance().detach(), s, atol=1e-10)
    q3 = Quadratic(3, precision=2 * np.eye(3), dtype=torch.float64)
    q3.prepare(x)
    assert torch.allclose(q3.precision().detach(), 2 * torch.eye(3, dtype=torch.float64))
    assert torch.allclose(q3.mean.detach(), x.mean(0), atol=1e-12)


def test_prepare_with_a_singular_covariance_warns():
    x = torch.zeros(10, 2, dtype=torch.float64)
    x[:, 0] = torch.arange(10, dtype=torch.float64)  # second coordinate constant
    q = Quadratic(2, dtype=torch.float64)
    with pytest.warns(UserWarning, match="singular"):
        q.prepare(x)
    assert torch.isfinite(q.precision()).all()
    with pytest.raises(ConfigError, match="3 elements"):
        q.prepare(torch.zeros(5, 3))
