"""Observed networks: a networkx graph turned into its tie list (and a dense 0/1 adjacency matrix for graphs that
are not large) plus node attributes.

ERGMs are fitted on simple graphs: no self-loops, no multi-edges, edge weights ignored.  Nodes are
ordered as ``list(graph.nodes)``; that order is kept when simulated graphs are turned back into
networkx graphs (with the same node labels and attributes).
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

import networkx as nx
import numpy as np

from .._core.errors import ConfigError, DataError

__all__ = ["Network", "as_network", "DENSE_MAX_NODES"]


#: graphs with more nodes than this are kept as tie lists only (no dense n x n adjacency)
DENSE_MAX_NODES = 4000


class Network:
    """A simple (un)directed graph: its ties, and a dense float64 adjacency matrix for graphs of at most
    :data:`DENSE_MAX_NODES` nodes.

    Attributes
    ----------
    adjacency : ndarray [n, n]
        0/1 entries, zero diagonal; symmetric when ``directed`` is False. Built on demand from the ties; a
        DataError for larger graphs (whose ERGMs run on the sparse, compiled path).
    edges : ndarray [E, 2] int64
        The ties as node indices (i < j when undirected).
    directed : bool
    nodes : list
        Node labels in matrix order.
    node_attributes : dict
        ``{node: {attr: value}}`` copied from the networkx graph.
    """

    def __init__(self, adjacency: Optional[np.ndarray], directed: bool, nodes: List[Any],
                 node_attributes: Optional[Dict[Any, Dict[str, Any]]] = None, *, edges: Optional[np.ndarray] = None):
        self.directed = bool(directed)
        self.nodes = list(nodes)
        self.node_attributes = {} if node_attributes is None else node_attributes
        self._adjacency = None if adjacency is None else np.asarray(adjacency, dtype=np.float64)
        if edges is None:
            if self._adjacency is None:
                raise ValueError("a Network needs an adjacency matrix or a tie list")
            a = self._adjacency
            edges = np.argwhere(a > 0.5 if self.directed else np.triu(a > 0.5, 1))
        self.edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)

    @property
    def adjacency(self) -> np.ndarray:
        if self._adjacency is None:
            n = self.n_nodes
            if n > DENSE_MAX_NODES:
                raise DataError(f"the graph has {n} nodes: no dense adjacency matrix is built above "
                                f"{DENSE_MAX_NODES} nodes; this operation needs one (fit and simulate on the compiled "
                                "sparse path: backend='numba', method 'mple' or 'mcmc_mle')")
            a = np.zeros((n, n))
            a[self.edges[:, 0], self.edges[:, 1]] = 1.0
            if not self.directed:
                a[self.edges[:, 1], self.edges[:, 0]] = 1.0
            self._adjacency = a
        return self._adjacency

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_dyads(self) -> int:
        n = self.n_nodes
        return n * (n - 1) if self.directed else n * (n - 1) // 2

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    def attribute(self, name: str) -> List[Any]:
        """Values of node attribute ``name`` in matrix order; ConfigError naming the first node without it."""
        values = []
        for node in self.nodes:
            attrs = self.node_attributes.get(node, {})
            if name not in attrs:
                have = sorted({k for a in self.node_attributes.values() for k in a})
                raise ConfigError(
                    f"node attribute {name!r} is missing on node {node!r}; "
                    f"attributes present in the graph: {', '.join(map(repr, have)) or 'none'}"
                )
            values.append(attrs[name])
        return values

    def to_networkx(self, adjacency: Optional[np.ndarray] = None) -> nx.Graph:
        """A networkx graph with this network's nodes and attributes and the edges of ``adjacency`` (default: its
        own ties)."""
        g = nx.DiGraph() if self.directed else nx.Graph()
        for node in self.nodes:
            g.add_node(node, **self.node_attributes.get(node, {}))
        if adjacency is None:
            rows, cols = self.edges[:, 0], self.edges[:, 1]
        else:
            a = np.asarray(adjacency)
            rows, cols = np.nonzero(a if self.directed else np.triu(a, 1))
        g.add_edges_from((self.nodes[r], self.nodes[c]) for r, c in zip(rows.tolist(), cols.tolist()))
        return g


def empty_network(n_nodes: int, directed: bool) -> Network:
    """A network with ``n_nodes`` nodes labelled 0..n-1 and no edges."""
    return Network(None, bool(directed), list(range(n_nodes)), {i: {} for i in range(n_nodes)},
                   edges=np.zeros((0, 2), dtype=np.int64))


def as_network(graph: Any, directed: Optional[bool] = None) -> Network:
    """Convert a networkx graph (or an existing :class:`Network`) into a :class:`Network`.

    Parameters
    ----------
    graph : networkx.Graph | networkx.DiGraph | Network
        Self-loops are dropped with a UserWarning naming their count; multigraphs are collapsed to simple
        graphs. Graphs of more than :data:`DENSE_MAX_NODES` nodes keep their ties only.
    directed : bool, optional
        Must agree with the graph's own directedness when given.

    Raises
    ------
    DataError
        If ``graph`` is not a graph or has fewer than 2 nodes (no dyads).
    ConfigError
        If ``directed`` contradicts the graph.
    """
    if isinstance(graph, Network):
        net = graph
    else:
        if not isinstance(graph, nx.Graph):
            raise DataError(f"expected a networkx graph, got {type(graph).__name__}")
        is_dir = graph.is_directed()
        nodes = list(graph.nodes)
        index = {v: k for k, v in enumerate(nodes)}
        loops = nx.number_of_selfloops(graph)
        if loops:
            warnings.warn(f"the graph has {loops} self-loop(s); an ERGM is defined on simple graphs, so they are "
                          "dropped", UserWarning, stacklevel=3)
        flat = np.fromiter((index[w] for e in graph.edges() for w in e[:2]), dtype=np.int64,
                           count=2 * graph.number_of_edges())
        pairs = flat.reshape(-1, 2)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        if not is_dir:
            pairs = np.sort(pairs, axis=1)
        if pairs.size:  # sorted by (tail, head); a multigraph's parallel ties count once
            n = len(nodes)
            key = np.sort(pairs[:, 0] * n + pairs[:, 1])
            key = key[np.concatenate([[True], key[1:] != key[:-1]])]
            pairs = np.stack([key // n, key % n], 1)
        net = Network(None, is_dir, nodes, {v: dict(graph.nodes[v]) for v in nodes}, edges=pairs)
    if directed is not None and bool(directed) != net.directed:
        kind = "directed" if net.directed else "undirected"
        raise ConfigError(f"directed={directed!r} but the graph is {kind}; omit `directed` or convert the graph")
    if net.n_nodes < 2:
        raise DataError(f"an ERGM needs a graph with at least 2 nodes (at least one dyad), got {net.n_nodes} nodes")
    return net
