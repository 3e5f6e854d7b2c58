r"""Analytic target energies with exact densities and exact samplers.

Every energy here is the **exact negative log density**, U(x) = -log p(x), so that
Z = ∫ exp(-U) dx = 1 and :meth:`log_normalizer` returns 0.  They serve as oracles: tests of
samplers compare moments with the exact ones, tests of estimators compare with the true
energy, and the grid normaliser of :mod:`ebmlab.metrics.grid` is checked against them.

Parameters are stored as float64 buffers (so ``.to(device)`` moves them); every method casts
them to the dtype and device of its input, so the energies work in float32 and float64 alike.
``sample(n, generator=None, dtype=None)`` draws exact samples (default dtype: torch's default,
float32) on the device of the buffers, using ``generator`` (never the global RNG when one is
given).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive
from .._core.tensors import as_float_tensor
from .base import Energy

_LOG_2PI = math.log(2.0 * math.pi)

ArrayLike = Union[float, Sequence, np.ndarray, torch.Tensor]


def _cholesky(name: str, cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a (batch of) symmetric positive-definite matrices, or ConfigError."""
    if not torch.allclose(cov, cov.transpose(-1, -2), rtol=1e-10, atol=1e-12):
        raise ConfigError(f"{name} must be symmetric, got {cov.tolist()}")
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ConfigError(f"{name} must be positive definite, got {cov.tolist()}")
    return chol


def _check_x(x: torch.Tensor, dim: int, who: str) -> None:
    if x.ndim != 2 or x.shape[1] != dim:
        raise ConfigError(f"{who} expects x of shape [batch, {dim}], got {tuple(x.shape)}")


def _sample_dtype(dtype: Optional[torch.dtype]) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


