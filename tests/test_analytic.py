"""Analytic energies: exact normalisation, analytic gradients, exact sampling, validation."""
import math

import pytest
import torch
from scipy import stats

from ebmlab import ConfigError
from ebmlab.energies import Banana, DoubleWell, Energy, Gaussian, GaussianMixture

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _energies():
    return {
        "gaussian": Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]]),
        "mixture_full": GaussianMixture([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]],
                                        [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.4]], [[0.6, -0.2], [-0.2, 0.3]]],
                                        weights=[1.0, 2.0, 3.0]),
        "mixture_diag": GaussianMixture([[-1.5, 0.0], [1.5, 0.5]], [[0.5, 1.0], [0.8, 0.3]]),
        "banana": Banana(b=0.5, scale=1.0),
        "double_well": DoubleWell(dim=2, barrier=2.0, tilt=0.5),
    }


def _grid_mass(energy, lo, hi, res):
    """Midpoint-rule integral of exp(log_prob) over [lo, hi]^2 (float64)."""
    h = (hi - lo) / res
    c = lo + h * (torch.arange(res, dtype=F64) + 0.5)
    pts = torch.cartesian_prod(c, c)
    return float(torch.exp(energy.log_prob(pts)).sum() * h * h)


@pytest.mark.parametrize("name", list(_energies()))
def test_log_prob_integrates_to_one(name):
    energy = _energies()[name]
    # Box holds all but < 1e-6 of the mass; the midpoint rule with h = 0.02 errs by O(h^2) ~ 1e-5.
    lo, hi = {"banana": (-8.0, 12.0)}.get(name, (-8.0, 8.0))
    mass = _grid_mass(energy, lo, hi, 1000)
    assert abs(mass - 1.0) < 1e-4, mass
    assert float(energy.log_normalizer()) == 0.0


@pytest.mark.parametrize("name", list(_energies()))
def test_energy_and_grad_matches_autograd(name):
    energy = _energies()[name]
    x = 2.0 * torch.randn(64, 2, generator=_gen(1), dtype=F64)
    u, g = energy.energy_and_grad(x)
    u_ref, g_ref = Energy.energy_and_grad(energy, x)  # the base class: autograd on forward
    torch.testing.assert_close(u, u_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)
    assert not u.requires_grad and not g.requires_grad
    torch.testing.assert_close(energy.log_prob(x), -u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(_energies()))
def test_follows_input_dtype(name):
    energy = _energies()[name]
    x32 = torch.randn(5, 2, generator=_gen(2))
    u, g = energy.energy_and_grad(x32)
    assert energy(x32).dtype == torch.float32 and u.dtype == torch.float32 and g.dtype == torch.float32
    torch.testing.assert_close(energy(x32).double(), energy(x32.double()), rtol=1e-5, atol=1e-5)
    assert energy.sample(3, generator=_gen(0)).dtype == torch.float32
    assert energy.sample(3, generator=_gen(0), dtype=F64).dtype == F64


def _assert_moments(x, mean, cov, n_tests_total=5):
    """Sample mean and second moments vs exact values, in units of the Monte Carlo standard error.

    z-threshold: Bonferroni over the d + d(d+1)/2 moments of this call and ``n_tests_total`` calls,
    family-wise false-alarm rate 1e-3.
    """
    x = x.to(F64)
    n, d = x.shape
    k = d + d * (d + 1) // 2
    z_max = stats.norm.ppf(1 - 1e-3 / (2 * k * n_tests_total))
    se_mean = x.std(0) / math.sqrt(n)
    z = (x.mean(0) - mean).abs() / se_mean
    assert bool((z < z_max).all()), (z, z_max)
    second = cov + torch.outer(mean, mean)
    for i in range(d):
        for j in range(i, d):
            prod = x[:, i] * x[:, j]
            zij = abs(float(prod.mean()) - float(second[i, j])) / (float(prod.std()) / math.sqrt(n))
            assert zij < z_max, (i, j, zij, z_max)


def test_gaussian_sample_moments():
    e = _energies()["gaussian"]
    _assert_moments(e.sample(40000, generator=_gen(3)), e.mean, e.cov)


def test_mixture_sample_moments():
    for i, name in enumerate(["mixture_full", "mixture_diag"]):
        e = _energies()[name]
        _assert_moments(e.sample(40000, generator=_gen(4 + i)), e.mean(), e.covariance())


