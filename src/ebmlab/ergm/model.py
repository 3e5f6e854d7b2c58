"""The ERGM model: a formula bound to graphs, simulation and fitting.

p_theta(y) = exp(theta . s(y)) / Z(theta), y a simple graph on a fixed node set, s(y) the statistics of
the formula's terms (see :mod:`ebmlab.ergm.terms`). Fitting methods are in :mod:`ebmlab.ergm.estimation`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import networkx as nx
import numpy as np
import torch

from .._core.errors import ConfigError
from .._core.validation import check_choice, check_int
from .formula import TermSpec, parse_formula
from .graph_batch import DyadIndex, GraphBatch
from .network import DENSE_MAX_NODES, Network, as_network, empty_network
from .rng import numpy_rng
from .sampler import PROPOSALS, MHRun, run_metropolis_hastings
from .terms import TERMS, Term, build_terms

__all__ = ["ERGM", "BoundERGM", "Simulation", "DYAD_INDEPENDENT", "BACKENDS", "resolve_backend"]

#: "auto" (compiled kernels when every term has one, else the numpy reference with a warning), "numba", "numpy"
BACKENDS = ("auto", "numba", "numpy")


def resolve_backend(backend: str, terms: Sequence[Term]) -> str:
    """The backend a bound model runs on ("numba" or "numpy"); never a silent fallback.

    ``"numba"`` raises ConfigError when numba is missing or a term has no compiled kernel; ``"auto"`` takes
    numba when possible and otherwise warns, naming the reason, and uses the numpy reference.
    """
    from . import kernels

    check_choice("backend", backend, BACKENDS)
    if backend == "numpy":
        return "numpy"
    missing = kernels.unsupported_terms(terms)
    why = ("numba is not installed" if not kernels.AVAILABLE else
           f"no compiled kernel for term(s) {', '.join(missing)}" if missing else None)
    if why is None:
        return "numba"
    if backend == "numba":
        raise ConfigError(f"backend='numba' is unavailable: {why}; use backend='numpy'")
    warnings.warn(f"ERGM backend: {why}; running the numpy reference path (slower)", UserWarning, stacklevel=4)
    return "numpy"

#: terms whose change statistics do not depend on the rest of the graph
DYAD_INDEPENDENT = ("edges", "nodematch", "nodecov")

#: fraction of draws at the empty or full graph above which a simulation is flagged near-degenerate
DEGENERACY_THRESHOLD = 0.05


class BoundERGM:
    """An ERGM formula bound to one network (its size, direction and node attributes).

    Attributes
    ----------
    network : Network
    terms : list of Term
    labels : list of str
        Coefficient names (statnet style).
    dyads : DyadIndex
    """

    def __init__(self, formula: str, specs: Sequence[TermSpec], network: Network, backend: str = "auto",
                 n_jobs: int = 1):
        self.formula = formula
        self.specs = list(specs)
        self.network = network
        self.terms: List[Term] = build_terms(network, self.specs)
        self.labels = [t.label for t in self.terms]
        self.dyads = DyadIndex(network.n_nodes, network.directed)
        self.dyad_independent = all(s.name in DYAD_INDEPENDENT for s in self.specs)
        self.backend = resolve_backend(backend, self.terms)
        self.n_jobs = n_jobs
        self._compiled = None
        self._observed = None
        self._observed_changes = None

    @property
    def compiled_terms(self):
        """The terms as arrays for the compiled kernels (:class:`ebmlab.ergm.kernels.CompiledTerms`)."""
        if self._compiled is None:
            from .kernels import compile_terms

            self._compiled = compile_terms(self.terms, self.network.n_nodes)
        return self._compiled

    @property
    def dense(self) -> bool:
        """Whether this graph is small enough for dense n x n arrays (:data:`ebmlab.ergm.network.DENSE_MAX_NODES`)."""
        return self.network.n_nodes <= DENSE_MAX_NODES

    def list_graphs(self, adjacency=None):
        """The observed graph (or adjacency matrices ``[C, n, n]``) as :class:`ebmlab.ergm.sparse.ListGraphs`."""
        from .sparse import ListGraphs

        if adjacency is None:
            return ListGraphs.from_edges(self.network.n_nodes, self.network.directed, [self.network.edges])
        return ListGraphs.from_dense(adjacency, self.network.directed)

    def empty_statistics(self) -> np.ndarray:
        """s(empty graph) of every term."""
        return np.array([t.empty_statistic(self.network.n_nodes) for t in self.terms], dtype=np.float64)

    @property
    def n_params(self) -> int:
        return len(self.terms)

    def statistics(self, adjacency: np.ndarray) -> np.ndarray:
        """s(y) for one adjacency [n, n] (returns [p]) or a batch [B, n, n] (returns [B, p])."""
        a = np.asarray(adjacency, dtype=np.float64)
        single = a.ndim == 2
        a = a[None] if single else a
        out = np.stack([t.statistic(a) for t in self.terms], 1)
        return out[0] if single else out

    def observed_statistics(self) -> np.ndarray:
        """s(y_obs) (cached): the compiled kernel (sum of the change statistics of adding the ties one by one) on
        the numba backend for graphs of more than 64 nodes, else the dense numpy terms."""
        if self._observed is None:
            if self.backend == "numba" and self.network.n_nodes > 64:
                s = self.list_graphs().statistics(self.compiled_terms, self.empty_statistics())[0]
            elif self.dense:
                s = self.statistics(self.network.adjacency)
            else:
                raise ConfigError(f"the graph has {self.network.n_nodes} nodes: large graphs need backend='numba'")
            self._observed = s
        return self._observed.copy()

    def change_statistics(self, adjacency: Optional[np.ndarray] = None, chunk: int = 1 << 14
                          ) -> Tuple[np.ndarray, np.ndarray]:
        """Change statistics of every dyad of one graph: ``X[d] = s(y_d^+) - s(y_d^-)`` and ``y[d]``.

        These are the covariates and response of the MPLE logistic regression (Strauss & Ikeda 1990).
        """
        if self.backend == "numba":
            if adjacency is None and self._observed_changes is not None:
                return self._observed_changes
            lg = self.list_graphs(None if adjacency is None else np.asarray(adjacency, dtype=np.float64))
            X, y = lg.all_change_matrix(self.compiled_terms)
            if adjacency is None and X.size <= (1 << 22):  # kept (read-only) for the MPLE and the checks after it
                X.flags.writeable = False
                y.flags.writeable = False
                self._observed_changes = (X, y)
            return X, y
        D = self.dyads.n_dyads
        tail, head = self.dyads.tail, self.dyads.head
        a = self.network.adjacency if adjacency is None else np.asarray(adjacency, dtype=np.float64)
        X = np.empty((D, self.n_params))
        generic = []
        for k, t in enumerate(self.terms):
            col = t.all_changes(a, tail, head)  # dense matrix algebra where a term has it
            if col is None:
                generic.append(k)
            else:
                X[:, k] = col
        if generic:
            terms = [self.terms[k] for k in generic]
            g = GraphBatch(a[None], self.dyads, track_two_paths=any(t.needs_two_paths for t in terms))
            for start in range(0, D, chunk):
                sl = slice(start, min(D, start + chunk))
                i, j = tail[sl], head[sl]
                c = np.zeros(i.size, dtype=np.int64)
                X[sl, generic] = np.stack([t.change(g, c, i, j) for t in terms], 1)
        y = a[self.dyads.tail, self.dyads.head]
        return X, y

    def change_statistics_batch(self, adjacency: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
        """Change statistics of every dyad of every graph of a batch ``[B, n, n]``: ``X[b, d] = s(y_d^+) - s(y_d^-)``.

        One graph goes through :meth:`change_statistics` (dense matrix algebra where a term has it); a batch is
        vectorised over all (graph, dyad) pairs with each term's ``change`` on one :class:`GraphBatch` (shared-
        partner counts cached once per graph). Returns ``[B, n_dyads, p]`` float64.
        """
        a = np.asarray(adjacency, dtype=np.float64)
        if a.ndim == 2:
            a = a[None]
        B, D, p = a.shape[0], self.dyads.n_dyads, self.n_params
        if B == 1:
            return self.change_statistics(a[0])[0][None]
        out = np.empty((B * D, p))
        two = any(t.needs_two_paths for t in self.terms) and not self.dyads.directed
        g = GraphBatch(a, self.dyads, track_two_paths=two)
        c = np.repeat(np.arange(B), D)
        i, j = np.tile(self.dyads.tail, B), np.tile(self.dyads.head, B)
        for start in range(0, B * D, chunk):
            sl = slice(start, min(B * D, start + chunk))
            out[sl] = np.stack([t.change(g, c[sl], i[sl], j[sl]) for t in self.terms], 1)
        return out.reshape(B, D, p)

    def energy(self, theta: Optional[Sequence[float]] = None, *, learnable: bool = False,
               dtype: torch.dtype = torch.float64):
        """This model as an :class:`ebmlab.energies.ERGMEnergy` on the dyad vectors of graphs on these nodes.

        ``theta`` defaults to zeros. The energy is U(y) = -theta . s(y); see :meth:`ERGM.energy`.
        """
        from ..energies.ergm import ERGMEnergy

        return ERGMEnergy(self, theta, learnable=learnable, dtype=dtype)

    def observed_dyads(self) -> torch.Tensor:
        """The bound network as a dyad vector, a float64 tensor ``[1, n_dyads]`` (the energy's state)."""
        return torch.from_numpy(self.dyads.from_adjacency(self.network.adjacency[None]))

    def run_chains(self, theta: np.ndarray, *, n_chains: int, n_draws: int, burn_in: int, thin: int,
                   rng: np.random.Generator, proposal: str = "tnt", start: Optional[np.ndarray] = None,
                   return_graphs: bool = False) -> MHRun:
        """Run ``n_chains`` MH chains (from ``start`` or from the observed graph).

        ``start``: adjacency matrices ``[C, n, n]`` (or one ``[n, n]``), or the ``final`` state of an earlier run
        (continued as it is). With the numba backend the chains run in the compiled kernel
        (:meth:`ebmlab.ergm.sparse.ListGraphs.run`), consuming the same random numbers as the numpy loop.
        """
        if self.backend == "numba":
            return self._run_compiled(theta, n_chains=n_chains, n_draws=n_draws, burn_in=burn_in, thin=thin,
                                      rng=rng, proposal=proposal, start=start, return_graphs=return_graphs)
        if start is not None and not isinstance(start, np.ndarray):
            start = start.A
        a = self.network.adjacency if start is None else np.asarray(start, dtype=np.float64)
        a = np.broadcast_to(a, (n_chains,) + a.shape[-2:]) if a.ndim == 2 else a
        return run_metropolis_hastings(self.terms, self.dyads, a, np.asarray(theta, dtype=np.float64),
                                       n_draws=n_draws, burn_in=burn_in, thin=thin, rng=rng,
                                       proposal=proposal, return_graphs=return_graphs)

    def _run_compiled(self, theta, *, n_chains, n_draws, burn_in, thin, rng, proposal, start, return_graphs):
        import time

        from .sparse import ListGraphs

        ct = self.compiled_terms
        if isinstance(start, ListGraphs):
            if start.n_chains != n_chains:
                raise ConfigError(f"start holds {start.n_chains} chains, n_chains={n_chains}")
            # rebuilt with its ties in dyad order, as the numpy reference rebuilds its tie list from the adjacency
            # matrix of the previous run's final state (same TNT picks, hence the same chains)
            lg = start.sort_ties()
            stats = start.current_statistics  # carried (the reference recomputes them: equal to rounding)
        elif start is None:
            lg = self.list_graphs().copy_chains(n_chains)
            stats = np.tile(self.observed_statistics(), (n_chains, 1))
        else:
            a = np.asarray(start, dtype=np.float64)
            a = np.broadcast_to(a, (n_chains,) + a.shape[-2:]) if a.ndim == 2 else a
            lg = ListGraphs.from_dense(a, self.network.directed)
            stats = self.statistics(a) if self.dense else lg.statistics(ct, self.empty_statistics())
        stats = np.array(stats, dtype=np.float64).reshape(n_chains, self.n_params)
        if return_graphs and not self.dense:
            raise ConfigError(f"return_graphs needs dense adjacency matrices; the graph has {self.network.n_nodes} "
                              f"nodes (more than {DENSE_MAX_NODES})")
        t0 = time.perf_counter()
        total = burn_in + n_draws * thin
        out_stats, out_ties, graphs, accepted = lg.run(ct, np.asarray(theta, dtype=np.float64), n_draws=n_draws,
                                                       burn_in=burn_in, thin=thin, rng=rng, tnt=proposal == "tnt",
                                                       n_dyads=self.dyads.n_dyads, stats=stats,
                                                       return_graphs=return_graphs, n_jobs=self.n_jobs)
        seconds = time.perf_counter() - t0
        lg.current_statistics = stats
        return MHRun(out_stats, out_ties, graphs, accepted / max(total, 1), total * n_chains, seconds, lg,
                     backend="numba")

    def _large(self) -> bool:
        return not self.dense

    def default_burn_in(self) -> int:
        """Default burn-in per chain: 8 proposals per dyad (at least 512); on large sparse graphs (more than
        DENSE_MAX_NODES nodes) 4 proposals per tie or node, max(E, n) (a dyad count would be ~10^10)."""
        if self._large():
            return 4 * max(self.network.n_edges, self.network.n_nodes)
        return max(512, 8 * self.dyads.n_dyads)

    def default_thin(self) -> int:
        """Default ``thin`` (steps between kept draws): one proposal per two dyads (at least 16); on large sparse
        graphs one per four ties, max(16, E // 4)."""
        if self._large():
            return max(16, self.network.n_edges // 4)
        return max(16, self.dyads.n_dyads // 2)

    def default_warm_burn_in(self) -> int:
        """Burn-in of chains restarted from the last states of a previous run at a nearby theta: 2 per dyad (on
        large sparse graphs one per tie or node)."""
        if self._large():
            return max(self.network.n_edges, self.network.n_nodes)
        return max(64, 2 * self.dyads.n_dyads)


@dataclass
class Simulation:
    """Draws from an ERGM.

    Attributes
    ----------
    statistics : ndarray [n_samples, p]
        s(y) of each draw (time-major over chains: draw k of chain c is row k * n_chains + c).
    labels : list of str
    chain : ndarray [n_samples]
        Index of the chain that produced each draw.
    graphs : list of networkx graphs, or None
    acceptance_rate : float
    toggles_per_second : float
    degenerate_fraction : float
        Fraction of draws equal to the empty or the full graph.
    degenerate : bool
        True when ``degenerate_fraction`` exceeds 5 %.
    """

    statistics: np.ndarray
    labels: List[str]
    chain: np.ndarray
    graphs: Optional[List[nx.Graph]]
    acceptance_rate: float
    toggles_per_second: float
    degenerate_fraction: float
    degenerate: bool
    n_toggles: int
    seconds: float

    def mean(self) -> np.ndarray:
        return self.statistics.mean(0)


def degeneracy_fraction(n_ties: np.ndarray, n_dyads: int, observed_ties: Optional[int] = None) -> float:
    """Fraction of degenerate draws: the empty or the complete graph, and, when the observed number of ties
    is given, draws whose number of ties differs from it by more than half of all dyads (chains that ran
    off towards the empty or complete graph; a non-degenerate model's tie count fluctuates by O(sqrt(D)))."""
    t = np.asarray(n_ties)
    bad = (t == 0) | (t == n_dyads)
    if observed_ties is not None:
        bad |= np.abs(t - observed_ties) > 0.5 * n_dyads
    return float(np.mean(bad))


def warn_if_degenerate(fraction: float, theta: np.ndarray, labels: Sequence[str], where: str) -> bool:
    """Emit a UserWarning when simulations pile up at the empty/full graph; return the flag."""
    if fraction > DEGENERACY_THRESHOLD:
        coef = ", ".join(f"{l}={v:.3g}" for l, v in zip(labels, np.asarray(theta)))
        warnings.warn(
            f"{where}: {100 * fraction:.0f}% of simulated graphs are empty, complete or run off towards "
            f"one of them at ({coef}); "
            "the model is near-degenerate there and estimates may be meaningless "
            "(try gwesp/gwdegree instead of triangle/kstar, or check the formula)",
            UserWarning, stacklevel=3)
        return True
    return False


class ERGM:
    """Exponential random graph model p_theta(y) = exp(theta . s(y)) / Z(theta).

    Parameters
    ----------
    formula : str
        statnet-style terms, e.g. ``"edges + triangle + gwesp(0.5)"`` (see :mod:`ebmlab.ergm.terms`).
    directed : bool, optional
        Required direction of graphs; None accepts what the graph is.
    backend : {"auto", "numba", "numpy"}
        Where change statistics, the MH chains and the MPLE's change-statistic matrix run: the compiled kernels of
        :mod:`ebmlab.ergm.kernels` on sparse neighbour lists ("numba"), or the numpy reference ("numpy"). "auto"
        takes numba when every term has a kernel and otherwise warns and uses numpy. Fits report the path in
        ``diagnostics["backend"]``.
    n_jobs : int
        Threads over which the compiled kernel spreads the independent MH chains (numba's ``prange``); the chains
        and every result are the same for any ``n_jobs`` (each chain's random numbers are drawn in advance).

    Examples
    --------
    >>> import networkx as nx
    >>> model = ERGM("edges + kstar(2)")
    >>> fit = model.fit(nx.florentine_families_graph(), method="mple")
    >>> print(fit.summary())  # doctest: +SKIP

    References
    ----------
    Frank & Strauss (1986); Snijders, Pattison, Robins & Handcock (2006); Hunter, Handcock, Butts,
    Goodreau & Morris (2008), "ergm: a package to fit, simulate and diagnose ERGMs", JSS 24(3).
    """

    def __init__(self, formula: str, directed: Optional[bool] = None, *, backend: str = "auto", n_jobs: int = 1):
        self.formula = formula
        self.specs = parse_formula(formula)
        for spec in self.specs:
            TERMS.get(spec.name)  # unknown term -> ConfigError listing the valid ones
        if directed is not None and not isinstance(directed, bool):
            raise ConfigError(f"directed must be True, False or None, got {directed!r}")
        self.directed = directed
        self.backend = check_choice("backend", backend, BACKENDS)
        self.n_jobs = check_int("n_jobs", n_jobs)
        if self.n_jobs > 1 and self.backend == "numpy":
            raise ConfigError("n_jobs > 1 runs the chains on numba threads: it needs backend='numba' or 'auto'")

    def __repr__(self) -> str:
        return f"ERGM({self.formula!r})"

    def bind(self, graph: Union[nx.Graph, Network, int]) -> BoundERGM:
        """Bind the formula to a graph (or to ``n`` nodes without ties when given an int)."""
        if isinstance(graph, (int, np.integer)) and not isinstance(graph, bool):
            n = check_int("n_nodes", int(graph), minimum=2)
            net = empty_network(n, bool(self.directed))
        else:
            net = as_network(graph, self.directed)
        return BoundERGM(self.formula, self.specs, net, self.backend, self.n_jobs)

    def energy(self, n_nodes: Union[int, nx.Graph, Network], theta: Optional[Sequence[float]] = None, *,
               directed: Optional[bool] = None, learnable: bool = False, dtype: torch.dtype = torch.float64,
               **node_attributes: Sequence[Any]):
        """The ERGM on ``n_nodes`` nodes as an exponential-family :class:`~ebmlab.energies.ERGMEnergy`.

        U(y) = -theta . s(y) on the {0,1} dyad vector y (``[batch, n_dyads]``: pairs i < j in row-major order for
        undirected graphs, ordered pairs i != j for directed ones), so p(y) = exp(-U(y)) / Z(theta) is this ERGM
        and every generic sampler (Gibbs, TNT) and objective (pseudo-likelihood, energy discrepancy) and the exact
        enumeration of :mod:`ebmlab.metrics.exact` apply to it unchanged.

        Parameters
        ----------
        n_nodes : int or networkx graph
            Number of nodes, or a graph whose nodes, direction and node attributes are used (its ties are not).
        theta : sequence of float, optional
            One coefficient per statistic, in formula order (default zeros).
        directed : bool, optional
            Direction of the graphs when ``n_nodes`` is an int (default: the model's ``directed``, else False).
        learnable : bool
            theta as an ``nn.Parameter`` (trainable by any objective) instead of a buffer.
        dtype : torch.dtype
            dtype of theta (float64 by default: the statistics are exact float64 values).
        **node_attributes : sequence
            Node attributes the formula's terms read (``nodematch("a")``, ``nodecov("a")``), one value per node,
            e.g. ``group=[0, 0, 1, 1, 1]``.

        Examples
        --------
        >>> U = ERGM("edges + triangle").energy(5, [-0.4, 0.3])
        >>> U.n_sites, U.labels
        (10, ['edges', 'triangle'])
        """
        if isinstance(n_nodes, (int, np.integer)) and not isinstance(n_nodes, bool):
            n = check_int("n_nodes", int(n_nodes), minimum=2)
            if directed is not None and not isinstance(directed, bool):
                raise ConfigError(f"directed must be True, False or None, got {directed!r}")
            if directed is not None and self.directed is not None and directed != self.directed:
                raise ConfigError(f"directed={directed!r} contradicts the model's directed={self.directed!r}")
            is_dir = bool(self.directed if directed is None else directed)
            attrs = {}
            for name, values in node_attributes.items():
                try:
                    vals = list(values)
                except TypeError:
                    raise ConfigError(f"node attribute {name!r} must be a sequence of {n} values, got "
                                      f"{values!r}") from None
                if len(vals) != n:
                    raise ConfigError(f"node attribute {name!r} has {len(vals)} values but there are {n} nodes")
                attrs[name] = vals
            net = empty_network(n, is_dir)
            net.node_attributes = {i: {name: vals[i] for name, vals in attrs.items()} for i in range(n)}
            bound = BoundERGM(self.formula, self.specs, net, self.backend, self.n_jobs)
        else:
            if node_attributes:
                raise ConfigError("node attributes are read from the graph; pass them as keywords only with an int "
                                  f"n_nodes (got {', '.join(sorted(node_attributes))})")
            bound = self.bind(n_nodes)
            if directed is not None and bool(directed) != bound.network.directed:
                kind = "directed" if bound.network.directed else "undirected"
                raise ConfigError(f"directed={directed!r} but the graph is {kind}")
        return bound.energy(theta, learnable=learnable, dtype=dtype)

    # ------------------------------------------------------------------------------------------
    def statistics(self, graph: Union[nx.Graph, Network]) -> np.ndarray:
        """The model statistics s(y) of ``graph`` as a float64 array [p]."""
        bound = self.bind(graph)
        return bound.observed_statistics()

    def labels(self, graph: Union[nx.Graph, Network, int]) -> List[str]:
        return self.bind(graph).labels

    def simulate(self, graph_or_n_nodes: Union[nx.Graph, Network, int], theta: Sequence[float],
                 n_samples: int = 100, burn_in: Optional[int] = None, thin: Optional[int] = None,
                 seed: Optional[int] = None, *,
                 generator: Optional[torch.Generator] = None, proposal: str = "tnt",
                 n_chains: Optional[int] = None, return_graphs: bool = False) -> Simulation:
        """Draw graphs from p_theta with dyad-toggle Metropolis–Hastings (see :mod:`ebmlab.ergm.sampler`).

        Parameters
        ----------
        graph_or_n_nodes : networkx graph or int
            Chains start from this graph (node attributes are read from it), or from the empty graph on
            that many nodes.
        theta : sequence of float
            One coefficient per statistic.
        n_samples : int
            Number of draws.
        burn_in, thin : int, optional
            Steps per chain before the first draw and between draws (defaults: 8 and 1/2 proposals per dyad).
        seed / generator
            Randomness (int seed or torch.Generator).
        proposal : {"tnt", "random"}
        n_chains : int, optional
            Independent chains run in parallel (default min(n_samples, 32)); draws are spread evenly over chains.
        return_graphs : bool
            Also return the draws as networkx graphs.
        """
        bound = self.bind(graph_or_n_nodes)
        theta = _check_theta(theta, bound)
        n_samples = check_int("n_samples", n_samples)
        check_choice("proposal", proposal, PROPOSALS)
        burn_in = bound.default_burn_in() if burn_in is None else check_int("burn_in", burn_in, minimum=0)
        thin = bound.default_thin() if thin is None else check_int("thin", thin)
        n_chains = min(n_samples, 32) if n_chains is None else check_int("n_chains", n_chains)
        rng = numpy_rng(seed, generator)
        per_chain = -(-n_samples // n_chains)
        run = bound.run_chains(theta, n_chains=n_chains, n_draws=per_chain, burn_in=burn_in, thin=thin,
                               rng=rng, proposal=proposal, return_graphs=return_graphs)
        stats = run.statistics.reshape(-1, bound.n_params)[:n_samples]
        chain = np.tile(np.arange(n_chains), per_chain)[:n_samples]
        frac = degeneracy_fraction(run.n_ties.reshape(-1)[:n_samples], bound.dyads.n_dyads)
        flag = warn_if_degenerate(frac, theta, bound.labels, "simulate")
        graphs = None
        if return_graphs:
            mats = run.graphs.reshape((-1,) + run.graphs.shape[2:])[:n_samples]
            graphs = [bound.network.to_networkx(m) for m in mats]
        return Simulation(stats, bound.labels, chain, graphs, float(run.acceptance_rate.mean()),
                          run.toggles_per_second, frac, flag, run.n_toggles, run.seconds)

    def fit(self, graph: Union[nx.Graph, Network], method: str = "mple", seed: Optional[int] = None, *,
            generator: Optional[torch.Generator] = None, **options: Any):
        """Estimate theta from one observed graph.

        Parameters
        ----------
        graph : networkx graph
        method : {"mple", "mcmc_mle", "cd", "ed"}
            Maximum pseudo-likelihood, Monte Carlo MLE (Geyer–Thompson with Hummel et al.'s step length),
            contrastive divergence, or energy discrepancy with dyad-flip perturbations.
        seed / generator
            Randomness for the stochastic methods.
        **options
            Passed to the estimator (see ``ebmlab.ergm.estimation.<method>``).

        Returns
        -------
        ERGMResult
        """
        from .estimation import ESTIMATORS

        estimator = ESTIMATORS.get(method)
        bound = self.bind(graph)
        rng = numpy_rng(seed, generator)
        try:
            result = estimator(bound, rng=rng, **options)
        except TypeError as err:
            if "unexpected keyword" in str(err):
                raise ConfigError(f"bad option for ERGM method {method!r}: {err}") from None
            raise
        return mark_not_estimable(result, bound)


def frozen_at_minimum(bound: BoundERGM) -> List[int]:
    """Terms whose observed statistic sits at its smallest attainable value (``Term.min_value``) and that no single
    toggle of the observed graph can change (their change statistic is 0 on every dyad): e.g. ``degree(100)`` on a
    graph whose degrees are all far below 100. Their MLE is -Inf (statnet: "observed statistic(s) ... are at their
    smallest attainable values; their coefficients will be fixed at -Inf"), so they are not estimable.
    Checked on graphs with at most DENSE_MAX_NODES nodes (all dyads are enumerated)."""
    if not bound.dense:
        return []
    s_obs = bound.observed_statistics()
    at_min = [k for k, t in enumerate(bound.terms) if t.min_value is not None and s_obs[k] == t.min_value]
    if not at_min:
        return []
    X, _ = bound.change_statistics()
    return [k for k in at_min if not np.any(X[:, k])]


def mark_not_estimable(result, bound: BoundERGM):
    """Report the coefficients of :func:`frozen_at_minimum` terms as -Inf (not estimable), with NaN standard errors,
    ``converged=False``, a warning and a note; the other coefficients are those of the fit with these terms at 0
    (exact when the statistic is constant over every graph reachable by the sampler, as for an unattainable
    degree)."""
    bad = frozen_at_minimum(bound)
    if not bad:
        return result
    names = ", ".join(bound.labels[k] for k in bad)
    msg = (f"observed statistic(s) {names} are at their smallest attainable value ("
           + ", ".join(f"{bound.labels[k]}={bound.terms[k].min_value:g}" for k in bad)
           + ") and no toggle of the observed graph changes them: their MLE is -Inf, so they are not estimable "
           "(reported as -Inf with no standard error; remove the term(s) from the formula)")
    warnings.warn(f"{result.method}: {msg}", UserWarning, stacklevel=3)
    result.coef = np.array(result.coef, dtype=np.float64)
    result.stderr = np.array(result.stderr, dtype=np.float64)
    for k in bad:
        result.coef[k] = -np.inf
        result.stderr[k] = np.nan
        if result.mcmc_se is not None:
            result.mcmc_se = np.array(result.mcmc_se, dtype=np.float64)
            result.mcmc_se[k] = np.nan
        result.cov = np.array(result.cov, dtype=np.float64)
        result.cov[k, :] = np.nan
        result.cov[:, k] = np.nan
    result.converged = False
    result.stderr_reliable = False
    result.diagnostics["not_estimable"] = [bound.labels[k] for k in bad]
    result.notes.insert(0, msg)
    return result


def _check_theta(theta: Sequence[float], bound: BoundERGM) -> np.ndarray:
    try:
        t = np.asarray(theta, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"theta must be a sequence of numbers, got {theta!r}") from None
    if t.size != bound.n_params:
        raise ConfigError(f"theta has {t.size} values but the model has {bound.n_params} statistics "
                          f"({', '.join(bound.labels)})")
    if not np.all(np.isfinite(t)):
        raise ConfigError(f"theta must be finite, got {t.tolist()}")
    return t
