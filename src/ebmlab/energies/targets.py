r"""Sampling benchmarks with a known normalising constant, each shifted by a known offset.

Unlike :mod:`ebmlab.energies.analytic` (exact negative log densities, Z = 1), every target here is
U(x) = -log p(x) + ``offset``, so that log Z = -``offset`` ≠ 0 and an estimator that silently assumes Z = 1 is
caught.  All have exact samplers (``sample(n_samples, generator=)``) and ``log_normalizer()``.

- :class:`Funnel` — Neal (2003, "Slice sampling"), 10-D by default: x₁ ~ N(0, 3²), x_i | x₁ ~ N(0, e^{x₁}).
- :func:`grid_target` — the 9-mode ``grid`` mixture (⅑ Σ N(μ, .3 I), μ ∈ {-5, 0, 5}²) of :mod:`ebmlab.data.toy`.
- :func:`gmm40_target` — 40 equal-weight unit-variance Gaussians in 2-D with means uniform on [-40, 40]²
  (the set-up of Midgley et al. 2023, "Flow annealed importance sampling bootstrap"; our means come from a fixed
  ``torch.Generator`` seed, not theirs).
- :class:`ManyWell` — products of double wells, U(x) = Σ_{i≤m} (x_i² - δ)² + Σ_{i>m} ½ x_i² (5-D, m = 5, δ = 4:
  2⁵ = 32 modes at (±2, ..., ±2), as in the ``many_well`` target of Richter & Berner 2024); log Z by 1-D adaptive
  quadrature, exact samples by rejection (via :class:`~ebmlab.energies.analytic.DoubleWell`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive
from .analytic import DoubleWell, GaussianMixture
from .base import Energy

_LOG_2PI = math.log(2.0 * math.pi)


def _check_offset(offset) -> float:
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(float(offset)):
        raise ConfigError(f"offset must be a finite number, got {offset!r}")
    return float(offset)


class Funnel(Energy):
    r"""Neal's funnel: x₁ ~ N(0, σ₁²) (σ₁ = 3), x_i | x₁ ~ N(0, e^{x₁}) for i = 2..d, shifted by ``offset``:

    U(x) = x₁²/(2σ₁²) + ½ log(2π σ₁²) + Σ_{i≥2} [ ½ x_i² e^{-x₁} + ½ x₁ + ½ log 2π ] + offset,   log Z = -offset.
    """

    def __init__(self, dim: int = 10, scale: float = 3.0, offset: float = 1.5):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=2)
        self.scale = check_positive("scale", scale)
        self.offset = _check_offset(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"Funnel expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        x1, rest = x[:, 0], x[:, 1:]
        m = self.dim - 1
        u1 = 0.5 * (x1 / self.scale) ** 2 + 0.5 * math.log(2 * math.pi * self.scale**2)
        u_rest = 0.5 * (rest * rest).sum(-1) * torch.exp(-x1) + 0.5 * m * x1 + 0.5 * m * _LOG_2PI
        return u1 + u_rest + self.offset

    def log_normalizer(self) -> torch.Tensor:
        return torch.tensor(-self.offset, dtype=torch.float64)

    def sample(self, n_samples: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        n = check_int("n_samples", n_samples)
        x1 = self.scale * torch.randn(n, 1, generator=generator, dtype=torch.float64)
        rest = torch.randn(n, self.dim - 1, generator=generator, dtype=torch.float64) * torch.exp(0.5 * x1)
        return torch.cat([x1, rest], 1).to(dtype)


class ShiftedMixture(Energy):
    r"""A :class:`~ebmlab.energies.analytic.GaussianMixture` shifted by ``offset``: U = -log p + offset,
    log Z = -offset.  ``means`` (the mode centres) and ``weights`` are those of the mixture."""

    def __init__(self, mixture: GaussianMixture, offset: float):
        super().__init__()
        self.mixture = mixture
        self.dim = mixture.dim
        self.offset = _check_offset(offset)

    @property
    def means(self) -> torch.Tensor:
        return self.mixture.means

    @property
    def weights(self) -> torch.Tensor:
        return self.mixture.weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixture(x) + self.offset

    def energy_and_grad(self, x: torch.Tensor):
        u, g = self.mixture.energy_and_grad(x)
        return u + self.offset, g

    def log_normalizer(self) -> torch.Tensor:
        return torch.tensor(-self.offset, dtype=torch.float64)

    def sample(self, n_samples: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.mixture.sample(n_samples, generator=generator, dtype=dtype)

    def assign_modes(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest mode centre for each row of ``x`` (int64 [n])."""
        return torch.cdist(x.to(torch.float64), self.mixture.means).argmin(1)


