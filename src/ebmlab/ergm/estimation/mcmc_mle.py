"""Monte Carlo maximum likelihood for ERGMs (Geyer & Thompson 1992; Hunter & Handcock 2006), with the
adaptive step length of Hummel, Hunter & Handcock (2012) — statnet's default ``MCMLE`` algorithm.

Algorithm
---------
1. theta_0 = MPLE (or ``init``).
2. Iteration t: run ``n_chains`` independent dyad-toggle MH chains at theta_t (from the observed graph in
   the first iteration, later from the chains' last states with a shorter burn-in), then take
   ``sample_size / n_chains`` draws per chain, ``interval`` steps apart. Find the step length
   gamma_t (see :mod:`.geyer_thompson`), set xi = gamma_t s_obs + (1 - gamma_t) s_bar and
   theta_{t+1} = argmax of the Geyer–Thompson approximation with pseudo-observation xi.
3. Convergence criterion (Hummel et al. 2012, §3.2): gamma_t = 1 in two consecutive iterations, i.e. the
   observed statistics sit well inside the sample (margin 5 %) twice in a row. Then one final iteration
   with ``final_sample_factor`` times more draws gives the estimate theta_hat and its standard errors.
   Without that within ``max_iter`` iterations the result is flagged ``converged=False`` with a warning.

Standard errors (statnet's approach, Hunter & Handcock 2006, §3.3)
-----------------------------------------------------------------
* model part: I(theta_hat)^{-1}, I = importance-weighted covariance of the final draws re-weighted to
  theta_hat (w_i ∝ exp((theta_hat - theta_t) . s_i));
* MCMC part: theta_hat - theta_hat_exact ≈ I^{-1} (weighted mean error), whose covariance
  I^{-1} V I^{-1} uses V, the Monte Carlo covariance of the weighted mean estimated from the spread across
  independent chains (ratio-estimator delta method; autocorrelation-robust);
* reported ``stderr = sqrt(diag(I^{-1} + I^{-1} V I^{-1}))``, ``mcmc_se = sqrt(diag(I^{-1} V I^{-1}))``; the
  summary's "MCMC %" column is the share of the variance due to MCMC, as in statnet.

The log-likelihood at theta_hat (``loglik=True``) is exact by enumeration for graphs with at most 16 dyads
and comes from :func:`ebmlab.ergm.loglik.bridge_loglik` otherwise.
Dyad-independent models have MLE = MPLE; unless ``force=True`` the exact logistic fit is returned.
"""
from __future__ import annotations

import time
import warnings
from typing import Optional, Sequence

import numpy as np

from ..._core.validation import check_int, check_positive
from ..loglik import EXACT_MAX_DYADS, bridge_loglik, exact_loglik
from ..model import degeneracy_fraction, warn_if_degenerate
from ..result import ERGMResult
from .geyer_thompson import chain_mean_covariance, hull_step_length, maximize_gt, weighted_moments
from .mple import fit_mple

__all__ = ["fit_mcmc_mle"]


