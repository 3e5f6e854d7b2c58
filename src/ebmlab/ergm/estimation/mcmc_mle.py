"""Monte Carlo maximum likelihood for ERGMs (Geyer & Thompson 1992; Hunter & Handcock 2006), with the
adaptive step length of Hummel, Hunter & Handcock (2012) — statnet's default ``MCMLE`` algorithm.

Algorithm
---------
1. theta_0 = MPLE (or ``init``). When the MPLE does not exist (the logistic regression is separated, so its
   coefficients diverge) the start is the Bernoulli-graph point instead: edges = logit(observed density),
   every other coefficient 0 (the MLE of the dyad-independent edges-only model; statnet's bridge
   reference point).
2. Iteration t: run ``n_chains`` independent dyad-toggle MH chains at theta_t (from the observed graph in
   the first iteration, later from the chains' last states with a shorter burn-in), then take
   ``n_samples / n_chains`` draws per chain, ``thin`` steps apart. Find the step length
   gamma_t (see :mod:`.geyer_thompson`), set xi = gamma_t s_obs + (1 - gamma_t) s_bar and
   theta_{t+1} = argmax of the Geyer–Thompson approximation with pseudo-observation xi.
3. Convergence criterion (Hummel et al. 2012, §3.2): gamma_t = 1 in two consecutive iterations, i.e. the
   observed statistics sit well inside the sample (margin 5 %) twice in a row. Then one final iteration
   with ``final_sample_factor`` times more draws gives the estimate theta_hat and its standard errors.
   Without that within ``max_iter`` iterations the result is flagged ``converged=False`` with a warning.
4. Chains that do not mix give no step: when no toggle is accepted (a frozen chain: at a separated MPLE every
   toggle is rejected and every draw equals s_obs, which would make gamma = 1 and "converge" at once), when
   fewer than one toggle is accepted between consecutive draws on average (acceptance rate x ``thin``
   < 1: sticky chains that mostly repeat the observed graph fake convergence the same way), or when the
   simulated statistics have a singular covariance in a direction in which the statistics can vary (the row
   space of the observed graph's change statistics), the fit warns and restarts fresh chains from a start
   damped halfway towards the Bernoulli-graph point, repeatedly (statnet stops with "did not mix at all").
   If this happens at the MLE itself, ``thin`` (the steps between draws) is too small for the model.

Existence of the MLE (Barndorff-Nielsen 1978, Thm 9.13; Handcock 2003, "Assessing degeneracy in statistical
models of social networks"): the MLE exists iff s_obs lies in the interior of the convex hull of the
statistics of all graphs. For graphs with at most 16 dyads this is decided exactly by enumerating all graphs
(:func:`.geyer_thompson.boundary_direction`); where it fails the fit warns, reports ``mle_exists=False``,
``converged=False``, no standard errors (NaN) and the direction of recession in ``diagnostics``. On larger
graphs an unconverged fit whose observed statistics sit on the boundary of the simulated statistics' hull
is warned about ("the MLE may not exist") and its standard errors are marked unreliable.

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

import math
import time
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np

from ..._core.validation import check_int, check_positive
from ..loglik import EXACT_MAX_DYADS, bridge_loglik, exact_loglik
from ..model import degeneracy_fraction, warn_if_degenerate
from ..result import ERGMResult
from .geyer_thompson import (SimulatedStatistics, boundary_direction, geyer_thompson_mle, in_convex_hull,
                             format_theta)
from .mple import FULL_MPLE_MAX_DYADS, case_control_sample, fit_mple

__all__ = ["fit_mcmc_mle", "reference_theta", "statistic_basis", "exact_mle_exists"]


def fit_mcmc_mle(bound, *, rng: np.random.Generator, init: Optional[Sequence[float]] = None,
                 n_samples: int = 1024, n_chains: int = 64, burn_in: Optional[int] = None,
                 thin: Optional[int] = None, warm_burn_in: Optional[int] = None, max_iter: int = 30,
                 margin: float = 0.05,
                 final_sample_factor: int = 2, proposal: str = "tnt", loglik: bool = True, n_bridges: int = 8,
                 force: bool = False, max_restarts: int = 10) -> ERGMResult:
    """Fit an ERGM by MCMC maximum likelihood (see the module docstring for the algorithm).

    Parameters
    ----------
    bound : BoundERGM
    rng : numpy Generator
    init : sequence of float, optional
        Starting theta (default: the MPLE, or the Bernoulli-graph point when the MPLE does not exist).
    n_samples : int
        Draws per iteration (spread over ``n_chains`` independent chains).
    n_chains : int
        Independent chains (>= 4; they also give the MCMC standard errors).
    burn_in, thin : int, optional
        MH steps per chain before the first draw and between draws (default 8 and 1/2 per dyad).
    warm_burn_in : int, optional
        Burn-in of later iterations, whose chains continue from the previous iteration's last states
        (default 2 per dyad).
    max_iter : int
        Geyer–Thompson iterations (restarts after chains that did not mix are not counted).
    margin : float
        Hummel et al.'s step-length margin.
    final_sample_factor : int
        Draws of the final iteration = ``final_sample_factor * n_samples``.
    loglik : bool
        Compute the log-likelihood (exact for <= 16 dyads, else bridge sampling with ``n_bridges`` bridges).
    force : bool
        Run MCMC even for dyad-independent models.
    max_restarts : int
        Damped restarts (each halves the distance to the Bernoulli-graph point) before restarting at that
        point itself.
    """
    t0 = time.perf_counter()
    n_samples = check_int("n_samples", n_samples, minimum=16)
    n_chains = check_int("n_chains", n_chains, minimum=4)
    max_iter = check_int("max_iter", max_iter)
    margin = check_positive("margin", margin, allow_zero=True)
    final_sample_factor = check_int("final_sample_factor", final_sample_factor)
    max_restarts = check_int("max_restarts", max_restarts, minimum=0)
    burn_in = bound.default_burn_in() if burn_in is None else check_int("burn_in", burn_in, minimum=0)
    thin = bound.default_thin() if thin is None else check_int("thin", thin)
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

    labels = list(bound.labels)
    safe = reference_theta(bound)
    notes = []
    theta, mple = starting_point(bound, init, safe, notes, "mcmc_mle", rng=rng)
    s_obs = bound.observed_statistics()

    mle_exists, recession = None, None
    if bound.dyads.n_dyads <= EXACT_MAX_DYADS:
        mle_exists, recession = exact_mle_exists(bound)
        if not mle_exists:
            u = ", ".join(f"{c:+.3g}*{l}" for c, l in zip(recession, labels) if abs(c) > 1e-9)
            msg = ("the MLE does not exist: the observed statistics "
                   f"{format_theta(s_obs, labels)} lie on the boundary of the convex hull of the statistics of all "
                   f"2^{bound.dyads.n_dyads} graphs (checked by enumeration), so the log-likelihood keeps "
                   f"increasing along theta + t u, u = ({u}), as t -> infinity; the estimate below is the last "
                   "iterate, with no standard errors")
            warnings.warn(f"mcmc_mle: {msg}", UserWarning, stacklevel=3)
            notes.append(msg)

    per_chain = max(2, -(-n_samples // n_chains))
    chains = {"start": None}

    def simulate(th: np.ndarray, n_draws: int, fresh: bool) -> SimulatedStatistics:
        start, burn = (None, burn_in) if fresh or chains["start"] is None else (chains["start"], warm_burn_in)
        run = bound.run_chains(th, n_chains=n_chains, n_draws=n_draws, burn_in=burn, thin=thin,
                               rng=rng, proposal=proposal, start=start)
        # later iterations continue the chains from their last states (statnet does the same)
        chains["start"] = run.final if run.backend == "numba" else run.final.A
        frac = degeneracy_fraction(run.n_ties, bound.dyads.n_dyads, bound.network.n_edges)
        acc = float(run.acceptance_rate.mean())
        return SimulatedStatistics(run.statistics, acc, acc * thin, frac, run)

    gt = geyer_thompson_mle(s_obs, simulate, theta, n_draws=per_chain, safe_theta=safe, max_iter=max_iter,
                            margin=margin, final_sample_factor=final_sample_factor, max_restarts=max_restarts,
                            basis=statistic_basis(bound, rng=rng), labels=labels, where="mcmc_mle", move="toggle",
                            restart_on_problem=mle_exists is not False,
                            safe_name="the Bernoulli-graph point " + format_theta(safe, labels))
    run = gt.final.extra
    frac = gt.final.degenerate_fraction
    theta_hat, converged = gt.theta, gt.converged
    degenerate = warn_if_degenerate(frac, theta_hat, labels, "mcmc_mle") or gt.degenerate
    draws = gt.final.statistics.reshape(-1, p)
    stderr_reliable = gt.stderr_reliable
    diagnostics_extra = {}
    cov, stderr, mcmc_se = gt.cov, gt.stderr, gt.mcmc_se
    if mle_exists is False:
        converged, stderr_reliable = False, False
        cov, stderr, mcmc_se = np.full((p, p), np.nan), np.full(p, np.nan), np.full(p, np.nan)
    elif not converged:
        # not decided by enumeration: were the observed statistics ever surrounded by simulated ones?
        u = boundary_direction(gt.simulated, s_obs) if mle_exists is None else None
        if u is not None:
            stderr_reliable = False
            where = "on the boundary" if in_convex_hull(gt.simulated, s_obs) else "outside"
            direction = ", ".join(f"{c:+.3g}*{l}" for c, l in zip(u, labels) if abs(c) > 1e-9)
            msg = (f"the observed statistics lie {where} of the convex hull of all {len(gt.simulated)} distinct "
                   f"statistic vectors simulated during the fit (no simulated graph exceeds them along "
                   f"u = ({direction})): the MLE may not exist (an observed statistic at the edge of what the "
                   "model can generate); the standard errors are unreliable")
            notes.append(msg)
            diagnostics_extra = {"boundary_direction": u.tolist()}
            warnings.warn(f"mcmc_mle did not converge; {msg}", UserWarning, stacklevel=3)
        elif gt.problem is None and not degenerate:
            warnings.warn(f"mcmc_mle did not converge in {max_iter} iterations (last step length "
                          f"{gt.step_length:.3f}); increase max_iter/n_samples or check the model for "
                          "near-degeneracy", UserWarning, stacklevel=3)
    if gt.restarts:
        notes.append(f"the chains did not mix at the start ({gt.history[0]['restart']}); {gt.restarts} damped "
                     "restart(s) towards the Bernoulli-graph point")
    ll, ll_se = (None, None)
    if loglik and bound.dyads.n_dyads <= EXACT_MAX_DYADS:
        ll, ll_se = exact_loglik(bound, theta_hat), 0.0
    elif loglik and not degenerate and gt.problem is None:
        ll, ll_se = bridge_loglik(bound, theta_hat, rng, n_bridges=n_bridges, n_chains=n_chains,
                                  n_draws=max(2, per_chain // 8), burn_in=burn_in,
                                  thin=thin, proposal=proposal)
    if mle_exists is not False:
        notes.insert(0, "standard errors include the MCMC error (column 'MCMC %'); MCMC error from "
                     f"{n_chains} independent chains")
    diagnostics = {"iterations": gt.n_iter, "restarts": gt.restarts, "final_step_length": gt.step_length,
                   "final_n_samples": int(draws.shape[0]),
                   "effective_sample_size": round(gt.effective_sample_size, 1),
                   "acceptance_rate": float(run.acceptance_rate.mean()),
                   "degenerate_fraction": frac, "toggles_per_second": round(run.toggles_per_second),
                   "backend": run.backend,
                   "information_condition_number": gt.condition_number, "history": gt.history}
    diagnostics.update(diagnostics_extra)
    if recession is not None:
        diagnostics["recession_direction"] = recession.tolist()
    if gt.problem is not None:
        diagnostics["mixing_problem"] = gt.problem
    if mple is not None:
        diagnostics["mple"] = mple.coef.tolist()
    from ..diagnostics import chain_diagnostics

    return ERGMResult(theta_hat, stderr, labels, "mcmc_mle", bound.formula, bound.network.n_nodes,
                      bound.dyads.n_dyads, bound.network.directed, cov, mcmc_se, ll, ll_se, converged, degenerate,
                      diagnostics, notes, bound, time.perf_counter() - t0, stderr_reliable=stderr_reliable,
                      mle_exists=mle_exists, chain_diagnostics=chain_diagnostics(gt.final.statistics, labels))


def reference_theta(bound) -> np.ndarray:
    """The Bernoulli-graph point: edges = logit(observed density) (clamped to [1/(2D), 1 - 1/(2D)]), every
    other coefficient 0. It is the MLE of the edges-only model, where dyad-toggle chains always mix; the
    bridge log-likelihood starts from the same point (Hunter & Handcock 2006, §3.2)."""
    theta = np.zeros(bound.n_params)
    if "edges" in bound.labels:
        D = bound.dyads.n_dyads
        dens = min(max(bound.network.n_edges / D, 0.5 / D), 1 - 0.5 / D)
        theta[bound.labels.index("edges")] = math.log(dens / (1 - dens))
    return theta


def statistic_basis(bound, rtol: float = 1e-10, *, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Orthonormal basis [p, r] of the row space of the observed graph's change statistics X [D, p].

    A direction u with X u = 0 is one along which no single toggle of the observed graph changes u . s (for
    linearly dependent statistics, e.g. kstar(1) = 2 edges, every graph); the mixing check of
    :func:`.geyer_thompson.mixing_problem` ignores such directions (they are non-identifiability, reported
    by the singular information, not a frozen chain).
    """
    if bound.dyads.n_dyads > FULL_MPLE_MAX_DYADS:
        # large graph: the change statistics of every tie and of 10^5 sampled non-ties span the same space
        X, _, _ = case_control_sample(bound, 100_000, np.random.default_rng(0) if rng is None else rng)
    else:
        X, _ = bound.change_statistics()
    X = np.unique(X, axis=0)
    _, sv, vt = np.linalg.svd(X, full_matrices=False)
    rank = int(np.sum(sv > rtol * max(sv[0], 1e-300))) if sv.size else 0
    return vt[:rank].T


