"""Maximum pseudo-likelihood estimation (Strauss & Ikeda 1990; Besag 1975).

The pseudo-likelihood replaces p(y) by prod_d p(y_d | y_{-d}) and, for an ERGM,

    logit p(y_d = 1 | y_{-d}) = theta . delta_d s(y),

so the MPLE is a logistic regression of the dyad values on their change statistics: the minimiser of the
generic pseudo-likelihood loss (:class:`ebmlab.objectives.PseudoLikelihood`) of the ERGM energy
(:class:`ebmlab.energies.ERGMEnergy`) at the observed graph. It is solved here by Newton's method in float64
on :func:`~ebmlab.objectives.pseudo_likelihood.pseudo_likelihood_loss` of the distinct (change statistic,
response) rows weighted by their counts (the same loss, each distinct dyad evaluated once).
Standard errors are sqrt(diag(I^{-1})) with I = X^T W X, W = diag(p (1 - p)), as a logistic fit reports;
they are exact asymptotic MLE standard errors only for dyad-independent models (where MPLE = MLE).
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from ...objectives.pseudo_likelihood import pseudo_likelihood_loss
from ..loglik import logistic_loglik
from ..result import ERGMResult
from .information import invert_information
from .newton import newton_maximize

__all__ = ["fit_mple", "mple_estimate", "value_grad_hessian"]


def _compress(X: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of [X, y] with their multiplicities."""
    rows, counts = np.unique(np.column_stack([X, y]), axis=0, return_counts=True)
    return rows[:, :-1], rows[:, -1], counts.astype(np.float64)


def value_grad_hessian(fn: Callable[[torch.Tensor], torch.Tensor], theta: np.ndarray
                       ) -> Tuple[float, np.ndarray, np.ndarray]:
    """``(f, grad f, Hessian f)`` at ``theta`` of a scalar torch function of a [p] float64 tensor, by autograd
    (one backward pass for the gradient, p for the Hessian: p is the number of ERGM coefficients)."""
    t = torch.tensor(np.asarray(theta, dtype=np.float64), requires_grad=True)
    f = fn(t)
    (g,) = torch.autograd.grad(f, t, create_graph=True)
    rows = [torch.autograd.grad(g[k], t, retain_graph=k + 1 < t.numel())[0] for k in range(t.numel())]
    H = torch.stack(rows) if rows else torch.zeros(0, 0, dtype=torch.float64)
    return float(f.detach()), g.detach().numpy(), H.detach().numpy()


def mple_estimate(X: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None, *, max_iter: int = 100):
    """Weighted logistic regression without intercept by Newton's method, on the pseudo-likelihood loss.

    Maximises l(theta) = sum_d w_d [y_d eta_d - log(1 + e^{eta_d})], eta = X theta, which is minus
    :func:`ebmlab.objectives.pseudo_likelihood.pseudo_likelihood_loss` of the flip energy changes
    delta_d = (2 y_d - 1) eta_d of the energy U = -theta . s (for an ERGM, ``ERGMEnergy.delta`` with
    change statistics X); its gradient and Hessian are taken by autograd (float64).

    Returns
    -------
    theta : ndarray [p]
    information : ndarray [p, p]
        X^T diag(w p (1 - p)) X at theta.
    converged : bool
    loglik : float
    """
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    sign = torch.as_tensor(2.0 * np.asarray(y, dtype=np.float64) - 1.0)
    wt = torch.as_tensor(w)

    def log_pl(theta: torch.Tensor) -> torch.Tensor:
        return -pseudo_likelihood_loss((sign * (Xt @ theta)).unsqueeze(0), wt)

    def fun(theta):
        return value_grad_hessian(log_pl, theta)

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
    energy = bound.energy()
    x = bound.observed_dyads()
    X = energy.change_statistics(x)[0].numpy()  # the energy's delta(x) is -(1 - 2 y) * (X @ theta)
    y = x[0].numpy()
    Xc, yc, wc = _compress(X, y)
    theta, info, converged, value = mple_estimate(Xc, yc, wc, max_iter=max_iter)
    cov, reliable, cond = invert_information(info, where="mple", labels=bound.labels)
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
                      {"distinct_rows": int(len(yc)), "log_pseudolikelihood": float(value),
                       "information_condition_number": cond}, notes, bound,
                      time.perf_counter() - t0, stderr_reliable=reliable and converged)
