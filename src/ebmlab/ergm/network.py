"""Observed networks: a networkx graph turned into a dense 0/1 adjacency matrix plus node attributes.

ERGMs are fitted on simple graphs: no self-loops, no multi-edges, edge weights ignored.  Nodes are
ordered as ``list(graph.nodes)``; that order is kept when simulated graphs are turned back into
networkx graphs (with the same node labels and attributes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import networkx as nx
import numpy as np

from .._core.errors import ConfigError, DataError

__all__ = ["Network", "as_network"]


@dataclass
class Network:
    """A simple (un)directed graph as a dense float64 adjacency matrix.

    Attributes
    ----------
    adjacency : ndarray [n, n]
        0/1 entries, zero diagonal; symmetric when ``directed`` is False.
    directed : bool
    nodes : list
        Node labels in matrix order.
    node_attributes : dict
        ``{node: {attr: value}}`` copied from the networkx graph.
    """

    adjacency: np.ndarray
    directed: bool
    nodes: List[Any]
    node_attributes: Dict[Any, Dict[str, Any]] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def n_dyads(self) -> int:
        n = self.n_nodes
        return n * (n - 1) if self.directed else n * (n - 1) // 2

    @property
    def n_edges(self) -> int:
        total = int(self.adjacency.sum())
        return total if self.directed else total // 2

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
        """A networkx graph with this network's nodes and attributes and the edges of ``adjacency``."""
        a = self.adjacency if adjacency is None else np.asarray(adjacency)
        g = nx.DiGraph() if self.directed else nx.Graph()
        for node in self.nodes:
            g.add_node(node, **self.node_attributes.get(node, {}))
        rows, cols = np.nonzero(a if self.directed else np.triu(a, 1))
        g.add_edges_from((self.nodes[r], self.nodes[c]) for r, c in zip(rows.tolist(), cols.tolist()))
        return g


def empty_network(n_nodes: int, directed: bool) -> Network:
    """A network with ``n_nodes`` nodes labelled 0..n-1 and no edges."""
    return Network(np.zeros((n_nodes, n_nodes)), bool(directed), list(range(n_nodes)), {i: {} for i in range(n_nodes)})


def as_network(graph: Any, directed: Optional[bool] = None) -> Network:
    """Convert a networkx graph (or an existing :class:`Network`) into a :class:`Network`.

    Parameters
    ----------
    graph : networkx.Graph | networkx.DiGraph | Network
        Self-loops are dropped; multigraphs are collapsed to simple graphs.
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
        a = np.zeros((len(nodes), len(nodes)))
        for u, v in graph.edges():
            if u == v:
                continue
            a[index[u], index[v]] = 1.0
            if not is_dir:
                a[index[v], index[u]] = 1.0
        net = Network(a, is_dir, nodes, {v: dict(graph.nodes[v]) for v in nodes})
    if directed is not None and bool(directed) != net.directed:
        kind = "directed" if net.directed else "undirected"
        raise ConfigError(f"directed={directed!r} but the graph is {kind}; omit `directed` or convert the graph")
    if net.n_nodes < 2:
        raise DataError(f"an ERGM needs a graph with at least 2 nodes (at least one dyad), got {net.n_nodes} nodes")
    return net
