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

:func:`geyer_thompson_mle` is the whole MCMC-MLE driver written for any exponential family
p_theta(x) ∝ exp(theta . s(x)): it needs only the observed (mean) statistics and a callable that simulates
statistics at a given theta, so the ERGM (:mod:`.mcmc_mle`) and other exponential-family energies
(:mod:`.exponential_family`) share it. It detects chains that do not mix (no accepted proposal, or
simulated statistics with a singular covariance, so that the Geyer–Thompson approximation has no
curvature in some direction) and then restarts from a start damped towards a safe point instead of
taking a step.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linprog
from scipy.special import logsumexp, softmax

from .information import invert_information, standard_errors
from .newton import newton_maximize

__all__ = ["in_convex_hull", "hull_step_length", "maximize_gt", "weighted_moments", "chain_mean_covariance",
           "boundary_direction", "mixing_problem", "format_theta", "SimulatedStatistics", "GeyerThompsonResult",
           "geyer_thompson_mle"]


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


def boundary_direction(points: np.ndarray, x: np.ndarray) -> Optional[np.ndarray]:
    """A direction u != 0 with u . (s - x) <= 0 for every row s of ``points`` and < 0 for some, or None.

    Such a u exists exactly when ``x`` is not in the relative interior of the convex hull of the points
    (it lies on the hull's relative boundary, or outside). For an exponential family whose attainable
    statistics are ``points`` and ``x = s(y_obs)``, it is a direction of recession: the log-likelihood
    theta . x - log Z(theta) does not decrease along theta + t u, and the MLE does not exist
    (Barndorff-Nielsen 1978, Thm 9.13; Geyer 2009, "Likelihood inference in exponential families and
    directions of recession", EJS). Linear program: find u with (s_i - x) . u <= 0 for all i and
    sum_i (x - s_i) . u = 1 (the normalisation excludes directions orthogonal to the points' affine hull).
    Returns u scaled to max |u_k| = 1.
    """
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0) - np.asarray(x, dtype=np.float64)
    if pts.shape[0] < 2:
        return None
    scale = np.maximum(np.abs(pts).max(0), 1e-300)
    P = pts / scale
    p = P.shape[1]
    res = linprog(np.zeros(p), A_ub=P, b_ub=np.zeros(P.shape[0]), A_eq=-P.sum(0, keepdims=True), b_eq=[1.0],
                  bounds=[(None, None)] * p, method="highs")
    if res.status != 0:
        return None
    u = res.x / scale
    return u / np.abs(u).max()


def mixing_problem(statistics: np.ndarray, acceptance_rate: float, basis: Optional[np.ndarray] = None, *,
                   moves_per_draw: Optional[float] = None, move: str = "proposal",
                   tol: float = 1e-10) -> Optional[str]:
    """Why a simulated sample cannot drive a Geyer–Thompson step, or None when it can.

    Three failures: no proposal was accepted in any chain (every draw is the starting state); the chains
    barely move, fewer than one accepted proposal between consecutive draws on average
    (``moves_per_draw`` = acceptance rate x ``thin``, when given), so the draws are mostly
    repeats of the starting state and their spread says nothing about the model (a sticky chain started at
    the data reproduces the data and fakes convergence); or the covariance of the simulated statistics is
    singular along a direction of ``basis`` (columns: the directions in which the statistics can vary at
    all; default all of R^p), so the approximate log-likelihood is linear along it and its maximiser lies at
    infinity. Singularity: some projected statistic has zero variance, or the smallest eigenvalue of the
    projected correlation matrix is below ``tol``.
    """
    draws = np.asarray(statistics, dtype=np.float64).reshape(-1, np.shape(statistics)[-1])
    if acceptance_rate <= 0.0:
        return f"no {move} was accepted in any chain (acceptance rate 0)"
    if moves_per_draw is not None and moves_per_draw < 1.0:
        return (f"the chains barely move: {moves_per_draw:.2g} accepted {move}s between draws on average "
                f"(acceptance rate {acceptance_rate:.2g})")
    z = draws if basis is None else draws @ basis
    if z.shape[1] == 0:
        return None
    cov = np.atleast_2d(np.cov(z, rowvar=False))
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    span = np.abs(z).max(0) + 1.0
    if np.any(sd <= 1e-12 * span):
        return "some simulated statistics never changed (zero variance)"
    corr = cov / np.outer(sd, sd)
    if float(np.linalg.eigvalsh(corr)[0]) < tol:
        return "the simulated statistics are linearly dependent (singular covariance)"
    return None


@dataclass
class SimulatedStatistics:
    """What a simulator returns to :func:`geyer_thompson_mle`.

    ``statistics[k, c]`` is s(x) of the k-th draw of independent chain c ([K, C, p]); ``acceptance_rate``
    the mean acceptance rate; ``moves_per_draw`` (optional) the mean number of accepted proposals between
    consecutive draws (acceptance rate x ``thin``); ``degenerate_fraction`` (optional) the share of
    draws the model flags as degenerate (for an ERGM: empty or complete graphs); ``extra`` anything the
    simulator wants back with the final sample.
    """

    statistics: np.ndarray
    acceptance_rate: float
    moves_per_draw: Optional[float] = None
    degenerate_fraction: Optional[float] = None
    extra: Any = None


