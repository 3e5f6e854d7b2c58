"""Maximum pseudo-likelihood estimation (Strauss & Ikeda 1990; Besag 1975).

The pseudo-likelihood replaces p(y) by prod_d p(y_d | y_{-d}) and, for an ERGM,

    logit p(y_d = 1 | y_{-d}) = theta . delta_d s(y),

so the MPLE is a logistic regression of the dyad values on their change statistics. It is solved here by
Newton's method (IRLS) in float64 on the distinct (change statistic, response) rows with their counts.
Standard errors are sqrt(diag(I^{-1})) with I = X^T W X, W = diag(p (1 - p)), as a logistic fit reports;
they are exact asymptotic MLE standard errors only for dyad-independent models (where MPLE = MLE).
"""
from __future__ import annotations

import time
import warnings
from typing import Optional, Tuple

import numpy as np

from ..loglik import logistic_loglik
from ..result import ERGMResult
from .newton import newton_maximize

__all__ = ["fit_mple", "mple_estimate"]


def _compress(X: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of [X, y] with their multiplicities."""
    rows, counts = np.unique(np.column_stack([X, y]), axis=0, return_counts=True)
    return rows[:, :-1], rows[:, -1], counts.astype(np.float64)


def mple_estimate(X: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None, *, max_iter: int = 100):
    """Weighted logistic regression without intercept by Newton's method.

    Maximises l(theta) = sum_d w_d [y_d eta_d - log(1 + e^{eta_d})], eta = X theta.

    Returns
    -------
    theta : ndarray [p]
    information : ndarray [p, p]
        X^T diag(w p (1 - p)) X at theta.
    converged : bool
    loglik : float
    """
    w = np.ones(len(y)) if weights is None else weights

    def fun(theta):
        eta = X @ theta
        p = np.exp(-np.logaddexp(0.0, -eta))
        f = float(np.sum(w * (y * eta - np.logaddexp(0.0, eta))))
        g = X.T @ (w * (y - p))
        H = -(X * (w * p * (1.0 - p))[:, None]).T @ X
        return f, g, H

    res = newton_maximize(fun, np.zeros(X.shape[1]), tol=1e-20, max_iter=max_iter, max_step=20.0)
    converged = res.converged or float(np.abs(res.grad).max()) < 1e-8 * max(1.0, float(w.sum()))
    return res.theta, -res.hessian, converged, res.value


def fit_mple(bound, *, rng=None, max_iter: int = 100) -> ERGMResult:
    """Fit an ERGM by maximum pseudo-likelihood (logistic regression on change statistics).

    Parameters
    ----------
    bound : BoundERGM
    rng : ignored (deterministic; accepted for a uniform estimator signature)
    max_iter : int
        Newton iterations.

    Notes
    -----
    When the pseudo-likelihood has no maximum (complete separation: a statistic's change perfectly predicts
    the ties) the coefficients diverge; this is reported as ``converged=False`` with a UserWarning.
    """
    t0 = time.perf_counter()
    X, y = bound.change_statistics()
    Xc, yc, wc = _compress(X, y)
    theta, info, converged, value = mple_estimate(Xc, yc, wc, max_iter=max_iter)
    cov = _safe_inverse(info)
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    notes = []
    if not converged or not np.all(np.isfinite(theta)) or np.abs(theta).max() > 30:
        converged = False
        warnings.warn("MPLE did not converge: the pseudo-likelihood seems to have no finite maximum "
                      "(separation); coefficients are not meaningful", UserWarning, stacklevel=3)
    loglik = None
    if bound.dyad_independent:
        loglik = logistic_loglik(bound, theta)
        notes.append("dyad-independent model: the MPLE is the MLE and the log-likelihood is exact")
    else:
        notes.append("dyad-dependent model: MPLE standard errors are logistic-regression ones and are "
                     "usually too small; use method='mcmc_mle' for inference")
    return ERGMResult(theta, stderr, list(bound.labels), "mple", bound.formula, bound.network.n_nodes,
                      bound.dyads.n_dyads, bound.network.directed, cov, None, loglik, 0.0 if loglik is not None
                      else None, converged, False,
                      {"distinct_rows": int(len(yc)), "log_pseudolikelihood": float(value)}, notes, bound,
                      time.perf_counter() - t0)


def _safe_inverse(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(m)
