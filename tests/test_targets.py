"""Sampling targets with known log Z: checked by independent quadrature, and their exact samplers."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from ebmlab import ConfigError
from ebmlab.energies.targets import Funnel, ManyWell, gmm40_target, grid_target
from ebmlab.metrics import grid_log_z

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_funnel_log_z_by_2d_quadrature():
    f = Funnel(dim=2, offset=1.5)
    u = lambda x2, x1: math.exp(-float(f(torch.tensor([[x1, x2]], dtype=F64))))
    # x₂'s scale e^{x₁/2} ranges over [e^-9, e^9] on |x₁| <= 18: integrate x₂ on ±12 e^{x₁/2}
    val, err = integrate.dblquad(u, -18, 18, lambda x1: -12 * math.exp(x1 / 2), lambda x1: 12 * math.exp(x1 / 2),
                                 epsabs=0, epsrel=1e-7)
    assert math.log(val) == pytest.approx(float(f.log_normalizer()), abs=1e-5)
    assert float(f.log_normalizer()) == -1.5
    assert Funnel().dim == 10


def test_funnel_exact_samples_have_the_right_moments():
    f = Funnel(dim=10)
    x = f.sample(200_000, generator=_gen(0), dtype=F64)
    # E x₁ = 0, Var x₁ = 9 (exact), E x₂² = E e^{x₁} = e^{9/2}: heavy-tailed, so test log|x₂| instead:
    # E log x₂² = E x₁ + E log χ²₁ = 0 + (ψ(½) + log 2) = -1.2704
    n = x.shape[0]
    assert abs(float(x[:, 0].mean())) < 4 * 3 / math.sqrt(n)
    assert float(x[:, 0].var()) == pytest.approx(9.0, abs=4 * 9 * math.sqrt(2 / n))
    lg = torch.log(x[:, 1] ** 2)
    se = float(lg.std()) / math.sqrt(n)
    assert float(lg.mean()) == pytest.approx(-1.2703628454614782, abs=4 * se)


@pytest.mark.parametrize("which", ["grid", "gmm40"])
def test_mixture_log_z_on_a_grid(which):
    t = grid_target(offset=-2.0) if which == "grid" else gmm40_target(offset=3.0)
    box, res = ((-9.0, 9.0), 600) if which == "grid" else ((-48.0, 48.0), 480)
    assert grid_log_z(t, box, resolution=res) == pytest.approx(float(t.log_normalizer()), abs=2e-4)
    assert float(t.log_normalizer()) == (2.0 if which == "grid" else -3.0)
    if which == "gmm40":
        assert t.means.shape == (40, 2) and float(t.means.abs().max()) <= 40.0


def test_mixture_mode_assignment_of_exact_draws():
    t = grid_target()
    x = t.sample(90_000, generator=_gen(1), dtype=F64)
    freq = torch.bincount(t.assign_modes(x), minlength=9).double() / x.shape[0]
    se = math.sqrt((1 / 9) * (8 / 9) / x.shape[0])
    assert float((freq - 1 / 9).abs().max()) < 4.5 * se


def test_many_well_log_z_by_independent_quadrature():
    mw = ManyWell(dim=5, delta=4.0, offset=0.7)
    t = np.linspace(-4, 4, 400_001)
    z1 = np.trapezoid(np.exp(-(t * t - 4.0) ** 2), t)
    assert mw.log_z1 == pytest.approx(math.log(z1), abs=1e-9)
    assert float(mw.log_normalizer()) == pytest.approx(5 * math.log(z1) - 0.7, abs=1e-8)
    mixed = ManyWell(dim=3, n_wells=1, delta=2.0, offset=-1.0)
    t2 = np.exp(-(t * t - 2.0) ** 2)
    expected = math.log(np.trapezoid(t2, t)) + math.log(2 * math.pi) + 1.0
    assert float(mixed.log_normalizer()) == pytest.approx(expected, abs=1e-8)


def test_many_well_exact_samples_and_gradient():
    mw = ManyWell(dim=5)
    x = mw.sample(40_000, generator=_gen(2), dtype=F64)
    t = np.linspace(-4, 4, 400_001)
    dens = np.exp(-(t * t - 4.0) ** 2)
    m2 = np.trapezoid(t * t * dens, t) / np.trapezoid(dens, t)
    x2 = x ** 2
    se = float(x2.std()) / math.sqrt(x2.numel())
    assert float(x2.mean()) == pytest.approx(m2, abs=4 * se)
    modes = torch.bincount(mw.assign_modes(x), minlength=32).double() / x.shape[0]
    assert float((modes - 1 / 32).abs().max()) < 4.5 * math.sqrt((1 / 32) * (31 / 32) / x.shape[0])
    y = torch.randn(7, 5, generator=_gen(3), dtype=F64)
    _, g = mw.energy_and_grad(y)
    from ebmlab.energies import Energy

    assert torch.allclose(g, Energy.energy_and_grad(mw, y)[1], atol=1e-10)


def test_bad_target_options():
    with pytest.raises(ConfigError, match="offset must be a finite number"):
        Funnel(offset=float("nan"))
    with pytest.raises(ConfigError, match="n_wells"):
        ManyWell(dim=3, n_wells=4)
    with pytest.raises(ConfigError, match="Funnel expects x of shape"):
        Funnel(dim=10)(torch.zeros(2, 3))
