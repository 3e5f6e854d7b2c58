"""Inverse problems with plug-in priors: operators, closed forms, MAP, posterior sampling (ebmlab.apps.inverse)."""
import math

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.apps.inverse import (Blur, Denoise, Inpaint, PosteriorEnergy, TotalVariation, gaussian_kernel,
                                 map_estimate, posterior_sample, psnr, random_mask, tikhonov)
from ebmlab.energies import FunctionEnergy
from ebmlab.samplers import MALA

SHAPE = (1, 4, 4)


def _ops(g, n=3):
    return [Denoise(), Inpaint(random_mask((n, *SHAPE), 0.5, generator=g).double()),
            Inpaint(random_mask(SHAPE, 0.3, generator=g)), Blur(gaussian_kernel(3, 0.8).double())]


def _dense(op, n):
    """Row i's matrix A_i [d, d], column j = A_i e_j."""
    d = math.prod(SHAPE)
    eye = torch.eye(d, dtype=torch.float64).reshape(d, *SHAPE)
    mats = []
    for i in range(n):
        if isinstance(op, Inpaint) and op.mask.ndim == 4:
            sub = Inpaint(op.mask[i:i + 1].expand(d, *SHAPE).contiguous())
        else:
            sub = op
        mats.append(sub(eye).reshape(d, d).T)
    return torch.stack(mats)


def test_operators_adjoint_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, *SHAPE, dtype=torch.float64, generator=g)
    y = torch.randn(3, *SHAPE, dtype=torch.float64, generator=g)
    for op in _ops(g):
        lhs = (op(x) * y).sum()
        rhs = (x * op.adjoint(y)).sum()
        assert abs(float(lhs - rhs)) < 1e-12, type(op).__name__
    # the blur really blurs (not the identity) and keeps a constant image's interior constant
    b = Blur(gaussian_kernel(3, 0.8).double())
    ones = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    assert torch.allclose(b(ones)[..., 1:-1, 1:-1], ones[..., 1:-1, 1:-1])
    assert not torch.allclose(b(x), x)


@pytest.mark.parametrize("k", range(4))
def test_tikhonov_matches_dense_normal_equations(k):
    g = torch.Generator().manual_seed(1)
    op = _ops(g)[k]
    n, d, sigma, lam = 3, math.prod(SHAPE), 0.3, 2.0
    y = torch.rand(n, *SHAPE, dtype=torch.float64, generator=g)
    mean = torch.rand(SHAPE, dtype=torch.float64, generator=g)
    x = tikhonov(op, y, sigma, lam, mean=mean)
    A = _dense(op, n)
    lhs = A.transpose(1, 2) @ A / sigma ** 2 + lam * torch.eye(d, dtype=torch.float64)
    rhs = (A.transpose(1, 2) @ y.reshape(n, d, 1)) / sigma ** 2 + lam * mean.reshape(1, d, 1)
    exact = torch.linalg.solve(lhs, rhs).reshape(n, *SHAPE)
    assert torch.allclose(x, exact, atol=1e-9, rtol=0)


def _gaussian_prior(g, d):
    q = torch.randn(d, d, dtype=torch.float64, generator=g)
    precision = q @ q.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    mu = 0.5 + 0.1 * torch.randn(d, dtype=torch.float64, generator=g)

    def u(x):
        z = x.flatten(1) - mu
        return 0.5 * ((z @ precision) * z).sum(1)

    return FunctionEnergy(u), precision, mu


def test_map_with_gaussian_prior_equals_closed_form_wiener_solution():
    """Gaussian prior N(μ, P⁻¹) ⇒ the MAP of any linear problem is (AᵀA/σ² + P)⁻¹(Aᵀy/σ² + Pμ)."""
    g = torch.Generator().manual_seed(2)
    d = math.prod(SHAPE)
    prior, precision, mu = _gaussian_prior(g, d)
    y = torch.rand(3, *SHAPE, dtype=torch.float64, generator=g)
    for op in (Denoise(), Blur(gaussian_kernel(3, 0.8).double())):
        exact = tikhonov(op, y, 0.3, mean=mu.reshape(SHAPE), precision=precision)
        x = map_estimate(prior, op, y, 0.3, steps=400, lr=0.05, bounds=None)
        assert float((x - exact).abs().max()) < 1e-4, type(op).__name__


