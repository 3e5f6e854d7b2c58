"""Damped Newton ascent for the smooth concave objectives of ERGM estimation.

Used by the MPLE (logistic log-likelihood), the Geyer–Thompson log-likelihood ratio of MCMC-MLE and CD,
and the energy-discrepancy loss. Each step solves H d = -g, backtracks on the objective (Armijo rule)
and optionally caps the step length. Convergence: the Newton decrement lambda^2 = g^T (-H)^{-1} g falls
below ``tol`` (Boyd & Vandenberghe 2004, §9.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

__all__ = ["NewtonResult", "newton_maximize"]


@dataclass
class NewtonResult:
    """Maximiser, value, gradient and Hessian there, iterations used, convergence flag."""

    theta: np.ndarray
    value: float
    grad: np.ndarray
    hessian: np.ndarray
    n_iter: int
    converged: bool


def newton_maximize(fun: Callable[[np.ndarray], Tuple[float, np.ndarray, np.ndarray]], theta0: np.ndarray, *,
                    tol: float = 1e-12, max_iter: int = 100, max_step: Optional[float] = None) -> NewtonResult:
    """Maximise a concave function with damped Newton steps.

    Parameters
    ----------
    fun : callable
        ``theta -> (f, grad, hessian)``; the Hessian must be negative semi-definite.
    theta0 : ndarray [p]
    tol : float
        Stop when the Newton decrement g^T (-H)^{-1} g < tol.
    max_step : float, optional
        Largest Euclidean length of one step (a trust-region safeguard).
    """
    theta = np.array(theta0, dtype=np.float64)
    f, g, H = fun(theta)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        negH = -H
        try:
            step = np.linalg.solve(negH + 1e-12 * np.eye(theta.size) * max(1.0, np.abs(negH).max()), g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(negH, g, rcond=None)[0]
        decrement = float(g @ step)
        if not np.isfinite(decrement):
            break
        if decrement < tol:
            converged = True
            break
        if max_step is not None:
            norm = float(np.linalg.norm(step))
            if norm > max_step:
                step = step * (max_step / norm)
        t = 1.0
        while True:
            cand = theta + t * step
            fc, gc, Hc = fun(cand)
            if np.isfinite(fc) and fc >= f + 1e-4 * t * float(g @ step) - 1e-13 * abs(f):
                break
            t *= 0.5
            if t < 1e-10:
                return NewtonResult(theta, f, g, H, it, decrement < 1e-6)
        theta, f, g, H = cand, fc, gc, Hc
    return NewtonResult(theta, f, g, H, it, converged)