def fit_mcmc_mle(bound, *, rng: np.random.Generator, init: Optional[Sequence[float]] = None,
                 sample_size: int = 1024, n_chains: int = 64, burn_in: Optional[int] = None,
                 interval: Optional[int] = None, warm_burn_in: Optional[int] = None, max_iter: int = 30,
                 margin: float = 0.05,
                 final_sample_factor: int = 2, proposal: str = "tnt", loglik: bool = True, n_bridges: int = 8,
                 force: bool = False) -> ERGMResult:
    """Fit an ERGM by MCMC maximum likelihood (see the module docstring for the algorithm).

    Parameters
    ----------
    bound : BoundERGM
    rng : numpy Generator
    init : sequence of float, optional
        Starting theta (default: the MPLE).
    sample_size : int
        Draws per iteration (spread over ``n_chains`` independent chains).
    n_chains : int
        Independent chains (>= 4; they also give the MCMC standard errors).
    burn_in, interval : int, optional
        MH steps per chain before the first draw and between draws (default 8 and 1/2 per dyad).
    warm_burn_in : int, optional
        Burn-in of later iterations, whose chains continue from the previous iteration's last states
        (default 2 per dyad).
    max_iter : int
    margin : float
        Hummel et al.'s step-length margin.
    final_sample_factor : int
        Draws of the final iteration = ``final_sample_factor * sample_size``.
    loglik : bool
        Compute the log-likelihood (exact for <= 16 dyads, else bridge sampling with ``n_bridges`` bridges).
    force : bool
        Run MCMC even for dyad-independent models.
    """
    t0 = time.perf_counter()
    sample_size = check_int("sample_size", sample_size, minimum=16)
    n_chains = check_int("n_chains", n_chains, minimum=4)
    max_iter = check_int("max_iter", max_iter)
    margin = check_positive("margin", margin, allow_zero=True)
    final_sample_factor = check_int("final_sample_factor", final_sample_factor)
    burn_in = bound.default_burn_in() if burn_in is None else check_int("burn_in", burn_in, minimum=0)
    interval = bound.default_interval() if interval is None else check_int("interval", interval)
    warm_burn_in = (bound.default_warm_burn_in() if warm_burn_in is None
                    else check_int("warm_burn_in", warm_burn_in, minimum=0))
    p = bound.n_params

    if bound.dyad_independent and not force:
        res = fit_mple(bound)
        res.method = "mcmc_mle"
        res.seconds = time.perf_counter() - t0
        res.notes = ["dyad-independent model: the MLE equals the MPLE (exact logistic fit, no MCMC needed; "
                     "pass force=True to run MCMC anyway)"]
        return res

    mple = fit_mple(bound) if init is None else None
    theta = np.asarray(init, dtype=np.float64) if init is not None else mple.coef.copy()
    if theta.shape != (p,) or not np.all(np.isfinite(theta)):
        raise_bad_init(theta, bound)
    s_obs = bound.observed_statistics()
    per_chain = max(2, -(-sample_size // n_chains))
    history = []
    ones_in_row = 0
    converged = False
    degenerate = False
    it = 0
    start, burn = None, burn_in
    for it in range(1, max_iter + 1):
        run = bound.run_chains(theta, n_chains=n_chains, n_draws=per_chain, burn_in=burn, interval=interval,
                               rng=rng, proposal=proposal, start=start)
        # later iterations continue the chains from their last states (statnet does the same)
        start, burn = run.final.A, warm_burn_in
        draws = run.statistics.reshape(-1, p)
        frac = degeneracy_fraction(run.n_ties, bound.dyads.n_dyads, bound.network.n_edges)
        gamma = hull_step_length(draws, s_obs, margin=margin)
        xi = gamma * s_obs + (1.0 - gamma) * draws.mean(0)
        new = maximize_gt(draws, theta, xi).theta
        history.append({"iteration": it, "gamma": gamma, "theta": theta.tolist(),
                        "degenerate_fraction": frac})
        if frac > 0.5 and gamma < 0.01:
            degenerate = True
            break
        theta = new
        ones_in_row = ones_in_row + 1 if gamma >= 1.0 else 0
        if ones_in_row >= 2:
            converged = True
            break

    # final iteration with a larger sample
    per_chain_final = per_chain * final_sample_factor
    run = bound.run_chains(theta, n_chains=n_chains, n_draws=per_chain_final, burn_in=burn,
                           interval=interval, rng=rng, proposal=proposal, start=start)
    draws = run.statistics.reshape(-1, p)
    frac = degeneracy_fraction(run.n_ties, bound.dyads.n_dyads, bound.network.n_edges)
    degenerate = warn_if_degenerate(frac, theta, bound.labels, "mcmc_mle") or degenerate
    gamma = hull_step_length(draws, s_obs, margin=margin)
    if gamma < 1.0:
        converged = False
    xi = gamma * s_obs + (1.0 - gamma) * draws.mean(0)
    theta_hat = maximize_gt(draws, theta, xi).theta
    log_w = draws @ (theta_hat - theta)
    _, info, ess = weighted_moments(draws, log_w)
    model_cov = _inverse(info)
    V = chain_mean_covariance(run.statistics, log_w, xi)
    mcmc_cov = model_cov @ V @ model_cov
    cov = model_cov + mcmc_cov
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    mcmc_se = np.sqrt(np.clip(np.diag(mcmc_cov), 0.0, None))
    if not converged and not degenerate:
        warnings.warn(f"mcmc_mle did not converge in {max_iter} iterations (last step length {gamma:.3f}); "
                      "increase max_iter/sample_size or check the model for near-degeneracy",
                      UserWarning, stacklevel=3)
    ll, ll_se = (None, None)
    if loglik and bound.dyads.n_dyads <= EXACT_MAX_DYADS:
        ll, ll_se = exact_loglik(bound, theta_hat), 0.0
    elif loglik and not degenerate:
        ll, ll_se = bridge_loglik(bound, theta_hat, rng, n_bridges=n_bridges, n_chains=n_chains,
                                  draws_per_chain=max(2, per_chain // 8), burn_in=burn_in,
                                  interval=interval, proposal=proposal)
    if mple is not None and not mple.converged:
        converged = False
    notes = ["standard errors include the MCMC error (column 'MCMC %'); MCMC error from "
             f"{n_chains} independent chains"]
    diagnostics = {"iterations": it, "final_step_length": gamma, "final_sample_size": int(draws.shape[0]),
                   "effective_sample_size": round(ess, 1), "acceptance_rate": float(run.acceptance_rate.mean()),
                   "degenerate_fraction": frac, "toggles_per_second": round(run.toggles_per_second),
                   "history": history}
    if mple is not None:
        diagnostics["mple"] = mple.coef.tolist()
        if not mple.converged:
            notes.append("the MPLE start did not converge (an observed statistic at the edge of its range?); "
                         "the MLE may not exist")
    return ERGMResult(theta_hat, stderr, list(bound.labels), "mcmc_mle", bound.formula, bound.network.n_nodes,
                      bound.dyads.n_dyads, bound.network.directed, cov, mcmc_se, ll, ll_se, converged, degenerate,
                      diagnostics, notes, bound, time.perf_counter() - t0)


def _inverse(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(m)


def raise_bad_init(theta, bound) -> None:
    """ConfigError for a starting theta of the wrong length or with non-finite values."""
    from ..._core.errors import ConfigError

    raise ConfigError(f"init must hold {bound.n_params} finite numbers ({', '.join(bound.labels)}), "
                      f"got {np.asarray(theta).tolist()}")
