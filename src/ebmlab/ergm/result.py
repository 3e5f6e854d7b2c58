"""ERGMResult: coefficients, standard errors, log-likelihood, diagnostics and a statnet-style summary."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
from scipy.stats import norm

__all__ = ["ERGMResult", "significance_stars"]

_METHOD_TITLES = {
    "mple": "Maximum Pseudolikelihood Results",
    "mcmc_mle": "Monte Carlo Maximum Likelihood Results",
    "cd": "Contrastive Divergence Results",
    "ed": "Energy Discrepancy Results",
}


def significance_stars(p: float) -> str:
    """R's significance codes: *** < .001, ** < .01, * < .05, . < .1."""
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def _format_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<1e-04" if p < 1e-4 else f"{p:.5f}"[:7]


@dataclass
class ERGMResult:
    """The outcome of :meth:`ebmlab.ergm.ERGM.fit`.

    Attributes
    ----------
    coef : ndarray [p]
        Estimated theta.
    stderr : ndarray [p]
        Standard errors (for mcmc_mle they include the MCMC error, as statnet's do).
    labels : list of str
    method : str
    cov : ndarray [p, p]
        Estimated covariance of ``coef`` (model part + MCMC part where there is one).
    mcmc_se : ndarray [p] or None
        Monte Carlo standard error of ``coef`` (mcmc_mle), from independent chains.
    loglik : float or None
        log p_theta(y_obs) at ``coef`` (exact for dyad-independent models, bridge-sampled otherwise).
    loglik_se : float or None
        Monte Carlo standard error of ``loglik`` (0 when exact).
    converged : bool
    degenerate : bool
        Simulations at the estimate pile up at the empty/full graph (the fit is not trustworthy).
    diagnostics : dict
        Method-specific: iterations, step lengths, acceptance rate, effective sample size, ...
    notes : list of str
    stderr_reliable : bool
        False when the information matrix was singular or ill-conditioned (see
        :func:`ebmlab.ergm.estimation.information.invert_information`) or the MLE does not exist: the standard
        errors, z values and p-values are then not to be used (the summary says so).
    mle_exists : bool or None
        Whether the MLE exists, i.e. the observed statistics lie in the interior of the convex hull of the
        attainable statistics (Barndorff-Nielsen 1978, Thm 9.13). Decided by enumeration on graphs with at
        most 16 dyads (``mcmc_mle``); None when not checked. When False the standard errors are NaN.
    chain_diagnostics : dict or None
        ``mcmc_mle``: bulk ESS, split R-hat and a Geweke-style test of every statistic of the final sample of
        independent chains (:func:`ebmlab.ergm.diagnostics.chain_diagnostics`); printed by :meth:`summary`.
    """

    coef: np.ndarray
    stderr: np.ndarray
    labels: List[str]
    method: str
    formula: str
    n_nodes: int
    n_dyads: int
    directed: bool
    cov: np.ndarray
    mcmc_se: Optional[np.ndarray] = None
    loglik: Optional[float] = None
    loglik_se: Optional[float] = None
    converged: bool = True
    degenerate: bool = False
    diagnostics: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    model: Any = field(default=None, repr=False)
    seconds: float = 0.0
    stderr_reliable: bool = True
    mle_exists: Optional[bool] = None
    chain_diagnostics: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------------------------------
    @property
    def z(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.coef / self.stderr

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided normal p-values 2 (1 - Phi(|z|))."""
        return 2.0 * norm.sf(np.abs(self.z))

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "formula": self.formula, "method": self.method, "labels": list(self.labels),
            "coef": _json_floats(self.coef), "stderr": _json_floats(self.stderr),
            "mcmc_se": None if self.mcmc_se is None else _json_floats(self.mcmc_se),
            "loglik": self.loglik, "loglik_se": self.loglik_se, "converged": bool(self.converged),
            "degenerate": bool(self.degenerate), "stderr_reliable": bool(self.stderr_reliable),
            "mle_exists": None if self.mle_exists is None else bool(self.mle_exists),
            "seconds": self.seconds, "notes": list(self.notes),
        }

    def summary(self) -> str:
        """A coefficient table in the layout of statnet's ``summary.ergm``."""
        lines = [f"Formula:   {self.formula}", f"Graph:     {self.n_nodes} nodes, {self.n_dyads} dyads, "
                 f"{'directed' if self.directed else 'undirected'}", "",
                 _METHOD_TITLES.get(self.method, self.method) + ":", ""]
        show_mcmc = self.mcmc_se is not None
        head = ["", "Estimate", "Std. Error"] + (["MCMC %"] if show_mcmc else []) + ["z value", "Pr(>|z|)", ""]
        rows = []
        z, pv = self.z, self.pvalues
        for k, label in enumerate(self.labels):
            row = [label, _format_number(self.coef[k], 4), _format_number(self.stderr[k], 4)]
            if show_mcmc:
                if np.isfinite(self.stderr[k]) and self.stderr[k] > 0 and np.isfinite(self.mcmc_se[k]):
                    row.append(f"{100.0 * self.mcmc_se[k] ** 2 / self.stderr[k] ** 2:.0f}")
                else:
                    row.append("NA")
            row += [_format_number(z[k], 3), _format_p(pv[k]), significance_stars(pv[k])]
            rows.append(row)
        widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
        fmt = lambda r: " ".join((r[0].ljust(widths[0]),) + tuple(v.rjust(w) for v, w in zip(r[1:-1], widths[1:-1]))
                                 + (r[-1],)).rstrip()
        lines.append(fmt(head))
        lines += [fmt(r) for r in rows]
        lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1", ""]
        null_dev = 2.0 * self.n_dyads * math.log(2.0)
        p = len(self.coef)
        lines.append(f"     Null Deviance: {null_dev:.1f}  on {self.n_dyads} degrees of freedom")
        if self.loglik is not None:
            dev = -2.0 * self.loglik
            se = f" (MC s.e. {2 * self.loglik_se:.2f})" if self.loglik_se else ""
            lines.append(f" Residual Deviance: {dev:.1f}  on {self.n_dyads - p} degrees of freedom{se}")
            lines.append("")
            lines.append(f"AIC: {dev + 2 * p:.1f}  BIC: {dev + p * math.log(self.n_dyads):.1f}  "
                         f"(Smaller is better.)")
        else:
            lines.append(" Residual Deviance: not computed (pass loglik=True)")
        lines.append("")
        status = "converged" if self.converged else "NOT converged"
        diag = ", ".join(f"{k}={_short(v)}" for k, v in self.diagnostics.items() if np.isscalar(v))
        lines.append(f"Estimation {status}; {diag}" if diag else f"Estimation {status}")
        if self.diagnostics.get("not_estimable"):
            lines.append("WARNING: not estimable (coefficient -Inf): " + ", ".join(self.diagnostics["not_estimable"])
                         + " (observed statistic at its smallest attainable value); see the notes.")
        if self.mle_exists is False:
            lines.append("WARNING: the MLE does not exist: the observed statistics lie on the boundary of the convex "
                         "hull of the attainable statistics, so the likelihood keeps increasing towards infinity; "
                         "the estimate is the last iterate and has no standard errors.")
        elif not self.stderr_reliable:
            from .estimation.information import MAX_CONDITION

            cond = self.diagnostics.get("information_condition_number")
            why = ""
            if isinstance(cond, float) and not cond <= MAX_CONDITION:
                why = f" (the information matrix is singular or ill-conditioned: condition number {cond:.3g})"
            lines.append(f"WARNING: standard errors, z values and p-values are unreliable{why}; see the notes.")
        if self.degenerate:
            lines.append("WARNING: simulations at the estimate are near-degenerate (empty/complete graphs).")
        lines += _chain_lines(self.chain_diagnostics)
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------------------------------
    def gof(self, n_samples: int = 100, seed: Optional[int] = None, *, generator=None, **options):
        """Goodness of fit: degree, edgewise shared partners and geodesic distances, observed vs simulated.

        See :func:`ebmlab.ergm.gof.goodness_of_fit`.
        """
        from .gof import goodness_of_fit

        return goodness_of_fit(self, n_samples=n_samples, seed=seed, generator=generator, **options)

    def simulate(self, n_samples: int = 100, seed: Optional[int] = None, *, generator=None, **options):
        """Draw graphs from the fitted model (see :meth:`ebmlab.ergm.ERGM.simulate`)."""
        from .model import ERGM

        return ERGM(self.formula).simulate(self.model.network, self.coef, n_samples, seed=seed,
                                           generator=generator, **options)


def _chain_lines(d: Optional[Dict[str, Any]]) -> List[str]:
    """The MCMC diagnostics block of the summary (statnet's ``mcmc.diagnostics`` in short)."""
    if not d:
        return []
    head = ["", "ESS", "R-hat", "Geweke z", "p"]
    rows = [[l, _format_number(e, 0), _format_number(r, 3), _format_number(z, 2), _format_number(p, 3)]
            for l, e, r, z, p in zip(d["labels"], d["ess"], d["rhat"], d["geweke_z"], d["geweke_p"])]
    widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
    fmt = lambda r: "  " + " ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])])
    lines = ["", f"MCMC diagnostics of the final sample ({d['n_chains']} chains x {d['n_draws_per_chain']} draws; "
             "Geweke: first 10% vs last 50% of each chain):", fmt(head)] + [fmt(r) for r in rows]
    rh = [r for r in d["rhat"] if np.isfinite(r)]
    ps = [p for p in d["geweke_p"] if np.isfinite(p)]
    if (rh and max(rh) > 1.05) or (ps and min(ps) < 0.01 / max(len(ps), 1)):
        lines.append("WARNING: the simulated statistics may not have converged (R-hat > 1.05 or a Geweke p-value "
                     "below 0.01 / p): increase burn_in")
    return lines


def _format_number(v: float, digits: int) -> str:
    """A fixed-point number, or R's ``NA`` for NaN and ``Inf``/``-Inf`` for infinite values."""
    if np.isnan(v):
        return "NA"
    if np.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return f"{v:.{digits}f}"


def _json_floats(values) -> List[Optional[float]]:
    """Floats for JSON, with NaN (no value) as None."""
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
