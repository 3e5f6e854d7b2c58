"""Log-likelihood of a fitted ERGM: exact for dyad-independent models, bridge sampling otherwise.

log p_theta(y) = theta . s(y) - log Z(theta).

* Dyad-independent models (edges, nodematch, nodecov): Z factorises over dyads,
  log Z(theta) = sum_d log(1 + exp(theta . delta_d s)), so the log-likelihood is the logistic one.
* Tiny graphs (at most ``EXACT_MAX_DYADS`` = 16 dyads, e.g. 6 undirected or 4 directed nodes): Z is summed
  over all 2^D graphs by :mod:`ebmlab.metrics.exact` on the ERGM energy (:class:`ebmlab.energies.ERGMEnergy`),
  the one place where ebmlab enumerates states; :func:`exact_mle` maximises that exact likelihood.
* Otherwise log Z(theta) = log Z(theta_ref) + sum_k log Z(theta_{k+1}) / Z(theta_k) along the straight path
  theta_k = theta_ref + (k/K)(theta - theta_ref). theta_ref keeps only the edges coefficient (set to the
  logit of the observed density) so that Z(theta_ref) = (1 + e^{theta_e})^D is exact (statnet uses the same
  kind of dyad-independent reference; Hunter & Handcock 2006, §3.2). Each ratio is a geometric bridge sampled
  at the midpoint m_k = (theta_k + theta_{k+1})/2 with Delta = theta_{k+1} - theta_k:

      Z(theta_{k+1}) / Z(theta_k) = E_{m_k}[exp(Delta/2 . s)] / E_{m_k}[exp(-Delta/2 . s)]

  (Meng & Wong 1996), which has no discretisation bias. Monte Carlo standard errors come from the spread
  of per-chain estimates (independent chains) by the delta method.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
from scipy.special import logsumexp

from ..metrics.exact import exact_expectation, exact_log_prob, exact_log_z

__all__ = ["logistic_loglik", "bridge_loglik", "exact_loglik", "exact_mle", "EXACT_MAX_DYADS"]

#: largest number of dyads for which :func:`exact_loglik` enumerates all graphs
EXACT_MAX_DYADS = 16


def logistic_loglik(bound, theta: np.ndarray) -> float:
    """Exact log-likelihood of a dyad-independent ERGM: sum_d [y_d eta_d - log(1 + e^{eta_d})]."""
    X, y = bound.change_statistics()
    eta = X @ np.asarray(theta, dtype=np.float64)
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def exact_loglik(bound, theta: np.ndarray) -> float:
    """log p_theta(y_obs) = theta . s(y_obs) - log Z(theta), log Z by enumerating all 2^D graphs
    (:func:`ebmlab.metrics.exact.exact_log_prob` of the ERGM energy; D up to its ``MAX_SITES`` = 20)."""
    energy = bound.energy(theta)
    return float(exact_log_prob(energy, bound.observed_dyads())[0])


def exact_mle(bound, *, tol: float = 1e-20, max_iter: int = 100):
    """The exact MLE of a small graph by Newton's method on the enumerated log-likelihood.

    l(theta) = theta . s(y_obs) - log Z(theta) has gradient s(y_obs) - E_theta[s] and Hessian -Cov_theta[s],
    both computed exactly by :func:`ebmlab.metrics.exact.exact_expectation` on the ERGM energy (all 2^D graphs,
    D <= 20). The MLE exists iff s(y_obs) lies in the interior of the convex hull of the attainable statistics
    (Barndorff-Nielsen 1978); otherwise the iterates diverge and ``converged`` is False.

    Returns
    -------
    theta : ndarray [p]
    loglik : float
        l(theta) at the returned theta.
    cov : ndarray [p, p]
        Cov_theta[s], the Fisher information at theta (its inverse is the MLE's asymptotic covariance).
    converged : bool
    """
    from .estimation.newton import newton_maximize  # (lazy: the estimators import this module)

    s_obs = bound.observed_statistics()
    p = bound.n_params

    def fun(theta):
        energy = bound.energy(theta)
        m = exact_expectation(energy, lambda x: _with_outer(energy.statistics(x))).numpy()
        mean, second = m[:p], m[p:].reshape(p, p)
        cov = second - np.outer(mean, mean)
        f = float(theta @ s_obs - exact_log_z(energy))
        return f, s_obs - mean, -cov

    res = newton_maximize(fun, np.zeros(p), tol=tol, max_iter=max_iter)
    return res.theta, float(res.value), -res.hessian, bool(res.converged)


def _with_outer(t):
    """[T, T T^T flattened] per row (torch): first and second moments of the statistics in one enumeration."""
    return torch.cat([t, (t.unsqueeze(2) * t.unsqueeze(1)).reshape(t.shape[0], -1)], dim=1)


def _log_mean_exp_by_chain(values: np.ndarray) -> Tuple[float, np.ndarray]:
    """log mean exp(values) over all draws and per-chain, values [K, C]."""
    overall = float(logsumexp(values) - math.log(values.size))
    per_chain = logsumexp(values, axis=0) - math.log(values.shape[0])
    return overall, per_chain


def bridge_loglik(bound, theta: np.ndarray, rng: np.random.Generator, *, n_bridges: int = 8,
                  n_chains: int = 32, n_draws: int = 16, burn_in: Optional[int] = None,
                  warm_burn_in: Optional[int] = None, thin: Optional[int] = None,
                  proposal: str = "tnt") -> Tuple[float, float]:
    """Bridge-sampling estimate of log p_theta(y_obs) and its Monte Carlo standard error.

    The bridges are visited from theta_ref to theta; the first starts at the observed graph after
    ``burn_in`` steps, each later one continues the chains of the previous bridge after ``warm_burn_in``
    steps (default: ``thin`` steps; neighbouring bridges are close).

    Returns
    -------
    loglik, mcse : float, float
    """
    theta = np.asarray(theta, dtype=np.float64)
    s_obs = bound.observed_statistics()
    D = bound.dyads.n_dyads
    ref = np.zeros_like(theta)
    if "edges" in bound.labels:
        k = bound.labels.index("edges")
        dens = min(max(bound.network.n_edges / D, 0.5 / D), 1 - 0.5 / D)
        ref[k] = math.log(dens / (1 - dens))
        log_z = D * float(np.logaddexp(0.0, ref[k]))
    else:
        log_z = D * math.log(2.0)
    burn_in = bound.default_burn_in() if burn_in is None else burn_in
    thin = bound.default_thin() if thin is None else thin
    warm_burn_in = thin if warm_burn_in is None else warm_burn_in
    start, burn = None, burn_in
    step = (theta - ref) / n_bridges
    var = 0.0
    for k in range(n_bridges):
        mid = ref + (k + 0.5) * step
        run = bound.run_chains(mid, n_chains=n_chains, n_draws=n_draws, burn_in=burn,
                               thin=thin, rng=rng, proposal=proposal, start=start)
        start, burn = run.final.A, warm_burn_in
        centred = run.statistics - s_obs  # [K, C, p]
        up, up_c = _log_mean_exp_by_chain(centred @ (step / 2))
        down, down_c = _log_mean_exp_by_chain(centred @ (-step / 2))
        log_z += up - down + float(step @ s_obs)
        # delta method on the log of a ratio of two means, chains as independent replicates
        a = np.exp(up_c - up)
        b = np.exp(down_c - down)
        contrib = a - b
        var += float(np.var(contrib, ddof=1) / contrib.size)
    return float(theta @ s_obs - log_z), math.sqrt(var)
