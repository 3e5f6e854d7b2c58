r"""KALE, the KL Approximate Lower-bound Estimator, between two samples (Arbel, Zhou & Gretton 2021,
"Generalized Energy Based Models", ICLR; the bound is Nguyen, Wainwright & Jordan 2010, "Estimating divergence
functionals and the likelihood ratio by convex risk minimization", IEEE Trans. Inf. Theory).

For x_1..x_n ~ P and y_1..y_m ~ Q and a Gaussian RKHS H,

.. math::
    \mathrm{KALE}_\lambda(P \,\|\, Q) = \sup_{f \in H}\; -\frac1n \sum_i f(x_i) - \frac1m \sum_j e^{-f(y_j)} + 1
                                        - \frac{\lambda}{2} \lVert f \rVert_H^2 .

Without the penalty and over all measurable f, the supremum is KL(P‖Q) (attained at f* = log(q/p)); over an
RKHS ball it is a lower bound that stays finite when P and Q are mutually singular.  The argument order is the
divergence's order (KALE is asymmetric).

**Solver.** By the representer theorem f = Σ_k α_k k(z_k, ·) over the pooled sample z = (x, y), so the problem is
a smooth, strictly convex one in α ∈ R^{n+m}:
L(α) = (1/n) 1ᵀ K_x α + (1/m) 1ᵀ exp(−K_y α) − 1 + (λ/2) αᵀ K α, KALE = −min L.  Its gradient is K g with
g_x = 1/n + λ α_x and g_y = −exp(−f(y))/m + λ α_y, and one Newton direction solves (D K + λ I) Δ = g
(D = diag(0, exp(−f(y))/m)): Δ_x = g_x / λ and an m × m linear system for Δ_y.  Damped Newton with an Armijo line
search runs in float64 until half the squared Newton decrement, ½ ∇Lᵀ Δ (the second-order estimate of L − min L),
is below ``tol`` (default 1e-10); a run that stops at ``max_iter`` first warns.  At the optimum α_x = −1/(nλ)
and α_y = exp(−f(y))/(mλ).

**Finite-sample bias and the role of λ.** The estimate is the supremum of an empirical objective, so it is
biased upward: for two samples of one law its expectation is, to second order around f = 0,
½ (1/n + 1/m) tr(Σ (C + λ)⁻¹) ≤ ½ (1/n + 1/m) d_λ, with d_λ = Σ_i s_i / (s_i + λ) the effective dimension of the
kernel at penalty λ (s_i the eigenvalues of K_yy / m).  That bound is returned as ``witness.null_bias``.  A smaller
λ makes the function class richer: the estimate increases monotonically as λ decreases (same samples), getting
nearer KL(P‖Q) but with a larger bias d_λ / n; a larger λ shrinks f toward 0 and KALE toward ½ MMD²-like
values (KALE_λ ≈ ½ ‖μ_P − μ_Q‖²_{(C+λ)⁻¹}).  For a consistent estimate of KL let λ → 0 slowly as n grows
(e.g. λ ∝ n^{-1/2}).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from .._core.errors import DataError
from .._core.random import as_generator
from .._core.validation import check_choice, check_int, check_positive
from .mmd import median_heuristic
from .samples import as_sample_pair, subsample_rows

_KERNELS = ("gaussian",)
#: default cap on the rows used from each sample (the Newton system is m × m; kernel matrices (n + m)²)
MAX_SAMPLES = 1000
#: default RKHS penalty λ
PENALTY = 1e-2


def _gram(a: torch.Tensor, b: torch.Tensor, h: float) -> torch.Tensor:
    d2 = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)
    return torch.exp(-d2 / (2.0 * h * h))


@dataclass
class KaleWitness:
    """The maximiser f(t) = Σ_k α_k exp(−|t − z_k|² / (2 h²)) of the KALE objective (``kale(...,
    return_witness=True)``); calling it on rows t (same trailing shape as the samples) returns f(t) in float64.

    Attributes
    ----------
    points : Tensor[n + m, d] — the pooled (possibly subsampled, flattened) sample z = (x, y).
    coef : Tensor[n + m] — α.
    bandwidth, penalty : float — h and λ.
    n_x, n_y : int — rows used from each sample.
    value : float — the KALE estimate.
    null_bias : float — ½ (1/n + 1/m) d_λ, the second-order expected estimate for two samples of one law.
    n_iter : int — Newton iterations; converged : bool.
    """

    points: torch.Tensor
    coef: torch.Tensor
    bandwidth: float
    penalty: float
    n_x: int
    n_y: int
    value: float
    null_bias: float
    n_iter: int
    converged: bool

    def __call__(self, t) -> torch.Tensor:
        t = torch.as_tensor(t).to(self.points)
        t = t.reshape(t.shape[0], -1) if t.ndim > 1 else t[:, None]
        if t.shape[1] != self.points.shape[1]:
            raise DataError(f"the witness takes rows of {self.points.shape[1]} values, got {t.shape[1]}")
        return _gram(t, self.points, self.bandwidth) @ self.coef


def _flatten(a, name: str):
    t = torch.as_tensor(a)
    if t.ndim > 2:
        t = t.reshape(t.shape[0], -1)
    return t


def kale(x, y, *, kernel: str = "gaussian", bandwidth: Optional[float] = None, penalty: float = PENALTY,
         max_samples: Optional[int] = MAX_SAMPLES, tol: float = 1e-10, max_iter: int = 200,
         generator: Union[torch.Generator, int, None] = None,
         return_witness: bool = False) -> Union[float, Tuple[float, KaleWitness]]:
    r"""KALE_λ(P‖Q) from x ~ P and y ~ Q (module docstring: definition, solver, bias).

    Parameters
    ----------
    x, y : array-like [n, d] and [m, d] (images [n, C, H, W] are flattened; 1-D arrays read as d = 1)
    kernel : {"gaussian"}
        k(a, b) = exp(−|a − b|² / (2 h²)).
    bandwidth : float, optional
        h; default the median heuristic on the pooled sample (:func:`ebmlab.metrics.median_heuristic`).
    penalty : float
        λ > 0 (default 1e-2; see the module docstring for its effect).
    max_samples : int or None
        Use at most this many rows of each sample (a uniformly random subset drawn with ``generator``; None: all).
    tol : float
        Stop when ½ × the squared Newton decrement (≈ L − min L) is below ``tol``.
    max_iter : int
        Newton iterations at most (a warning if not converged).
    generator : torch.Generator or int, optional
        Randomness of the subsampling (None: a generator seeded with 0, so the result is deterministic).
    return_witness : bool
        Also return the :class:`KaleWitness` f.

    Returns
    -------
    float, or (float, KaleWitness)
    """
    check_choice("kernel", kernel, _KERNELS)
    lam = check_positive("penalty", penalty)
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter)
    xs, ys = as_sample_pair(_flatten(x, "x"), _flatten(y, "y"))
    g = as_generator(generator) if generator is not None else torch.Generator().manual_seed(0)
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=2)
    xs, ys = subsample_rows(xs, max_samples, g), subsample_rows(ys, max_samples, g)
    h = median_heuristic(xs, ys) if bandwidth is None else check_positive("bandwidth", bandwidth)
    n, m = xs.shape[0], ys.shape[0]
    z = torch.cat([xs, ys])
    K = _gram(z, z, h)
    Kyy, Ky = K[n:, n:], K[n:, :]
    alpha = torch.zeros(n + m, dtype=torch.float64, device=z.device)
    u = torch.zeros_like(alpha)  # u = K α (f on the pooled sample)
    eye = torch.eye(m, dtype=torch.float64, device=z.device)

    def objective(u_: torch.Tensor, quad: float) -> float:
        return float(u_[:n].mean() + torch.exp(-u_[n:]).mean()) - 1.0 + 0.5 * lam * quad

    quad = 0.0
    L = objective(u, quad)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        e = torch.exp(-u[n:])
        gvec = torch.cat([1.0 / n + lam * alpha[:n], -e / m + lam * alpha[n:]])
        dx = gvec[:n] / lam
        hdiag = e / m
        rhs = gvec[n:] - hdiag * (Ky[:, :n] @ dx)
        dy = torch.linalg.solve(hdiag[:, None] * Kyy + lam * eye, rhs)
        delta = torch.cat([dx, dy])
        Kd = K @ delta
        decrement = float(gvec @ Kd)  # ∇Lᵀ Δ = gᵀ K Δ >= 0
        if not math.isfinite(decrement):
            raise DataError("KALE: the Newton iteration produced non-finite values; give a larger penalty or bandwidth")
        if 0.5 * decrement < tol:
            converged = True
            break
        a_Kd, d_Kd = float(alpha @ Kd), float(delta @ Kd)
        t = 1.0
        while True:
            quad_t = quad - 2.0 * t * a_Kd + t * t * d_Kd
            L_t = objective(u - t * Kd, quad_t)
            if math.isfinite(L_t) and L_t <= L - 0.25 * t * decrement:
                break
            t *= 0.5
            if t < 1e-12:
                break
        if t < 1e-12:  # no decrease possible at float64 precision: at the optimum to machine accuracy
            converged = 0.5 * decrement < 1e-8 * max(1.0, abs(L))
            break
        alpha = alpha - t * delta
        u = u - t * Kd
        quad = quad_t
        L = L_t
    if not converged:
        warnings.warn(f"kale: Newton did not reach tol={tol:g} in {it} iterations (½ decrement "
                      f"{0.5 * decrement:.3g}); the value is a lower bound on the penalised supremum", stacklevel=2)
    value = max(-L, 0.0)  # the iteration starts at f = 0 (L = 0) and never increases L
    if not return_witness:
        return value
    s = torch.linalg.eigvalsh(Kyy / m).clamp_min(0.0)
    d_lam = float((s / (s + lam)).sum())
    w = KaleWitness(points=z, coef=alpha, bandwidth=h, penalty=lam, n_x=n, n_y=m, value=value,
                    null_bias=0.5 * (1.0 / n + 1.0 / m) * d_lam, n_iter=it, converged=converged)
    return value, w
