"""Contrastive divergence for ERGMs (Hinton 2002; Hummel 2011; Krivitsky 2017, "Using contrastive
divergence to seed Monte Carlo MLE for exponential-family random graph models", CSDA).

Each iteration starts ``n_samples`` short chains at the observed graph and makes ``steps`` dyad-toggle
MH steps at the current theta_t (CD-k). The CD draws replace the long-run MCMC draws of MCMC-MLE in the
Geyer–Thompson step with Hummel et al.'s step length, as statnet's ``ergm(..., estimate = "CD")`` does:

    theta_{t+1} = argmax_theta (theta - theta_t) . xi - log mean_i exp((theta - theta_t) . s_i^{CD}).

The fixed point is the CD-k estimate E_{K_theta^k(y_obs)}[s] = s(y_obs) (exact MLE only as k -> inf).

Convergence: gamma = 1 and a Hotelling test of mean(s^CD) = s_obs (T^2 = M d^T Cov^{-1} d below the 95 %
chi-square quantile with p degrees of freedom) in two consecutive iterations; the estimate is then the
average of the next ``n_average`` iterates (Polyak averaging of a stochastic fixed-point iteration).

Starting point and frozen chains: as in :mod:`.mcmc_mle`, a separated MPLE (no finite maximum) is replaced
by the Bernoulli-graph point (edges = logit(density), other coefficients 0), and an iteration whose short
chains accept no toggle, accept fewer than one toggle per chain on average (acceptance rate x ``steps``
< 1), or give statistics with a singular covariance takes no step: theta is damped halfway towards that
point and the iteration repeated (a frozen chain reproduces s_obs exactly and would otherwise pass the
convergence test at once).

Standard errors: CD has no likelihood of its own; the reported SEs are the MLE's asymptotic ones at the
CD estimate, sqrt(diag(Cov_theta[s]^{-1})) from a full MCMC run at theta_hat (``se_n_samples`` draws).
"""
from __future__ import annotations

import time
import warnings
from typing import Optional, Sequence

import numpy as np
from scipy.stats import chi2

from ..._core.validation import check_int, check_positive
from ..result import ERGMResult
from .geyer_thompson import format_theta, hull_step_length, maximize_gt, mixing_problem
from .information import invert_information
from .mcmc_mle import reference_theta, starting_point, statistic_basis
from .simulated_information import errors_and_loglik

__all__ = ["fit_cd"]