@dataclass
class GeyerThompsonResult:
    """Outcome of :func:`geyer_thompson_mle`.

    ``theta`` the estimate; ``cov`` = ``model_cov`` + ``mcmc_cov`` its estimated covariance;
    ``stderr`` / ``mcmc_se`` the square roots of their diagonals (NaN where there is no information, and
    everywhere when the final sample did not mix);
    ``information`` the (per-observation) simulated Fisher information at ``theta``;
    ``stderr_reliable`` / ``condition_number`` from :func:`invert_information`; ``converged`` Hummel's
    criterion met and the final sample mixed; ``restarts`` the number of damped restarts after chains
    that did not mix; ``problem`` the last mixing problem (None if the final sample mixed);
    ``degenerate`` the loop stopped in a degenerate region; ``final`` the final simulation;
    ``simulated`` the distinct statistic vectors of every simulation of the run (for a check of where the
    observed statistics sit in their convex hull, see :func:`boundary_direction`); ``history`` one dict per
    iteration.
    """

    theta: np.ndarray
    cov: np.ndarray
    model_cov: np.ndarray
    mcmc_cov: np.ndarray
    stderr: np.ndarray
    mcmc_se: np.ndarray
    information: np.ndarray
    converged: bool
    stderr_reliable: bool
    condition_number: float
    restarts: int
    n_iter: int
    step_length: float
    effective_sample_size: float
    problem: Optional[str]
    degenerate: bool
    final: SimulatedStatistics
    simulated: np.ndarray
    history: List[Dict[str, Any]] = field(default_factory=list)


def format_theta(theta: np.ndarray, labels: Optional[Sequence[str]]) -> str:
    """``(label=value, ...)`` for messages."""
    names = labels if labels is not None and len(labels) == len(theta) else [f"theta{k}" for k in range(len(theta))]
    return "(" + ", ".join(f"{n}={v:.4g}" for n, v in zip(names, theta)) + ")"


