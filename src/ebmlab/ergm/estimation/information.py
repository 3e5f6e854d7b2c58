"""Inverting an (observed or simulated) Fisher information matrix for standard errors.

The asymptotic covariance of an exponential-family estimate is I(theta)^{-1} (for the MLE
I = Cov_theta[s(Y)]; for the MPLE the logistic-regression information X^T W X). When I is singular or
numerically so (linearly dependent statistics, a statistic that never changes in the simulations, a
separated pseudo-likelihood) its inverse does not exist; the Moore–Penrose pseudo-inverse still gives
numbers, but they are not standard errors of anything (Golub & Van Loan 2013, §5.5.4). This module is
the one place where estimators invert an information matrix: it returns the inverse, whether it can be
trusted, and the 2-norm condition number kappa(I) = sigma_max / sigma_min, and warns when it cannot.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple

import numpy as np

from ..._core.errors import ConfigError

__all__ = ["invert_information", "standard_errors", "MAX_CONDITION"]

#: largest condition number whose inverse is trusted: beyond it float64 keeps fewer than ~4 significant
#: digits of the inverse (relative error up to kappa * 2.2e-16; Higham 2002, §7.2).
MAX_CONDITION = 1e12


def invert_information(info: np.ndarray, *, where: str, labels: Optional[Sequence[str]] = None,
                       warn: bool = True, max_condition: float = MAX_CONDITION
                       ) -> Tuple[np.ndarray, bool, float]:
    """Invert an information matrix, saying whether the result can be used for standard errors.

    Parameters
    ----------
    info : ndarray [p, p]
        Symmetric positive semi-definite information matrix.
    where : str
        Name of the caller, used in the warning (e.g. ``"mcmc_mle"``).
    labels : sequence of str, optional
        Coefficient names; the warning names those along the near-null direction.
    warn : bool
        Emit a UserWarning when the matrix is singular or ill-conditioned.
    max_condition : float
        Condition number above which the inverse is flagged unreliable.

    Returns
    -------
    inverse : ndarray [p, p]
        ``inv(info)`` when the matrix is well conditioned, else ``pinv(info)``.
    reliable : bool
        False when ``info`` is singular, ill-conditioned (kappa > ``max_condition``) or not finite.
    condition_number : float
        kappa(info) in the 2-norm (inf for a singular matrix).
    """
    m = np.asarray(info, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConfigError(f"{where}: an information matrix must be square, got shape {m.shape}")
    p = m.shape[0]
    if p == 0:
        return np.zeros((0, 0)), True, 1.0
    if not np.all(np.isfinite(m)):
        if warn:
            warnings.warn(f"{where}: the information matrix has non-finite entries; standard errors are "
                          "unreliable (reported as NaN)", UserWarning, stacklevel=3)
        return np.full((p, p), np.nan), False, float("inf")
    sv = np.linalg.svd(m, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
    reliable = bool(sv[0] > 0 and cond <= max_condition)
    if reliable:
        return np.linalg.inv(m), True, cond
    if warn:
        detail = ""
        if labels is not None and len(labels) == p and sv[0] > 0:
            # the eigenvector of the smallest eigenvalue: the combination of statistics with no information
            w, v = np.linalg.eigh(0.5 * (m + m.T))
            u = v[:, 0] / np.abs(v[:, 0]).max()
            terms = " ".join(f"{c:+.3g}*{l}" for c, l in zip(u, labels) if abs(c) > 1e-3)
            detail = f"; it has (almost) no information along {terms}"
        kind = "singular" if not np.isfinite(cond) or cond > 1e15 else "ill-conditioned"
        warnings.warn(f"{where}: the information matrix is {kind} (condition number {cond:.3g}){detail}; "
                      "its pseudo-inverse is used and the standard errors are unreliable (a statistic that "
                      "does not vary, linearly dependent statistics, or an estimate at infinity)",
                      UserWarning, stacklevel=3)
    return np.linalg.pinv(m), False, cond


def standard_errors(cov: np.ndarray) -> np.ndarray:
    """sqrt(diag(cov)), with NaN where a variance is not positive and finite.

    An asymptotic variance is positive whenever the information is invertible; a zero (the pseudo-inverse
    of a matrix with no information along a coefficient) would be printed as a standard error of 0 and a
    z value of infinity, which is the opposite of the truth.
    """
    v = np.diag(np.asarray(cov, dtype=np.float64)).copy()
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v) & (v > 0)
    out[ok] = np.sqrt(v[ok])
    return out
