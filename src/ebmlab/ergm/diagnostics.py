"""Convergence diagnostics of the simulated statistics of an MCMC-MLE fit (statnet's ``mcmc.diagnostics``).

For the final sample ``s[k, c]`` (draw k of independent chain c, K draws per chain, C chains), per statistic:

- bulk ESS and rank-normalised split R-hat (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, Bayesian
  Analysis 16(2)), from :mod:`ebmlab.metrics.mcmc_diagnostics`;
- a Geweke-style test (Geweke 1992, "Evaluating the accuracy of sampling-based approaches to the calculation of
  posterior moments", Bayesian Statistics 4): the mean of the first 10 % of every chain against the mean of the
  last 50 %, z = (m_first - m_last) / sqrt(se_first^2 + se_last^2), two-sided normal p-value. Geweke estimates
  the standard errors by spectral densities at frequency 0 (coda's ``geweke.diag``, used by statnet); here the C
  chains are independent replicates, so se = sd over chains of the chain's segment mean / sqrt(C), which needs no
  autocorrelation model (C >= 4).

A small p-value (or R-hat > 1.01) says that the chains were still drifting: the burn-in was too short.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np
from scipy.stats import norm

__all__ = ["chain_diagnostics", "geweke"]


def geweke(stats: np.ndarray, first: float = 0.1, last: float = 0.5) -> Dict[str, np.ndarray]:
    """Geweke-style z scores and p-values of ``stats`` [K, C, p] (see the module docstring); NaN for a statistic
    that does not vary within the segments."""
    s = np.asarray(stats, dtype=np.float64)
    K, C, _ = s.shape
    na = max(1, int(math.floor(first * K)))
    nb = max(1, int(math.floor(last * K)))
    a = s[:na].mean(0)          # [C, p]
    b = s[K - nb:].mean(0)
    se2 = a.var(0, ddof=1) / C + b.var(0, ddof=1) / C
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (a.mean(0) - b.mean(0)) / np.sqrt(se2)
    z = np.where(se2 > 0, z, np.nan)
    return {"z": z, "p_value": np.where(np.isfinite(z), 2.0 * norm.sf(np.abs(z)), np.nan)}


def chain_diagnostics(stats: np.ndarray, labels: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """ESS, R-hat and the Geweke-style test of every statistic of ``stats`` [K, C, p] (K >= 4, C >= 2).

    Returns lists (one value per statistic, NaN where undefined) under ``ess``, ``rhat``, ``geweke_z``,
    ``geweke_p``, plus ``n_draws_per_chain``, ``n_chains`` and ``labels``.
    """
    import torch

    from ..metrics.mcmc_diagnostics import ess, rhat

    s = np.asarray(stats, dtype=np.float64)
    K, C, p = s.shape
    out: Dict[str, Any] = {"labels": list(labels) if labels is not None else [f"s{k}" for k in range(p)],
                           "n_draws_per_chain": int(K), "n_chains": int(C)}
    if K < 4 or C < 2:
        nan = [float("nan")] * p
        out.update(ess=nan, rhat=nan, geweke_z=nan, geweke_p=nan)
        return out
    x = torch.from_numpy(s)
    out["ess"] = [float(v) for v in ess(x)]
    out["rhat"] = [float(v) for v in rhat(x)]
    g = geweke(s)
    out["geweke_z"] = [float(v) for v in g["z"]]
    out["geweke_p"] = [float(v) for v in g["p_value"]]
    return out