def exact_mle_exists(bound) -> Tuple[bool, Optional[np.ndarray]]:
    """Does the MLE exist? Decided exactly for graphs with at most ``EXACT_MAX_DYADS`` dyads.

    Enumerates the statistics of all 2^D graphs (:func:`ebmlab.metrics.exact.enumerate_states` on the dyad
    vector) and looks for a direction of recession u (:func:`.geyer_thompson.boundary_direction`):
    u . (s(y) - s(y_obs)) <= 0 for every graph y. Returns (exists, u), u None when the MLE exists.
    """
    from ...metrics.exact import enumerate_states

    dy = bound.dyads
    D, n = dy.n_dyads, bound.network.n_nodes
    if D > EXACT_MAX_DYADS:
        raise ValueError(f"exact_mle_exists enumerates 2^D graphs; D = {D} > {EXACT_MAX_DYADS}")
    Y = enumerate_states(D).numpy()
    A = np.zeros((Y.shape[0], n, n))
    A[:, dy.tail, dy.head] = Y
    if not dy.directed:
        A[:, dy.head, dy.tail] = Y
    u = boundary_direction(bound.statistics(A), bound.observed_statistics())
    return u is None, u


def raise_bad_init(theta, bound) -> None:
    """ConfigError for a starting theta of the wrong length or with non-finite values."""
    from ..._core.errors import ConfigError

    raise ConfigError(f"init must hold {bound.n_params} finite numbers ({', '.join(bound.labels)}), "
                      f"got {np.asarray(theta).tolist()}")