class Gaussian(Energy):
    r"""Multivariate normal N(μ, Σ) with full covariance.

    U(x) = ½ (x - μ)ᵀ Σ⁻¹ (x - μ) + ½ log det(2π Σ) = -log N(x; μ, Σ),
    grad_x U(x) = Σ⁻¹ (x - μ).  Computed with the Cholesky factor Σ = L Lᵀ
    (triangular solves, never an explicit inverse); sampling is x = μ + L ξ, ξ ~ N(0, I).

    Parameters
    ----------
    mean : array-like [d]
    cov : array-like [d, d], or a scalar / [d] vector for an isotropic / diagonal covariance
        Symmetric positive definite.

    Notes
    -----
    Z = 1 (U is the exact negative log density), so ``log_normalizer()`` is 0.
    """

    def __init__(self, mean: ArrayLike, cov: ArrayLike):
        super().__init__()
        mean = as_float_tensor("mean", mean, dtype=torch.float64, device="cpu")
        if mean.ndim != 1 or mean.numel() == 0:
            raise ConfigError(f"mean must be a non-empty 1-D vector, got shape {tuple(mean.shape)}")
        d = mean.numel()
        cov = as_float_tensor("cov", cov, dtype=torch.float64, device="cpu")
        if cov.ndim == 0 or (cov.ndim == 1 and cov.numel() == d):
            if bool((cov <= 0).any()):
                raise ConfigError(f"cov given as variances must be > 0, got {cov.tolist()}")
            cov = torch.diag(cov.expand(d).clone())
        if cov.shape != (d, d):
            raise ConfigError(f"cov must have shape [{d}, {d}] to match mean, got {tuple(cov.shape)}")
        chol = _cholesky("cov", cov)
        self.dim = d
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("scale_tril", chol)
        self.register_buffer("_half_log_det", torch.log(torch.diagonal(chol)).sum())

    def _whiten(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        _check_x(x, self.dim, "Gaussian")
        mean = self.mean.to(x)
        chol = self.scale_tril.to(x)
        diff = x - mean
        z = torch.linalg.solve_triangular(chol, diff.T, upper=False).T  # L z = x - μ
        return diff, z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; μ, Σ), shape [batch]."""
        return -self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, z = self._whiten(x)
        const = self._half_log_det.to(x) + 0.5 * self.dim * _LOG_2PI
        return 0.5 * (z * z).sum(-1) + const

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(U(x), Σ⁻¹(x - μ)) analytically, both detached."""
        x = x.detach()
        _, z = self._whiten(x)
        chol = self.scale_tril.to(x)
        grad = torch.linalg.solve_triangular(chol.T, z.T, upper=True).T  # Lᵀ g = z
        const = self._half_log_det.to(x) + 0.5 * self.dim * _LOG_2PI
        return 0.5 * (z * z).sum(-1) + const, grad

    def log_normalizer(self) -> torch.Tensor:
        """0: U is the exact negative log density."""
        return torch.zeros((), dtype=self.mean.dtype, device=self.mean.device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Exact draws x = μ + L ξ, ξ ~ N(0, I); Tensor[n, d]."""
        n = check_int("n", n)
        xi = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=self.mean.device)
        return (self.mean + xi @ self.scale_tril.T).to(_sample_dtype(dtype))


class GaussianMixture(Energy):
    r"""Mixture of Gaussians p(x) = Σ_k w_k N(x; μ_k, Σ_k).

    U(x) = -log Σ_k exp(log w_k + log N(x; μ_k, Σ_k)) (a logsumexp, stable far from every mode);
    grad_x U(x) = Σ_k r_k(x) Σ_k⁻¹ (x - μ_k) with responsibilities r_k(x) = w_k N_k(x) / p(x).

    Parameters
    ----------
    means : array-like [K, d]
    stds_or_covs : scalar, [K], [K, d] or [K, d, d]
        A scalar: one isotropic standard deviation for every component; [K]: an isotropic std per
        component; [K, d]: per-dimension stds (diagonal covariances); [K, d, d]: full covariance
        matrices (symmetric positive definite).  Stds must be > 0.
    weights : array-like [K], optional
        Positive mixture weights; they are normalised to sum to one (so unnormalised counts are
        fine).  Default: uniform.

    Notes
    -----
    Z = 1 (U is the exact negative log density), so ``log_normalizer()`` is 0.  Sampling draws the
    component from the categorical law of the weights, then x = μ_k + L_k ξ.
    """

    def __init__(self, means: ArrayLike, stds_or_covs: ArrayLike, weights: Optional[ArrayLike] = None):
        super().__init__()
        means = as_float_tensor("means", means, dtype=torch.float64, device="cpu")
        if means.ndim != 2 or means.numel() == 0:
            raise ConfigError(f"means must have shape [K, d] with K, d >= 1, got {tuple(means.shape)}")
        k, d = means.shape
        s = as_float_tensor("stds_or_covs", stds_or_covs, dtype=torch.float64, device="cpu")
        if s.ndim <= 2:
            if s.ndim == 0:
                s = s.expand(k, d)
            elif s.ndim == 1 and s.numel() == k:
                s = s[:, None].expand(k, d)
            elif s.shape != (k, d):
                raise ConfigError(
                    f"stds_or_covs must be a scalar, [K]={k}, [K, d]=[{k}, {d}] or [K, d, d]; got {tuple(s.shape)}"
                )
            if bool((s <= 0).any()):
                raise ConfigError(f"mixture standard deviations must be > 0, got {s.tolist()}")
            chol = torch.diag_embed(s.clone())
            cov = chol @ chol.transpose(-1, -2)
        elif s.shape == (k, d, d):
            cov = s
            chol = _cholesky("mixture covariances", cov)
        else:
            raise ConfigError(
                f"stds_or_covs must be a scalar, [K]={k}, [K, d]=[{k}, {d}] or [K, d, d]; got {tuple(s.shape)}"
            )
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=torch.float64)
        else:
            w = as_float_tensor("weights", weights, dtype=torch.float64, device="cpu")
            if w.shape != (k,):
                raise ConfigError(f"weights must have shape [{k}] (one per mean), got {tuple(w.shape)}")
            if bool((w <= 0).any()):
                raise ConfigError(f"weights must all be > 0, got {w.tolist()}")
            w = w / w.sum()
        self.n_components, self.dim = k, d
        self.register_buffer("means", means)
        self.register_buffer("covs", cov)
        self.register_buffer("scale_trils", chol)
        self.register_buffer("weights", w)
        self.register_buffer("_half_log_dets", torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1))

    def _component_terms(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """log w_k + log N(x; μ_k, Σ_k) as [batch, K], and the whitened residuals z [K, d, batch]."""
        _check_x(x, self.dim, "GaussianMixture")
        means = self.means.to(x)
        chol = self.scale_trils.to(x)
        diff = (x[None, :, :] - means[:, None, :]).transpose(1, 2)  # [K, d, batch]
        z = torch.linalg.solve_triangular(chol, diff, upper=False)
        log_comp = (
            -0.5 * (z * z).sum(1).T
            - self._half_log_dets.to(x)[None, :]
            - 0.5 * self.dim * _LOG_2PI
            + torch.log(self.weights.to(x))[None, :]
        )
        return log_comp, z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x), shape [batch]."""
        return torch.logsumexp(self._component_terms(x)[0], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(U(x), Σ_k r_k(x) Σ_k⁻¹ (x - μ_k)) analytically, both detached."""
        x = x.detach()
        log_comp, z = self._component_terms(x)
        log_p = torch.logsumexp(log_comp, dim=1)
        resp = torch.exp(log_comp - log_p[:, None])  # [batch, K]
        chol = self.scale_trils.to(x)
        prec_diff = torch.linalg.solve_triangular(chol.transpose(-1, -2), z, upper=True)  # [K, d, batch]
        grad = torch.einsum("bk,kdb->bd", resp, prec_diff)
        return -log_p, grad

    def log_normalizer(self) -> torch.Tensor:
        """0: U is the exact negative log density."""
        return torch.zeros((), dtype=self.means.dtype, device=self.means.device)

    def mean(self) -> torch.Tensor:
        """Exact mean Σ_k w_k μ_k (float64)."""
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Exact covariance Σ_k w_k (Σ_k + μ_k μ_kᵀ) - μ μᵀ (float64)."""
        m = self.mean()
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - torch.outer(m, m)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Exact draws: k ~ Categorical(w), x = μ_k + L_k ξ; Tensor[n, d]."""
        n = check_int("n", n)
        dev = self.means.device
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        xi = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=dev)
        x = self.means[comp] + torch.einsum("nij,nj->ni", self.scale_trils[comp], xi)
        return x.to(_sample_dtype(dtype))


class Banana(Energy):
    r"""The twisted-Gaussian "banana" of Haario, Saksman & Tamminen (1999).

    x ~ N(0, diag(s², 1, ..., 1)) pushed through the volume-preserving map
    φ_b(x) = (x₁, x₂ + b (x₁² - s²), x₃, ..., x_d).  Hence
    x₁ ~ N(0, s²), x₂ | x₁ ~ N(b (x₁² - s²), 1), x_i ~ N(0, 1) for i ≥ 3, and

    U(x) = x₁² / (2 s²) + (x₂ - b (x₁² - s²))² / 2 + Σ_{i≥3} x_i² / 2 + (d/2) log 2π + log s.

    Exact sampling applies φ_b to Gaussian draws.  Exact moments: E x = 0,
    Var x₁ = s², Var x₂ = 1 + 2 b² s⁴, Cov(x₁, x₂) = 0.

    Parameters
    ----------
    b : float
        Twist, >= 0.  Haario et al. use b = 0.03 ("moderately twisted") and b = 0.1 ("strongly
        twisted", the default here).
    scale : float
        s, the standard deviation of x₁ (Haario et al.: s = 10, the default).
    dim : int
        d >= 2.

    Notes
    -----
    Z = 1 (U is the exact negative log density), so ``log_normalizer()`` is 0.
    """

    def __init__(self, b: float = 0.1, scale: float = 10.0, dim: int = 2):
        super().__init__()
        self.b = check_positive("b", b, allow_zero=True)
        self.scale = check_positive("scale", scale)
        self.dim = check_int("dim", dim, minimum=2)

    def _const(self) -> float:
        return 0.5 * self.dim * _LOG_2PI + math.log(self.scale)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x), shape [batch]."""
        return -self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_x(x, self.dim, "Banana")
        x1, x2 = x[:, 0], x[:, 1]
        r = x2 - self.b * (x1 * x1 - self.scale**2)
        u = 0.5 * (x1 / self.scale) ** 2 + 0.5 * r * r + self._const()
        if self.dim > 2:
            u = u + 0.5 * (x[:, 2:] ** 2).sum(-1)
        return u

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """U(x) and ∇U = (x₁/s² - 2 b x₁ r, r, x₃, ...) with r = x₂ - b(x₁² - s²); detached."""
        x = x.detach()
        u = self.forward(x)
        x1, x2 = x[:, 0], x[:, 1]
        r = x2 - self.b * (x1 * x1 - self.scale**2)
        grad = x.clone()
        grad[:, 0] = x1 / self.scale**2 - 2.0 * self.b * x1 * r
        grad[:, 1] = r
        return u, grad

    def log_normalizer(self) -> torch.Tensor:
        """0: U is the exact negative log density."""
        return torch.zeros((), dtype=torch.float64)

    def mean(self) -> torch.Tensor:
        """Exact mean (zero), float64."""
        return torch.zeros(self.dim, dtype=torch.float64)

    def covariance(self) -> torch.Tensor:
        """Exact covariance diag(s², 1 + 2 b² s⁴, 1, ..., 1), float64."""
        c = torch.ones(self.dim, dtype=torch.float64)
        c[0] = self.scale**2
        c[1] = 1.0 + 2.0 * self.b**2 * self.scale**4
        return torch.diag(c)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None, device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """Exact draws φ_b(ξ), ξ ~ N(0, diag(s², 1, ..., 1)); Tensor[n, d]."""
        n = check_int("n", n)
        xi = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=device)
        xi[:, 0] *= self.scale
        xi[:, 1] += self.b * (xi[:, 0] ** 2 - self.scale**2)
        return xi.to(_sample_dtype(dtype))


class DoubleWell(Energy):
    r"""A double well in x₁, standard normal in the other coordinates.

    p(x) ∝ exp(-V(x₁)) N(x₂, ..., x_d; 0, I) with V(t) = h (t² - 1)² + c t, so

    U(x) = h (x₁² - 1)² + c x₁ + ½ Σ_{i≥2} x_i² + log Z₁ + ((d - 1)/2) log 2π,

    where Z₁ = ∫ exp(-V(t)) dt is computed once, in float64, by adaptive quadrature
    (``scipy.integrate.quad`` over the real line, relative error ~1e-12).  h > 0 is the barrier
    height at 0 above the two minima ±1 (for c = 0); the tilt c makes one well deeper than the
    other (unequal mode weights).

    Exact sampling of x₁ is by rejection (von Neumann 1951) from the two-component proposal
    q(t) = ½ N(t; -m, τ²) + ½ N(t; m, τ²).  Because q ≥ ½ N(t; ±m, τ²) and V(t) + (t ∓ m)²/(2τ²) is
    a quartic polynomial, the bound M = sup exp(-V)/q is found exactly from the real roots of two
    cubics (plus the endpoint t = 0), so the accepted draws follow p exactly.  (m, τ) are chosen
    on a small grid to maximise the acceptance rate, stored in ``acceptance_rate``.

    Parameters
    ----------
    dim : int
        d >= 1 (default 2).
    barrier : float
        h > 0 (default 2).
    tilt : float
        c (default 0: symmetric wells).

    Notes
    -----
    Z = 1 (U is the exact negative log density), so ``log_normalizer()`` is 0.
    """

    def __init__(self, dim: int = 2, barrier: float = 2.0, tilt: float = 0.0):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.barrier = check_positive("barrier", barrier)
        if isinstance(tilt, bool) or not isinstance(tilt, (int, float)) or not math.isfinite(float(tilt)):
            raise ConfigError(f"tilt must be a finite number, got {tilt!r}")
        self.tilt = float(tilt)
        self.log_z1 = self._log_z1()
        self._proposal = self._best_proposal()

    # -- exact 1-D quantities -------------------------------------------------------------
    def _v(self, t):
        return self.barrier * (t * t - 1.0) ** 2 + self.tilt * t

    def _critical_points(self) -> np.ndarray:
        # V'(t) = 4h t³ - 4h t + c
        roots = np.roots([4.0 * self.barrier, 0.0, -4.0 * self.barrier, self.tilt])
        return np.sort(roots[np.abs(roots.imag) < 1e-9].real)

    def _quad(self, fn) -> float:
        """∫ fn(t) exp(-(V(t) - min V)) dt over the real line, by adaptive quadrature (float64).

        The integral is cut at ±R where V - min V > 800 (the neglected mass is below e^-790) and
        split at the critical points of V so that narrow wells are never missed.
        """
        from scipy import integrate

        crit = self._critical_points()
        v0 = float(min(self._v(t) for t in crit))
        r = 2.0
        while min(self._v(r), self._v(-r)) - v0 < 800.0:
            r *= 2.0
        knots = [-r, *[float(t) for t in crit], r]
        total = 0.0
        for lo, hi in zip(knots[:-1], knots[1:]):
            if hi > lo:
                val, _ = integrate.quad(lambda t: fn(t) * math.exp(-(self._v(t) - v0)), lo, hi,
                                        epsabs=0.0, epsrel=1e-13, limit=500)
                total += val
        return total, v0

    def _log_z1(self) -> float:
        val, v0 = self._quad(lambda t: 1.0)
        return math.log(val) - v0

    def x1_moment(self, k: int) -> float:
        """E[x₁^k] by adaptive quadrature (float64)."""
        val, v0 = self._quad(lambda t: t**k)
        return float(val * math.exp(-v0 - self.log_z1))

    def _log_bound(self, m: float, tau: float) -> float:
        """log sup_t exp(-V(t)) / q(t), exactly, for the proposal ½N(-m, τ²) + ½N(m, τ²)."""
        h, c, a = self.barrier, self.tilt, 1.0 / tau**2
        best = -math.inf
        for sign in (1.0, -1.0):  # t >= 0 with the component at +m, t <= 0 with the one at -m
            # f(t) = -V(t) + (t - sign m)²/(2τ²);  f'(t) = -4h t³ + (4h + a) t - c - a sign m
            roots = np.roots([-4.0 * h, 0.0, 4.0 * h + a, -c - a * sign * m])
            cands = [0.0] + [float(r.real) for r in roots if abs(r.imag) < 1e-9 and sign * r.real >= 0]
            for t in cands:
                best = max(best, -self._v(t) + (t - sign * m) ** 2 / (2.0 * tau**2))
        # exp(-V)/q <= exp(f) / (½ · (2π τ²)^(-1/2))
        return best + math.log(2.0) + 0.5 * _LOG_2PI + math.log(tau)

    def _best_proposal(self) -> Tuple[float, float, float]:
        best = (-math.inf, 1.0, 1.0, 0.0)
        for m in np.linspace(0.0, 1.5, 16):
            for tau in np.geomspace(0.05, 3.0, 40):
                log_m = self._log_bound(float(m), float(tau))
                log_acc = self.log_z1 - log_m  # acceptance = Z₁ / M
                if log_acc > best[0]:
                    best = (log_acc, float(m), float(tau), log_m)
        log_acc, m, tau, log_m = best
        self.acceptance_rate = math.exp(log_acc)
        return m, tau, log_m + 1e-12 * max(1.0, abs(log_m))  # margin for float rounding

    def _sample_x1(self, n: int, generator: Optional[torch.Generator], device) -> torch.Tensor:
        m, tau, log_m = self._proposal
        out, have = [], 0
        while have < n:
            k = int((n - have) / max(self.acceptance_rate, 1e-3) * 1.2) + 16
            side = torch.where(torch.rand(k, generator=generator, dtype=torch.float64, device=device) < 0.5, -m, m)
            t = side + tau * torch.randn(k, generator=generator, dtype=torch.float64, device=device)
            log_q = torch.logsumexp(
                torch.stack([-(t - m) ** 2, -(t + m) ** 2]) / (2 * tau**2), dim=0
            ) - math.log(2.0) - 0.5 * _LOG_2PI - math.log(tau)
            log_ratio = -self._v(t) - log_q - log_m
            u = torch.rand(k, generator=generator, dtype=torch.float64, device=device)
            acc = t[torch.log(u) < log_ratio]
            out.append(acc)
            have += acc.numel()
        return torch.cat(out)[:n]

    # -- Energy API ------------------------------------------------------------------------
    def _const(self) -> float:
        return self.log_z1 + 0.5 * (self.dim - 1) * _LOG_2PI

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x), shape [batch]."""
        return -self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_x(x, self.dim, "DoubleWell")
        u = self._v(x[:, 0]) + self._const()
        if self.dim > 1:
            u = u + 0.5 * (x[:, 1:] ** 2).sum(-1)
        return u

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """U(x) and ∇U = (4h x₁ (x₁² - 1) + c, x₂, ..., x_d); detached."""
        x = x.detach()
        u = self.forward(x)
        grad = x.clone()
        x1 = x[:, 0]
        grad[:, 0] = 4.0 * self.barrier * x1 * (x1 * x1 - 1.0) + self.tilt
        return u, grad

    def log_normalizer(self) -> torch.Tensor:
        """0: U is the exact negative log density."""
        return torch.zeros((), dtype=torch.float64)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None, device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """Exact draws: x₁ by exact rejection sampling, the other coordinates N(0, 1); Tensor[n, d]."""
        n = check_int("n", n)
        x1 = self._sample_x1(n, generator, device)
        rest = torch.randn(n, self.dim - 1, generator=generator, dtype=torch.float64, device=device)
        return torch.cat([x1[:, None], rest], dim=1).to(_sample_dtype(dtype))