def grid_target(offset: float = -2.0) -> ShiftedMixture:
    """The 9-mode ``grid`` mixture (the toy set's exact density) shifted by ``offset`` (log Z = -offset)."""
    from ..data.toy import toy_density

    return ShiftedMixture(toy_density("grid"), offset)


def gmm40_target(offset: float = 3.0, seed: int = 0) -> ShiftedMixture:
    """40 equal-weight N(μ_k, I) in 2-D, μ_k ~ U[-40, 40]² from ``torch.Generator().manual_seed(seed)``,
    shifted by ``offset`` (log Z = -offset)."""
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    means = 80.0 * torch.rand(40, 2, generator=g, dtype=torch.float64) - 40.0
    return ShiftedMixture(GaussianMixture(means, 1.0), offset)


class ManyWell(Energy):
    r"""U(x) = Σ_{i≤m} (x_i² - δ)² + Σ_{i>m} ½ x_i² + offset on R^d (Richter & Berner 2024's many-well).

    Z factorises: log Z = m log Z₁ + ((d - m)/2) log 2π - offset with Z₁ = ∫ exp(-(t² - δ)²) dt; by t = √δ y,
    Z₁ = √δ ∫ exp(-δ² (y² - 1)²) dy, the double-well integral of :class:`~ebmlab.energies.analytic.DoubleWell`
    (barrier δ²), evaluated by adaptive quadrature.  2^m modes at (±√δ, ..., ±√δ).
    """

    def __init__(self, dim: int = 5, n_wells: Optional[int] = None, delta: float = 4.0, offset: float = 0.7):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.n_wells = self.dim if n_wells is None else check_int("n_wells", n_wells, maximum=self.dim)
        self.delta = check_positive("delta", delta)
        self.offset = _check_offset(offset)
        self._well = DoubleWell(dim=1, barrier=self.delta**2)
        self.log_z1 = 0.5 * math.log(self.delta) + self._well.log_z1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"ManyWell expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        m = self.n_wells
        u = ((x[:, :m] ** 2 - self.delta) ** 2).sum(-1)
        if m < self.dim:
            u = u + 0.5 * (x[:, m:] ** 2).sum(-1)
        return u + self.offset

    def energy_and_grad(self, x: torch.Tensor):
        x = x.detach()
        m = self.n_wells
        g = x.clone()
        g[:, :m] = 4.0 * x[:, :m] * (x[:, :m] ** 2 - self.delta)
        return self.forward(x), g

    def log_normalizer(self) -> torch.Tensor:
        val = self.n_wells * self.log_z1 + 0.5 * (self.dim - self.n_wells) * _LOG_2PI - self.offset
        return torch.tensor(val, dtype=torch.float64)

    def sample(self, n_samples: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        n = check_int("n_samples", n_samples)
        m = self.n_wells
        wells = self._well.sample(n * m, generator=generator, dtype=torch.float64).reshape(n, m)
        out = [math.sqrt(self.delta) * wells]
        if m < self.dim:
            out.append(torch.randn(n, self.dim - m, generator=generator, dtype=torch.float64))
        return torch.cat(out, 1).to(dtype)

    def assign_modes(self, x: torch.Tensor) -> torch.Tensor:
        """Mode index Σ_i [x_i > 0] 2^i over the m well coordinates (int64 [n], 0 .. 2^m - 1)."""
        bits = (x[:, : self.n_wells] > 0).to(torch.int64)
        return (bits * (2 ** torch.arange(self.n_wells))).sum(1)
