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
            "coef": [float(v) for v in self.coef], "stderr": [float(v) for v in self.stderr],
            "mcmc_se": None if self.mcmc_se is None else [float(v) for v in self.mcmc_se],
            "loglik": self.loglik, "loglik_se": self.loglik_se, "converged": bool(self.converged),
            "degenerate": bool(self.degenerate), "seconds": self.seconds, "notes": list(self.notes),
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
            row = [label, f"{self.coef[k]:.4f}", f"{self.stderr[k]:.4f}"]
            if show_mcmc:
                share = 100.0 * self.mcmc_se[k] ** 2 / self.stderr[k] ** 2 if self.stderr[k] > 0 else 0.0
                row.append(f"{share:.0f}")
            row += [f"{z[k]:.3f}", _format_p(pv[k]), significance_stars(pv[k])]
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
        if self.degenerate:
            lines.append("WARNING: simulations at the estimate are near-degenerate (empty/complete graphs).")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------------------------------
    def gof(self, n_sim: int = 100, seed: Optional[int] = None, *, generator=None, **options):
        """Goodness of fit: degree, edgewise shared partners and geodesic distances, observed vs simulated.

        See :func:`ebmlab.ergm.gof.goodness_of_fit`.
        """
        from .gof import goodness_of_fit

        return goodness_of_fit(self, n_sim=n_sim, seed=seed, generator=generator, **options)

    def simulate(self, n: int = 100, seed: Optional[int] = None, *, generator=None, **options):
        """Draw graphs from the fitted model (see :meth:`ebmlab.ergm.ERGM.simulate`)."""
        from .model import ERGM

        return ERGM(self.formula).simulate(self.model.network, self.coef, n, seed=seed, generator=generator,
                                           **options)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
