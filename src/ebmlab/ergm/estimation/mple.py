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

from ..._core.errors import ConfigError, DataError
from ..._core.validation import check_int
from ...objectives.pseudo_likelihood import pseudo_likelihood_loss
from ..loglik import logistic_loglik
from ..result import ERGMResult
from .information import invert_information
from .newton import newton_maximize

__all__ = ["fit_mple", "mple_estimate", "value_grad_hessian", "case_control_sample", "FULL_MPLE_MAX_DYADS"]


def _codes(col: np.ndarray, max_span: int) -> Tuple[np.ndarray, int]:
    """Order-preserving integer codes of a column and their number: the offset from the minimum for an
    integer-valued column of small span, else the rank among the sorted distinct values (a compiled hash table when
    numba is there and the column is long, else ``np.unique``)."""
    from ..kernels import AVAILABLE, factorize, integer_codes

    col = np.ascontiguousarray(col, dtype=np.float64)
    if AVAILABLE and col.size > 4096 and np.isfinite(col).all():
        codes, size = integer_codes(col, max_span)
        if size > 0:
            return codes, int(size)
        codes, uniq = factorize(col)
        return codes, max(int(uniq.size), 1)
    uniq, inv = np.unique(col, return_inverse=True)
    return inv.reshape(-1), max(int(uniq.size), 1)


def _compress(X: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of [X, y] (in lexicographic order, as ``np.unique(axis=0)``) with their multiplicities (or the
    sums of ``weights`` over equal rows).

    Each column is coded (:func:`_codes`) and the codes are combined into one mixed-radix int64 key (re-coded
    whenever the radix product could overflow), so only 1-D work is needed (``np.unique(axis=0)`` on 10^5-10^6
    rows is an order of magnitude slower).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cols = [X[:, k] for k in range(X.shape[1])] + [y]
    m = y.shape[0]
    key = np.zeros(m, dtype=np.int64)
    radix = 1
    for col in cols:
        inv, size = _codes(col, 4 * m)
        if radix * size >= 2 ** 62:
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1)
            radix = int(key.max()) + 1
        key = key * size + inv
        radix *= size
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    if radix <= 4 * m + 1024:   # few possible keys: count them directly, no sort
        present = np.bincount(key, minlength=radix) > 0
        first = np.full(radix, -1, dtype=np.int64)
        first[key[::-1]] = np.arange(m - 1, -1, -1)
        first = first[present]
        counts = np.bincount(key, weights=w, minlength=radix)[present]
    else:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=w, minlength=first.size)
    return X[first], y[first], counts.astype(np.float64)


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


#: graphs with more dyads than this are fitted by case-control MPLE unless ``n_controls`` says otherwise
FULL_MPLE_MAX_DYADS = 1 << 23


def case_control_sample(bound, n_controls: int, rng: np.random.Generator):
    """Every tie of the observed graph plus ``n_controls`` non-ties drawn uniformly with replacement, with
    weights 1 for ties and (D - E) / n_controls for the sampled non-ties.

    The weighted log pseudo-likelihood sum_{ties} l_d + (D - E)/m sum_{sampled non-ties} l_d is then an unbiased
    estimate of the full sum over all D dyads (Hansen–Hurwitz), so its maximiser converges to the MPLE as m grows:
    the case-control approximation of Raftery, Niu, Hoff & Yeung (2012), "Fast inference for the latent space
    network model using a case-control approximate likelihood", JCGS 21(4), applied to the pseudo-likelihood.
    No n x n array is built: non-ties are dyad ids drawn in [0, D) with the ties' ids rejected.
    Returns (X, y, w) with the change statistics from the compiled kernel.
    """
    from ..sparse import decode_dyads, dyad_ids

    net = bound.network
    n, directed, D = net.n_nodes, net.directed, bound.dyads.n_dyads
    E = net.n_edges
    tie_ids = np.sort(dyad_ids(net.edges[:, 0], net.edges[:, 1], n, directed))
    if D - E <= 0:
        raise DataError("case-control MPLE needs at least one non-tie: the graph is complete")
    picks = np.empty(0, dtype=np.int64)
    while picks.size < n_controls:
        d = rng.integers(0, D, 2 * (n_controls - picks.size) + 16)
        pos = np.searchsorted(tie_ids, d).clip(0, max(E - 1, 0))
        keep = d[tie_ids[pos] != d] if E else d
        picks = np.concatenate([picks, keep])[:n_controls]
    t_ctrl, h_ctrl = decode_dyads(picks, n, directed)
    tails = np.concatenate([net.edges[:, 0], t_ctrl])
    heads = np.concatenate([net.edges[:, 1], h_ctrl])
    X, y = bound.list_graphs().change_matrix(bound.compiled_terms, tails, heads)
    w = np.concatenate([np.ones(E), np.full(n_controls, (D - E) / n_controls)])
    return X, y, w


