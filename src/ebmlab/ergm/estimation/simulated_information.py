"""Fisher information of an ERGM at theta estimated from simulated statistics.

For an exponential family, I(theta) = Cov_theta[s(Y)], so the inverse covariance of simulated statistics
estimates the asymptotic covariance of the MLE (the "model" part of statnet's standard errors).
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np

from ..model import degeneracy_fraction

__all__ = ["simulated_information", "warn_if_mismatched"]


def simulated_information(bound, theta: np.ndarray, rng: np.random.Generator, *, n_samples: int = 1024,
                          n_chains: int = 32, burn_in: Optional[int] = None, thin: Optional[int] = None,
                          proposal: str = "tnt") -> Tuple[np.ndarray, np.ndarray, float, float]:
    """Simulate at ``theta`` from the observed graph and return (Cov[s], draws [K, C, p], degenerate fraction,
    acceptance rate)."""
    per_chain = max(2, -(-n_samples // n_chains))
    run = bound.run_chains(theta, n_chains=n_chains, n_draws=per_chain,
                           burn_in=bound.default_burn_in() if burn_in is None else burn_in,
                           thin=bound.default_thin() if thin is None else thin,
                           rng=rng, proposal=proposal)
    flat = run.statistics.reshape(-1, bound.n_params)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    return cov, run.statistics, degeneracy_fraction(run.n_ties, bound.dyads.n_dyads,
                                                     bound.network.n_edges), \
        float(run.acceptance_rate.mean())


def warn_if_mismatched(draws: np.ndarray, bound, theta: np.ndarray, where: str, *, z_max: float = 3.0) -> bool:
    """Warn (and return True) when the model at ``theta`` does not reproduce the observed statistics.

    At the MLE E_theta[s] = s_obs. For CD/ED estimates we require every statistic's simulated mean to lie
    within ``z_max`` simulated standard deviations of the observed value; a larger gap (or a statistic
    that never moves) means the fitted model lives elsewhere - typically a near-degenerate model whose
    chains drift away from the observed graph - and its standard errors are not meaningful.
    """
    flat = draws.reshape(-1, draws.shape[-1])
    mean, sd = flat.mean(0), flat.std(0)
    s_obs = bound.observed_statistics()
    frozen = (sd == 0) & (mean == s_obs)
    if np.any(frozen):
        names = ", ".join(l for l, f in zip(bound.labels, frozen) if f)
        warnings.warn(f"{where}: statistic(s) {names} never change in simulations at the estimate (observed value "
                      "at the edge of what the model generates); the MLE may not exist and the standard errors "
                      "are not meaningful", UserWarning, stacklevel=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(mean - s_obs) / sd
    bad = ~(z <= z_max) & ~frozen
    if np.any(bad):
        names = ", ".join(f"{l} (observed {o:.3g}, simulated {m:.3g} ± {d:.3g})"
                          for l, o, m, d, b in zip(bound.labels, s_obs, mean, sd, bad) if b)
        warnings.warn(f"{where}: the fitted model does not reproduce the observed statistics: {names}; the model "
                      "is probably near-degenerate at the estimate and its standard errors are not meaningful",
                      UserWarning, stacklevel=3)
    return bool(np.any(bad) or np.any(frozen))


def errors_and_loglik(bound, theta_hat: np.ndarray, rng: np.random.Generator, method: str, *, loglik: bool,
                      se_n_samples: int, n_chains: int, burn_in: Optional[int], thin: Optional[int],
                      proposal: str) -> dict:
    """Standard errors and log-likelihood of an estimate that is not the MLE itself (``cd``, ``ed``).

    Standard errors are the MLE's asymptotic ones evaluated at ``theta_hat``: the inverse covariance of statistics
    simulated there.  The log-likelihood is exact for dyad-independent models and small graphs, bridge-sampled
    otherwise when ``loglik`` (skipped for degenerate fits).  Degeneracy and a mismatch between simulated and
    observed statistics are warned about.  Returns a dict with ``cov``, ``stderr``, ``loglik``, ``loglik_se``,
    ``degenerate``, ``degenerate_fraction``, ``acceptance_rate``, ``stderr_reliable`` and
    ``information_condition_number`` (from :func:`.information.invert_information`, which warns when the
    information is singular or ill-conditioned).
    """
    from ..loglik import EXACT_MAX_DYADS, bridge_loglik, exact_loglik, logistic_loglik
    from ..model import warn_if_degenerate
    from .information import invert_information, standard_errors

    info, draws, frac, acc = simulated_information(bound, theta_hat, rng, n_samples=se_n_samples,
                                                   n_chains=n_chains, burn_in=burn_in, thin=thin,
                                                   proposal=proposal)
    degenerate = warn_if_degenerate(frac, theta_hat, bound.labels, method)
    degenerate = warn_if_mismatched(draws, bound, theta_hat, method) or degenerate
    cov, reliable, cond = invert_information(info, where=method, labels=bound.labels)
    ll, ll_se = None, None
    if bound.dyad_independent:
        ll, ll_se = logistic_loglik(bound, theta_hat), 0.0
    elif loglik and bound.dyads.n_dyads <= EXACT_MAX_DYADS:
        ll, ll_se = exact_loglik(bound, theta_hat), 0.0
    elif loglik and not degenerate:
        ll, ll_se = bridge_loglik(bound, theta_hat, rng, n_chains=n_chains, burn_in=burn_in, thin=thin,
                                  proposal=proposal)
    return {"cov": cov, "stderr": standard_errors(cov), "loglik": ll, "loglik_se": ll_se,
            "degenerate": degenerate, "degenerate_fraction": frac, "acceptance_rate": acc,
            "stderr_reliable": reliable, "information_condition_number": cond}
