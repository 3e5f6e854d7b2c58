"""Goodness of fit of a fitted ERGM (Hunter, Goodreau & Handcock 2008, "Goodness of fit of social
network models", JASA): observed degree, edgewise-shared-partner and geodesic-distance distributions
against their distributions over graphs simulated from the fitted model.

For each statistic and each value k we report the observed count, the simulated mean, the 2.5 % and
97.5 % simulated quantiles and statnet's Monte Carlo p-value min(1, 2 min(P(S <= obs), P(S >= obs))).

For directed graphs: degree is the total (in + out) degree, shared partners are counted on the
symmetrised graph, geodesics follow edge directions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
from scipy.sparse.csgraph import shortest_path

from .._core.validation import check_int
from .rng import numpy_rng

__all__ = ["GOFStatistic", "GOFResult", "goodness_of_fit", "gof_distributions"]


@dataclass
class GOFStatistic:
    """One GOF distribution: counts per value ``support[k]`` (observed and simulated)."""

    name: str
    support: List[str]
    observed: np.ndarray
    simulated: np.ndarray  # [n_samples, K]

    @property
    def mean(self) -> np.ndarray:
        return self.simulated.mean(0)

    @property
    def lower(self) -> np.ndarray:
        return np.quantile(self.simulated, 0.025, axis=0)

    @property
    def upper(self) -> np.ndarray:
        return np.quantile(self.simulated, 0.975, axis=0)

    @property
    def pvalue(self) -> np.ndarray:
        le = (self.simulated <= self.observed).mean(0)
        ge = (self.simulated >= self.observed).mean(0)
        return np.minimum(1.0, 2.0 * np.minimum(le, ge))


@dataclass
class GOFResult:
    """Goodness-of-fit distributions: ``statistics['degree' | 'esp' | 'distance']``."""

    statistics: Dict[str, GOFStatistic]
    n_samples: int
    formula: str = ""

    def as_dict(self) -> Dict[str, Dict[str, list]]:
        return {name: {"support": s.support, "observed": s.observed.tolist(), "mean": s.mean.tolist(),
                       "lower": s.lower.tolist(), "upper": s.upper.tolist(), "pvalue": s.pvalue.tolist()}
                for name, s in self.statistics.items()}

    def summary(self) -> str:
        """Tables like statnet's ``print.gof``, trimmed to values that occur."""
        lines = [f"Goodness of fit ({self.n_samples} simulations) for {self.formula}"]
        for name, s in self.statistics.items():
            lines += ["", f"{name}:", f"{'':>6} {'obs':>7} {'min95':>7} {'mean':>8} {'max95':>7} {'MC p':>6}"]
            keep = (s.observed > 0) | (s.upper > 0)
            for k in np.nonzero(keep)[0]:
                lines.append(f"{s.support[k]:>6} {s.observed[k]:7.0f} {s.lower[k]:7.1f} {s.mean[k]:8.2f} "
                             f"{s.upper[k]:7.1f} {s.pvalue[k]:6.2f}")
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Plot the three distributions (simulated mean and 95 % band, observed in black); returns ``path``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(self.statistics), figsize=(5 * len(self.statistics), 3.6))
        for ax, (name, s) in zip(np.atleast_1d(axes), self.statistics.items()):
            used = (s.observed > 0) | (s.upper > 0)
            if name == "distance":  # finite distances that occur, then "Inf"
                last = int(np.nonzero(used[:-1])[0].max(initial=0)) + 1
                idx = list(range(last)) + [len(s.support) - 1]
            else:
                idx = list(range(int(np.nonzero(used)[0].max(initial=0)) + 1))
            x = np.arange(len(idx))
            ax.fill_between(x, s.lower[idx], s.upper[idx], color="tab:blue", alpha=0.25, label="simulated 95%")
            ax.plot(x, s.mean[idx], color="tab:blue", label="simulated mean")
            ax.plot(x, s.observed[idx], "o-", color="black", label="observed")
            ax.set_xticks(x)
            ax.set_xticklabels([s.support[k] for k in idx], fontsize=7)
            ax.set_title(name)
            ax.set_ylabel("count")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        fig.suptitle(f"GOF: {self.formula}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def gof_distributions(A: np.ndarray, directed: bool) -> Dict[str, np.ndarray]:
    """Degree, edgewise-shared-partner and geodesic-distance counts of one graph.

    Returns counts of nodes with degree k (k = 0..2(n-1) directed, 0..n-1 undirected), of ties with k shared
    partners (k = 0..n-2), and of dyads at distance k (k = 1..n-1, then unreachable).
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    deg = (A.sum(1) + A.sum(0)) if directed else A.sum(1)
    max_deg = 2 * (n - 1) if directed else n - 1
    degree = np.bincount(deg.astype(np.int64), minlength=max_deg + 1)[:max_deg + 1]
    U = np.maximum(A, A.T)
    S = U @ U
    iu = np.triu_indices(n, 1)
    tie = U[iu] > 0.5
    esp = np.bincount(S[iu][tie].astype(np.int64), minlength=max(n - 1, 1))[:max(n - 1, 1)]
    dist = shortest_path(A, directed=directed, unweighted=True)
    mask = ~np.eye(n, dtype=bool) if directed else np.triu(np.ones((n, n), dtype=bool), 1)
    dvals = dist[mask]
    finite = np.isfinite(dvals)
    dcount = np.bincount(dvals[finite].astype(np.int64), minlength=n)[1:n]
    distance = np.concatenate([dcount, [np.sum(~finite)]])
    return {"degree": degree.astype(np.float64), "esp": esp.astype(np.float64),
            "distance": distance.astype(np.float64)}


def goodness_of_fit(result, n_samples: int = 100, seed: Optional[int] = None, *, generator=None,
                    burn_in: Optional[int] = None, thin: Optional[int] = None, proposal: str = "tnt",
                    n_chains: int = 20) -> GOFResult:
    """Simulate ``n_samples`` graphs at ``result.coef`` and compare GOF distributions with the observed graph.

    Parameters
    ----------
    result : ERGMResult
    n_samples : int
    seed / generator : randomness
    burn_in, thin : MH settings (defaults of the model: 16 and 1 toggles per dyad)
    n_chains : int
        Independent chains the draws are spread over.
    """
    n_samples = check_int("n_samples", n_samples, minimum=2)
    bound = result.model
    rng = numpy_rng(seed, generator)
    C = min(n_samples, check_int("n_chains", n_chains))
    run = bound.run_chains(result.coef, n_chains=C, n_draws=-(-n_samples // C),
                           burn_in=bound.default_burn_in() if burn_in is None else burn_in,
                           thin=bound.default_thin() if thin is None else thin,
                           rng=rng, proposal=proposal, return_graphs=True)
    n = bound.network.n_nodes
    graphs = run.graphs.reshape(-1, n, n)[:n_samples]
    directed = bound.network.directed
    obs = gof_distributions(bound.network.adjacency, directed)
    sims = [gof_distributions(g, directed) for g in graphs]
    supports = {
        "degree": [str(k) for k in range(len(obs["degree"]))],
        "esp": [str(k) for k in range(len(obs["esp"]))],
        "distance": [str(k) for k in range(1, n)] + ["Inf"],
    }
    stats = {name: GOFStatistic(name, supports[name], obs[name], np.stack([s[name] for s in sims]))
             for name in ("degree", "esp", "distance")}
    return GOFResult(stats, n_samples, result.formula)