def fit_mple(bound, *, rng=None, max_iter: int = 100, n_controls: Optional[int] = None) -> ERGMResult:
    """Fit an ERGM by maximum pseudo-likelihood (logistic regression on change statistics).

    Parameters
    ----------
    bound : BoundERGM
    rng : numpy Generator, optional
        Used only by the case-control sample (``n_controls``).
    max_iter : int
        Newton iterations.
    n_controls : int, optional
        Fit on every tie plus this many sampled non-ties, weighted (:func:`case_control_sample`) instead of on all
        dyads. Default: all dyads when the graph has at most ``FULL_MPLE_MAX_DYADS`` (2^23) dyads, else
        max(10 E, 10^5) controls. The standard errors are then the weighted logistic ones (they do not include
        the case-control sampling error).

    Notes
    -----
    When the pseudo-likelihood has no maximum (complete separation: a statistic's change perfectly predicts
    the ties) the coefficients diverge; this is reported as ``converged=False`` with a UserWarning.
    """
    t0 = time.perf_counter()
    D = bound.dyads.n_dyads
    if n_controls is None and D > FULL_MPLE_MAX_DYADS:
        n_controls = max(10 * bound.network.n_edges, 100_000)
    weights = None
    if n_controls is not None:
        n_controls = check_int("n_controls", n_controls)
        if bound.backend != "numba":
            raise ConfigError("case-control MPLE (n_controls) runs on the compiled kernels: use backend='numba'")
        if rng is None:
            raise ConfigError("case-control MPLE samples non-ties: pass seed= or generator= to fit()")
        X, y, weights = case_control_sample(bound, n_controls, rng)
    elif bound.backend == "numba":
        # the compiled kernel on the observed graph's neighbour lists: the same matrix as the energy's
        X, y = bound.change_statistics()
    else:
        energy = bound.energy()
        x = bound.observed_dyads()
        X = energy.change_statistics(x)[0].numpy()  # the energy's delta(x) is -(1 - 2 y) * (X @ theta)
        y = x[0].numpy()
    Xc, yc, wc = _compress(X, y, weights)
    theta, info, converged, value = mple_estimate(Xc, yc, wc, max_iter=max_iter)
    cov, reliable, cond = invert_information(info, where="mple", labels=bound.labels)
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    notes = []
    if n_controls is not None:
        notes.append(f"case-control MPLE: all {bound.network.n_edges} ties and {n_controls} sampled non-ties "
                     f"(weight {(D - bound.network.n_edges) / n_controls:.4g}) out of {D} dyads; the standard errors "
                     "omit the sampling error of the controls")
    if not converged or not np.all(np.isfinite(theta)) or np.abs(theta).max() > 30:
        converged = False
        warnings.warn("MPLE did not converge: the pseudo-likelihood seems to have no finite maximum "
                      "(separation); coefficients are not meaningful", UserWarning, stacklevel=3)
    loglik = None
    if bound.dyad_independent and n_controls is None:
        loglik = logistic_loglik(bound, theta)
        notes.append("dyad-independent model: the MPLE is the MLE and the log-likelihood is exact")
    else:
        notes.append("dyad-dependent model: MPLE standard errors are logistic-regression ones and are "
                     "usually too small; use method='mcmc_mle' for inference")
    return ERGMResult(theta, stderr, list(bound.labels), "mple", bound.formula, bound.network.n_nodes,
                      bound.dyads.n_dyads, bound.network.directed, cov, None, loglik, 0.0 if loglik is not None
                      else None, converged, False,
                      {"distinct_rows": int(len(yc)), "log_pseudolikelihood": float(value),
                       "information_condition_number": cond, "backend": bound.backend,
                       "n_controls": n_controls}, notes, bound,
                      time.perf_counter() - t0, stderr_reliable=reliable and converged)
