"""KALE (Arbel, Zhou & Gretton 2021) against what is known: >= 0, ~0 for one law (within the stated bias),
<= closed-form KL and increasing toward it, asymmetry direction, -> 0 along Q_n -> P."""
import math

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.metrics import kale

KL_SHIFT_1 = 0.5  # KL(N(0,1) || N(1,1))


def _gauss(g, n, d=1, mean=0.0, std=1.0):
    return mean + std * torch.randn(n, d, generator=g, dtype=torch.float64)


def kl_gauss_1d(m1, s1, m2, s2):
    return math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5


def test_nonnegative_and_optimality_conditions():
    g = torch.Generator().manual_seed(0)
    x, y = _gauss(g, 300, 2), _gauss(g, 200, 2, mean=0.7)
    value, w = kale(x, y, penalty=1e-2, return_witness=True)
    assert value >= 0 and w.converged
    # at the optimum: alpha_x = -1/(n lambda), alpha_y = exp(-f(y)) / (m lambda)
    lam = w.penalty
    assert torch.allclose(w.coef[:300], torch.full((300,), -1.0 / (300 * lam), dtype=torch.float64), rtol=1e-6)
    fy = w(y)
    assert torch.allclose(w.coef[300:], torch.exp(-fy) / (200 * lam), rtol=1e-5, atol=1e-9)
    # the value is the penalised objective at the witness
    fx = w(x)
    quad = float(w.coef @ torch.cat([fx, fy]))
    obj = -float(fx.mean()) - float(torch.exp(-fy).mean()) + 1 - 0.5 * lam * quad
    assert abs(obj - value) < 1e-8


def test_one_law_is_within_stated_bias():
    g = torch.Generator().manual_seed(1)
    vals, biases = [], []
    for _ in range(6):
        v, w = kale(_gauss(g, 400, 2), _gauss(g, 400, 2), return_witness=True)
        vals.append(v)
        biases.append(w.null_bias)
    v = torch.tensor(vals)
    # the stated null bias bounds the mean (second order); 3 standard errors of slack
    assert float(v.mean()) <= max(biases) + 3 * float(v.std()) / math.sqrt(len(vals))
    assert float(v.max()) < 0.05


def _plugin_sd(n, m):
    """sd of the objective at the true witness f* = log(q/p) for P = N(0,1), Q = N(1,1): Var_P f* = 1 and
    Var_Q exp(-f*) = e - 1, so the Monte Carlo error of any estimate near KL is about sqrt(1/n + (e-1)/m)."""
    return math.sqrt(1.0 / n + (math.e - 1.0) / m)


def test_below_kl_and_increasing_as_penalty_shrinks():
    g = torch.Generator().manual_seed(2)
    x, y = _gauss(g, 800), _gauss(g, 800, mean=1.0)
    vals, bias = [], 0.0
    for lam in (1.0, 1e-1, 3e-2, 1e-2):
        v, w = kale(x, y, penalty=lam, return_witness=True)
        vals.append(v)
        bias = w.null_bias
    # exactly monotone on the same samples (a sup over a growing family of objectives)
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    # below KL up to the stated bias and 3 Monte Carlo standard errors
    assert vals[-1] <= KL_SHIFT_1 + bias + 3 * _plugin_sd(800, 800), vals
    assert vals[-1] > 0.7 * KL_SHIFT_1, vals


def test_increasing_toward_kl_as_n_grows():
    g = torch.Generator().manual_seed(3)
    schedule = [(100, 1.0), (300, 0.1), (1000, 0.01)]  # lambda shrinking as n grows
    rows = []
    for _ in range(6):
        x, y = _gauss(g, 1000), _gauss(g, 1000, mean=1.0)
        rows.append([kale(x[:n], y[:n], penalty=lam) for n, lam in schedule])
    v = torch.tensor(rows)
    r = math.sqrt(v.shape[0])
    diff = v[:, 1:] - v[:, :-1]  # paired: the smaller samples are prefixes of the larger
    assert bool((diff.mean(0) > 3 * diff.std(0) / r).all()), v
    assert float(v[:, -1].mean()) <= KL_SHIFT_1 + 3 * _plugin_sd(1000, 1000) / r, v


def test_asymmetry_same_mean_different_variance():
    g = torch.Generator().manual_seed(4)
    narrow, wide = _gauss(g, 800), _gauss(g, 800, std=2.0)
    kl_nw, kl_wn = kl_gauss_1d(0, 1, 0, 2), kl_gauss_1d(0, 2, 0, 1)  # 0.318 < 0.807
    k_nw, k_wn = kale(narrow, wide), kale(wide, narrow)
    assert k_nw < k_wn  # same direction as the closed-form KLs
    assert k_nw <= kl_nw + 0.05 and k_wn <= kl_wn + 0.05


def test_decreases_to_zero_along_converging_sequence():
    g = torch.Generator().manual_seed(5)
    x, y0 = _gauss(g, 500, 2), _gauss(g, 500, 2)
    vals, bias = [], None
    for mu in (1.0, 0.5, 0.25, 0.125, 0.0):
        v, w = kale(x, y0 + mu, return_witness=True)
        vals.append(v)
        bias = w.null_bias
    assert all(a > b for a, b in zip(vals, vals[1:])), vals
    assert vals[-1] <= 3 * bias


def test_bad_input():
    x = torch.zeros(10, 2)
    with pytest.raises(ConfigError, match="penalty"):
        kale(x, x + 1, penalty=0.0)
    with pytest.raises(ConfigError, match="kernel"):
        kale(x, x + 1, kernel="laplace")
    with pytest.raises(DataError, match="columns"):
        kale(torch.randn(10, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(10, 3))