def test_mixture_weights_normalised_and_moments_exact():
    e = _energies()["mixture_full"]
    torch.testing.assert_close(e.weights, torch.tensor([1.0, 2.0, 3.0], dtype=F64) / 6.0)
    # brute-force mean/covariance on a grid agree with the closed form
    h = 16.0 / 800
    c = -8.0 + h * (torch.arange(800, dtype=F64) + 0.5)
    pts = torch.cartesian_prod(c, c)
    w = torch.exp(e.log_prob(pts)) * h * h
    m = (w[:, None] * pts).sum(0)
    cov = (w[:, None, None] * (pts - m)[:, :, None] * (pts - m)[:, None, :]).sum(0)
    torch.testing.assert_close(m, e.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, e.covariance(), atol=1e-4, rtol=0)


def test_banana_sample_moments():
    e = Banana(b=0.1, scale=3.0, dim=3)
    _assert_moments(e.sample(40000, generator=_gen(6)), e.mean(), e.covariance())


def test_double_well_sampling_is_exact():
    e = DoubleWell(dim=2, barrier=3.0, tilt=0.7)
    x = e.sample(40000, generator=_gen(7), dtype=F64)
    x1 = x[:, 0]
    n = x1.numel()
    z_max = stats.norm.ppf(1 - 1e-3 / (2 * 4))
    for k in (1, 2, 3, 4):  # E x1^k by quadrature vs Monte Carlo
        est = x1.pow(k)
        z = abs(float(est.mean()) - e.x1_moment(k)) / (float(est.std()) / math.sqrt(n))
        assert z < z_max, (k, z)
    # probability of the left well: exact (quadrature) vs Monte Carlo
    h = 1e-4
    t = torch.arange(-4.0, 0.0, h, dtype=F64) + h / 2
    pts = torch.stack([t, torch.zeros_like(t)], 1)
    p_left = float(torch.exp(e.log_prob(pts) + 0.5 * math.log(2 * math.pi)).sum() * h)
    frac = float((x1 < 0).double().mean())
    assert abs(frac - p_left) / math.sqrt(p_left * (1 - p_left) / n) < stats.norm.ppf(1 - 1e-3 / 2)
    _assert_moments(x[:, 1:], torch.zeros(1, dtype=F64), torch.eye(1, dtype=F64))
    assert 0.1 < e.acceptance_rate <= 1.0


def test_double_well_log_z_matches_fine_grid():
    for barrier, tilt in [(1.0, 0.0), (20.0, -1.0)]:
        e = DoubleWell(dim=1, barrier=barrier, tilt=tilt)
        h = 1e-4
        t = torch.arange(-4.0, 4.0, h, dtype=F64) + h / 2
        v = barrier * (t * t - 1) ** 2 + tilt * t
        assert abs(float(torch.logsumexp(-v, 0)) + math.log(h) - e.log_z1) < 1e-7


def test_gaussian_isotropic_and_diagonal_covariances():
    a = Gaussian([0.0, 1.0], 2.0)
    b = Gaussian([0.0, 1.0], [2.0, 2.0])
    c = Gaussian([0.0, 1.0], [[2.0, 0.0], [0.0, 2.0]])
    x = torch.randn(7, 2, generator=_gen(8), dtype=F64)
    torch.testing.assert_close(a(x), c(x))
    torch.testing.assert_close(b(x), c(x))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]),  # not positive definite
        lambda: Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]),  # not symmetric
        lambda: Gaussian([0.0, 0.0], [[1.0, 0.0, 0.0]] * 3),  # shape mismatch
        lambda: Gaussian([0.0, 0.0], -1.0),  # negative variance
        lambda: Gaussian([0.0, float("nan")], 1.0),
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], [1.0, -0.5]),  # negative std
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], 1.0, weights=[1.0, -1.0]),  # negative weight
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], 1.0, weights=[1.0, 0.0]),  # zero weight
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], 1.0, weights=[1.0, 1.0, 1.0]),  # shape mismatch
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0, 1.0]),  # stds shape mismatch
        lambda: GaussianMixture([[0.0, 0.0], [1.0, 1.0]], [[[1.0, 2.0], [2.0, 1.0]]] * 2),  # non-PD
        lambda: GaussianMixture([0.0, 1.0], 1.0),  # means not [K, d]
        lambda: Banana(b=-0.1),
        lambda: Banana(scale=0.0),
        lambda: Banana(dim=1),
        lambda: DoubleWell(barrier=0.0),
        lambda: DoubleWell(dim=0),
        lambda: DoubleWell(tilt=float("inf")),
    ],
)
def test_invalid_parameters_raise_config_error(build):
    with pytest.raises(ConfigError):
        build()


def test_wrong_input_shape_raises():
    with pytest.raises(ConfigError, match="shape"):
        Gaussian([0.0, 0.0], 1.0)(torch.zeros(3, 3))


def test_sampling_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    for e in _energies().values():
        torch.testing.assert_close(e.sample(50, generator=_gen(9)), e.sample(50, generator=_gen(9)))
    assert torch.equal(state, torch.get_rng_state())