def fit_cd(bound, *, rng: np.random.Generator, init: Optional[Sequence[float]] = None, steps: int = 8,
           n_samples: int = 1024, max_iter: int = 60, n_average: int = 5, margin: float = 0.05,
           se_n_samples: int = 1024, n_chains: int = 32, burn_in: Optional[int] = None,
           thin: Optional[int] = None, proposal: str = "tnt", loglik: bool = False,
           max_restarts: int = 10) -> ERGMResult:
    """Fit an ERGM by contrastive divergence (CD-``steps``); see the module docstring.

    Parameters
    ----------
    bound : BoundERGM
    rng : numpy Generator
    init : optional starting theta (default MPLE)
    steps : int
        MH toggles per short chain (statnet's ``CD.nsteps``, default 8).
    n_samples : int
        Short chains per iteration.
    max_iter, n_average : int
    margin : float
        Step-length margin.
    se_n_samples, n_chains, burn_in, thin : options of the MCMC run that gives the standard errors.
    loglik : bool
        Also estimate the log-likelihood (exact for dyad-independent models, bridge sampling otherwise).
    max_restarts : int
        Damped restarts after short chains that do not mix, before restarting at the Bernoulli-graph point.
    """
    t0 = time.perf_counter()
    steps = check_int("steps", steps)
    n_samples = check_int("n_samples", n_samples, minimum=16)
    max_iter = check_int("max_iter", max_iter)
    n_average = check_int("n_average", n_average)
    margin = check_positive("margin", margin, allow_zero=True)
    max_restarts = check_int("max_restarts", max_restarts, minimum=0)
    p = bound.n_params
    labels = list(bound.labels)
    safe = reference_theta(bound)
    notes = []
    theta, _ = starting_point(bound, init, safe, notes, "cd", rng=rng)
    basis = statistic_basis(bound, rng=rng)
    restarts = 0
    stuck = None
    s_obs = bound.observed_statistics()
    threshold = chi2.ppf(0.95, p)
    passed = 0
    converged = False
    averaged = []
    it = 0
    t2, gamma = float("inf"), 0.0
    while it < max_iter + n_average:
        run = bound.run_chains(theta, n_chains=n_samples, n_draws=1, burn_in=0, thin=steps, rng=rng,
                               proposal=proposal)
        draws = run.statistics.reshape(-1, p)
        acc = float(run.acceptance_rate.mean())
        problem = mixing_problem(run.statistics, acc, basis, moves_per_draw=acc * steps, move="toggle")
        if problem is not None:
            passed, converged, averaged = 0, False, []
            if np.allclose(theta, safe, rtol=0, atol=1e-12):
                stuck = problem
                warnings.warn(f"cd: the short chains do not mix at {format_theta(theta, labels)} ({problem}), not "
                              "even at the Bernoulli-graph point; the fit stops unconverged", UserWarning,
                              stacklevel=3)
                break
            old = theta
            theta = safe.copy() if restarts >= max_restarts else safe + 0.5 * (theta - safe)
            if restarts == 0:
                warnings.warn(f"cd: the short chains do not mix at {format_theta(old, labels)} ({problem}); "
                              f"restarting from {format_theta(theta, labels)}, halfway towards the Bernoulli-graph "
                              "point (repeated until they mix)", UserWarning, stacklevel=3)
            restarts += 1
            continue
        it += 1
        d = draws.mean(0) - s_obs
        cov = np.atleast_2d(np.cov(draws, rowvar=False))
        inv, ok, _ = invert_information(cov, where="cd", warn=False)
        t2 = float(n_samples * d @ inv @ d) if ok else float("inf")  # no test without a usable covariance
        gamma = hull_step_length(draws, s_obs, margin=margin)
        xi = gamma * s_obs + (1.0 - gamma) * draws.mean(0)
        theta = maximize_gt(draws, theta, xi).theta
        if converged:
            averaged.append(theta)
            if len(averaged) >= n_average:
                break
            continue
        passed = passed + 1 if (gamma >= 1.0 and t2 < threshold) else 0
        if passed >= 2:
            converged = True
        elif it >= max_iter:
            break
    theta_hat = np.mean(averaged, 0) if averaged else theta
    if not converged and stuck is None:
        why = "increase max_iter or n_samples"
        if restarts > 1:
            why = (f"the iteration ran {restarts} times into parameters where the short chains freeze (every "
                   f"toggle rejected, as at a separated MPLE), so the CD-{steps} estimate seems not to exist for "
                   "this graph; use method='mcmc_mle' or a larger steps")
        warnings.warn(f"cd did not converge in {max_iter} iterations; {why}", UserWarning, stacklevel=3)
    e = errors_and_loglik(bound, theta_hat, rng, "cd", loglik=loglik, se_n_samples=se_n_samples,
                          n_chains=n_chains, burn_in=burn_in, thin=thin, proposal=proposal)
    cov, stderr, ll, ll_se, degenerate = e["cov"], e["stderr"], e["loglik"], e["loglik_se"], e["degenerate"]
    frac, acc = e["degenerate_fraction"], e["acceptance_rate"]
    notes.insert(0, f"CD-{steps} estimate; standard errors are the MLE's asymptotic ones at the CD estimate "
                 "(inverse covariance of simulated statistics)")
    if restarts:
        notes.append(f"the short chains did not mix at the start; {restarts} damped restart(s) towards the "
                     "Bernoulli-graph point")
    diagnostics = {"iterations": it, "restarts": restarts, "hotelling_t2": round(t2, 3), "step_length": gamma,
                   "acceptance_rate": acc, "degenerate_fraction": frac,
                   "information_condition_number": e["information_condition_number"]}
    return ERGMResult(theta_hat, stderr, list(bound.labels), "cd", bound.formula, bound.network.n_nodes,
                      bound.dyads.n_dyads, bound.network.directed, cov, None, ll, ll_se, converged, degenerate,
                      diagnostics, notes, bound, time.perf_counter() - t0,
                      stderr_reliable=e["stderr_reliable"] and stuck is None)
