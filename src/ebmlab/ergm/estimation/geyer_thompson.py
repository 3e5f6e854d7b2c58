"""Geyer–Thompson importance-sampling likelihood approximation with Hummel et al.'s step length.

With draws s_1..s_M of s(Y) under theta_t, the log-likelihood ratio of an ERGM is approximated by
(Geyer & Thompson 1992)

    l(theta) - l(theta_t) ≈ (theta - theta_t) . xi - log (1/M) sum_i exp((theta - theta_t) . s_i),

with xi = s(y_obs). It has a finite maximiser only if xi lies in the interior of the convex hull of the
draws. Hummel, Hunter & Handcock (2012, "Improving simulation-based algorithms for fitting ERGMs", JCGS)
replace xi by the pseudo-observation

    xi_gamma = gamma s(y_obs) + (1 - gamma) s_bar,

with the largest gamma in [0, 1] such that (1 + margin) xi_gamma - margin s_bar is still inside the hull
(statnet's ``steplength.margin``, default 0.05), which keeps every step inside the region where the
approximation can be trusted. Hull membership is a linear-programming feasibility problem.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from scipy.optimize import linprog
from scipy.special import logsumexp, softmax

from .newton import newton_maximize

__all__ = ["in_convex_hull", "hull_step_length", "maximize_gt", "weighted_moments", "chain_mean_covariance"]


def _distinct(points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    rows, counts = np.unique(points, axis=0, return_counts=True)
    return rows, counts.astype(np.float64)


def in_convex_hull(points: np.ndarray, x: np.ndarray) -> bool:
    """Is ``x`` a convex combination of the rows of ``points``? (LP: lambda >= 0, sum = 1, P^T lambda = x.)"""
    pts = np.unique(points, axis=0)
    scale = np.maximum(np.abs(pts).max(0), 1.0)
    P = pts / scale
    M = P.shape[0]
    A_eq = np.vstack([P.T, np.ones((1, M))])
    b_eq = np.concatenate([np.asarray(x) / scale, [1.0]])
    res = linprog(np.zeros(M), A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return res.status == 0


def hull_step_length(points: np.ndarray, observed: np.ndarray, *, margin: float = 0.05,
                     tol: float = 1e-3) -> float:
    """Largest gamma in [0, 1] with (1 + margin) xi_gamma - margin s_bar in the hull (bisection to ``tol``)."""
    mean = points.mean(0)
    target = lambda g: mean + (1.0 + margin) * g * (observed - mean)
    if in_convex_hull(points, target(1.0)):
        return 1.0
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if in_convex_hull(points, target(mid)):
            lo = mid
        else:
            hi = mid
    return lo


def maximize_gt(points: np.ndarray, theta_t: np.ndarray, xi: np.ndarray, *, max_iter: int = 100):
    """Maximise the Geyer–Thompson approximation of l(theta) - l(theta_t) with pseudo-observation ``xi``.

    Returns the NewtonResult (theta, value = approximate log-likelihood ratio, ...).
    """
    pts, counts = _distinct(points)
    log_c = np.log(counts)
    centred = pts - xi
    M = counts.sum()

    def fun(theta):
        d = theta - theta_t
        logits = centred @ d + log_c
        f = -float(logsumexp(logits) - math.log(M))
        w = softmax(logits)
        m = w @ centred
        cov = (centred * w[:, None]).T @ centred - np.outer(m, m)
        return f, -m, -cov

    return newton_maximize(fun, np.array(theta_t, dtype=np.float64), tol=1e-14, max_iter=max_iter)


def weighted_moments(points: np.ndarray, log_w: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float]:
    """Self-normalised importance-weighted mean and covariance, and the effective sample size
    (sum w)^2 / sum w^2."""
    w = softmax(log_w)
    mean = w @ points
    c = points - mean
    cov = (c * w[:, None]).T @ c
    ess = 1.0 / float(np.sum(w ** 2))
    return mean, cov, ess


def chain_mean_covariance(stats: np.ndarray, log_w: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Monte Carlo covariance of the self-normalised weighted mean of ``stats`` [K, C, p].

    Chains are independent replicates: with a_c = sum_{k} w_kc (s_kc - centre) and b_c = sum_k w_kc, the
    ratio estimator R = sum a / sum b has covariance ~ sum_c z_c z_c^T / (C (C - 1)),
    z_c = (a_c - R b_c) / mean(b) (delta method; autocorrelation within a chain is accounted for).
    """
    K, C, p = stats.shape
    lw = log_w.reshape(K, C)
    w = np.exp(lw - lw.max())
    a = np.einsum("kc,kcp->cp", w, stats - centre)
    b = w.sum(0)
    R = a.sum(0) / b.sum()
    z = (a - np.outer(b, R)) / b.mean()
    return z.T @ z / (C * (C - 1))