def geyer_thompson_mle(observed: np.ndarray, simulate: Callable[[np.ndarray, int, bool], SimulatedStatistics],
                       theta0: np.ndarray, *, n_draws: int, safe_theta: Optional[np.ndarray] = None,
                       n_obs: int = 1, max_iter: int = 30, margin: float = 0.05, final_sample_factor: int = 2,
                       max_restarts: int = 10, basis: Optional[np.ndarray] = None,
                       labels: Optional[Sequence[str]] = None, where: str = "mcmc_mle", move: str = "proposal",
                       restart_on_problem: bool = True, safe_name: str = "the safe point") -> GeyerThompsonResult:
    """Monte Carlo MLE of an exponential family by Geyer–Thompson steps with Hummel's step length.

    Model p_theta(x) = exp(theta . s(x)) / Z(theta); data with mean statistics ``observed`` (one graph:
    s(y_obs); ``n_obs`` i.i.d. observations: their mean statistics, so the log-likelihood is
    n_obs [theta . observed - log Z(theta)]). Iteration t simulates at theta_t, takes the step length
    gamma_t of Hummel, Hunter & Handcock (2012) and maximises the Geyer & Thompson (1992) approximation
    with pseudo-observation xi_t = gamma_t observed + (1 - gamma_t) s_bar_t. Converged: gamma = 1 twice in a
    row; then a final simulation with ``final_sample_factor`` times more draws gives theta_hat.

    Chains that do not mix (see :func:`mixing_problem`) give no usable step: the driver warns once and
    restarts from theta <- safe + (theta - safe) / 2 (damping towards ``safe_theta``; after
    ``max_restarts`` halvings, ``safe_theta`` itself), with fresh chains. If the chains do not mix at
    ``safe_theta`` either (or ``restart_on_problem`` is False), it stops with ``converged=False``.

    Standard errors (Hunter & Handcock 2006, §3.3): with I the importance-weighted covariance of the final
    draws re-weighted to theta_hat and V the Monte Carlo covariance of the weighted mean (spread across
    independent chains), model_cov = I^{-1} / n_obs and mcmc_cov = I^{-1} V I^{-1}; I is inverted by
    :func:`invert_information`.

    Parameters
    ----------
    observed : ndarray [p]
    simulate : callable
        ``simulate(theta, n_draws, fresh) -> SimulatedStatistics`` with statistics [K, C, p] from
        C >= 2 independent chains; ``fresh=True`` asks for chains started afresh (full burn-in), False lets
        them continue from their last states.
    theta0 : ndarray [p]
        Starting theta.
    n_draws : int
        K per iteration (the final iteration uses ``final_sample_factor * K``).
    safe_theta : ndarray [p], optional
        A point where the chains are known to mix (e.g. an independence model); None disables restarts.
    basis : ndarray [p, r], optional
        Directions in which the statistics can vary at all (mixing checks are restricted to them).
    labels, where, move, safe_name : str
        Names used in messages (coefficient names, the caller, what a proposal is, what ``safe_theta`` is).
    """
    observed = np.asarray(observed, dtype=np.float64)
    p = observed.size
    theta = np.array(theta0, dtype=np.float64)
    safe = None if safe_theta is None else np.asarray(safe_theta, dtype=np.float64)
    history: List[Dict[str, Any]] = []
    ones_in_row = restarts = it = 0
    converged = degenerate = False
    fresh = True
    warned = False
    stop_problem: Optional[str] = None
    gamma = 0.0
    seen: List[np.ndarray] = []
    while it < max_iter:
        sim = simulate(theta, n_draws, fresh)
        fresh = False
        draws = sim.statistics.reshape(-1, p)
        seen.append(np.unique(draws, axis=0))
        problem = mixing_problem(sim.statistics, sim.acceptance_rate, basis, moves_per_draw=sim.moves_per_draw,
                                 move=move)
        record = {"iteration": it + 1, "theta": theta.tolist(), "acceptance_rate": float(sim.acceptance_rate),
                  "degenerate_fraction": sim.degenerate_fraction}
        if problem is not None:
            record.update(gamma=None, restart=problem)
            history.append(record)
            at_safe = safe is not None and np.allclose(theta, safe, rtol=0, atol=1e-12)
            if not restart_on_problem or safe is None or at_safe:
                stop_problem = problem
                if restart_on_problem:
                    warnings.warn(f"{where}: the chains do not mix at {format_theta(theta, labels)} ({problem})"
                                  + (f", not even at {safe_name}" if at_safe else "")
                                  + "; no Geyer–Thompson step is possible and the fit stops unconverged",
                                  UserWarning, stacklevel=3)
                break
            old = theta
            theta = safe.copy() if restarts >= max_restarts else safe + 0.5 * (theta - safe)
            restarts += 1
            ones_in_row = 0
            fresh = True
            if not warned:
                warnings.warn(f"{where}: the chains do not mix at {format_theta(old, labels)} ({problem}); "
                              f"restarting from {format_theta(theta, labels)}, halfway towards {safe_name} "
                              "(repeated until they mix)", UserWarning, stacklevel=3)
                warned = True
            continue
        it += 1
        gamma = hull_step_length(draws, observed, margin=margin)
        xi = gamma * observed + (1.0 - gamma) * draws.mean(0)
        new = maximize_gt(draws, theta, xi).theta
        record.update(gamma=gamma, restart=None)
        history.append(record)
        frac = sim.degenerate_fraction
        if frac is not None and frac > 0.5 and gamma < 0.01:
            degenerate = True
            break
        theta = new
        ones_in_row = ones_in_row + 1 if gamma >= 1.0 else 0
        if ones_in_row >= 2:
            converged = True
            break

    sim = simulate(theta, n_draws * final_sample_factor, fresh)
    draws = sim.statistics.reshape(-1, p)
    seen.append(np.unique(draws, axis=0))
    problem = mixing_problem(sim.statistics, sim.acceptance_rate, basis, moves_per_draw=sim.moves_per_draw,
                                 move=move)
    if problem is not None and stop_problem is None and restart_on_problem:
        warnings.warn(f"{where}: the final sample at {format_theta(theta, labels)} does not mix ({problem}); "
                      "the fit is not converged", UserWarning, stacklevel=3)
    if problem is not None or stop_problem is not None:
        converged = False
        problem = problem or stop_problem
    gamma = hull_step_length(draws, observed, margin=margin)
    if gamma < 1.0:
        converged = False
    xi = gamma * observed + (1.0 - gamma) * draws.mean(0)
    theta_hat = maximize_gt(draws, theta, xi).theta if problem is None else theta
    log_w = draws @ (theta_hat - theta)
    _, info, ess = weighted_moments(draws, log_w)
    # a sample that does not mix has already been reported; its information is singular by construction
    inv, reliable, cond = invert_information(info, where=where, labels=labels, warn=problem is None)
    model_cov = inv / n_obs
    V = chain_mean_covariance(sim.statistics, log_w, xi)
    mcmc_cov = inv @ V @ inv
    cov = model_cov + mcmc_cov
    if problem is not None:  # a sample that does not mix estimates no covariance at all
        model_cov, mcmc_cov, cov = (np.full((p, p), np.nan) for _ in range(3))
    return GeyerThompsonResult(theta_hat, cov, model_cov, mcmc_cov, standard_errors(cov), standard_errors(mcmc_cov), info,
                               converged, reliable and problem is None, cond, restarts, it, gamma, ess, problem,
                               degenerate, sim, np.unique(np.concatenate(seen), axis=0), history)