def test_map_projects_onto_the_pixel_box():
    """Flat prior, denoising: the box-constrained minimiser of ‖x - y‖² is clip(y, 0, 1)."""
    g = torch.Generator().manual_seed(3)
    y = 1.6 * torch.rand(2, *SHAPE, generator=g) - 0.3
    x = map_estimate(None, Denoise(), y, 0.2, steps=400)
    assert float((x - y.clamp(0, 1)).abs().max()) < 1e-4
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_total_variation_with_a_large_weight_flattens_the_image():
    """As λ → ∞ the TV-regularised denoiser tends to the constant image at the mean of y."""
    g = torch.Generator().manual_seed(4)
    y = torch.rand(2, *SHAPE, generator=g)
    x = map_estimate(TotalVariation(weight=50.0), Denoise(), y, 0.3, steps=1500, lr=0.02)
    assert float(x.flatten(1).std(1).max()) < 0.02
    assert torch.allclose(x.flatten(1).mean(1), y.flatten(1).mean(1), atol=0.02)
    assert float(TotalVariation(1.0)(torch.full((1, *SHAPE), 0.3))) == pytest.approx(16 * 1e-3, rel=1e-4)


def test_posterior_sample_matches_gaussian_posterior_moments():
    """Prior N(m, s² I), y = x + σ ε ⇒ posterior N((y/σ² + m/s²) v, v I), v = 1/(1/σ² + 1/s²) (MALA, MCSE bound)."""
    g = torch.Generator().manual_seed(5)
    m, s, sigma = 0.5, 0.2, 0.3
    prior = FunctionEnergy(lambda x: 0.5 * (x - m).pow(2).flatten(1).sum(1) / s ** 2)
    y = torch.rand(1, *SHAPE, dtype=torch.float64, generator=g)
    n_samples = 400
    x, info = posterior_sample(prior, Denoise(), y, sigma, n_samples=n_samples, sampler=MALA(step_size=0.05),
                               steps=60, burn_in=100, generator=g)
    assert x.shape == (n_samples, 1, *SHAPE)
    v = 1.0 / (1 / sigma ** 2 + 1 / s ** 2)
    mean_exact = (y / sigma ** 2 + m / s ** 2) * v
    # independent chains: the standard error of each coordinate's mean is sqrt(v / n)
    z = (x.mean(0) - mean_exact) / math.sqrt(v / n_samples)
    assert float(z.abs().max()) < 4.0
    var = x.var(0).mean()  # 16 coordinates, each with sd of its variance ≈ v sqrt(2/(n-1))
    assert abs(float(var) - v) < 4 * v * math.sqrt(2 / (n_samples - 1) / 16)  # 4 SE of a mean of 16 variances
    assert info.acceptance_rate > 0.5


def test_psnr_and_errors():
    assert float(psnr(torch.zeros(1, *SHAPE), torch.full((1, *SHAPE), 0.1))) == pytest.approx(20.0, rel=1e-5)
    with pytest.raises(ConfigError, match="mask"):
        Inpaint(torch.full(SHAPE, 0.5))
    with pytest.raises(ConfigError, match="odd"):
        Blur(torch.ones(2, 2))
    with pytest.raises(DataError, match="images"):
        map_estimate(None, Denoise(), torch.zeros(3, 16), 0.1)
    post = PosteriorEnergy(None, Denoise(), torch.zeros(2, *SHAPE), 0.5)
    with pytest.raises(DataError, match="observations"):
        post(torch.zeros(3, *SHAPE))


def test_inverse_cli_writes_panels_and_metrics(tmp_path):
    import json

    from ebmlab.cli import main

    out = tmp_path / "inp"
    assert main(["inverse", "inpaint", "--n-images", "4", "--prior-steps", "5", "--map-steps", "10",
                 "--posterior-samples", "2", "--posterior-steps", "30", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["psnr"]) == {"Tikhonov", "TV", "learned prior (MAP)"} and metrics["n_images"] == 4
    assert metrics["posterior"]["n_samples"] == 2 and metrics["posterior"]["images"] == 4
    assert (out / "panels.png").exists() and (out / "posterior.png").exists()
    assert main(["inverse", "deblur", "--sigma", "-1", "--out", str(tmp_path / "x")]) != 0