def starting_point(bound, init, safe: np.ndarray, notes: list, who: str, *,
                   rng: Optional[np.random.Generator] = None):
    """The first θ of an MCMC fit (MCMC-MLE, CD): ``init`` if given (validated), else the MPLE, else — when the
    MPLE does not exist (a separated pseudo-likelihood logistic regression) — the Bernoulli-graph point ``safe``,
    with a warning that is also appended to ``notes``. Returns ``(theta, mple)`` (``mple`` is ``None`` with
    ``init``)."""
    labels = list(bound.labels)
    mple = None
    if init is None:
        with warnings.catch_warnings(record=True):  # replaced by the message below when it matters
            warnings.simplefilter("always")
            mple = fit_mple(bound, rng=rng)
        if mple.converged:
            theta = mple.coef.copy()
        else:
            theta = safe.copy()
            msg = ("the MPLE does not exist (the pseudo-likelihood logistic regression is separated: its "
                   f"coefficients diverge, {format_theta(mple.coef, labels)} where Newton's method "
                   f"stopped); starting from the Bernoulli-graph point {format_theta(safe, labels)} instead")
            warnings.warn(f"{who}: {msg}", UserWarning, stacklevel=4)
            notes.append(msg)
    else:
        theta = np.asarray(init, dtype=np.float64)
    if theta.shape != (bound.n_params,) or not np.all(np.isfinite(theta)):
        raise_bad_init(theta, bound)
    return theta, mple
