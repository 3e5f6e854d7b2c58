r"""The exponential random graph model (ERGM) as an exponential-family :class:`Energy` on dyad vectors.

An ERGM on a fixed set of n nodes is

.. math::

    p_\theta(y) = \exp(\theta \cdot s(y)) / Z(\theta), \qquad U_\theta(y) = -\theta \cdot s(y),

over simple graphs y (Frank & Strauss 1986; Wasserman & Pattison 1996), with the statistics s(y) of a
statnet-style formula (:mod:`ebmlab.ergm.terms`). A graph is its **dyad vector**: a {0,1} float tensor of
shape ``[batch, n_dyads]`` in the order of :class:`ebmlab.ergm.graph_batch.DyadIndex` (undirected: the
pairs i < j row by row, n(n-1)/2 dyads; directed: the ordered pairs i != j row by row, n(n-1) dyads).
Flipping site d toggles tie d, so the energy follows the conventions of :mod:`ebmlab.energies.binary` and
is an exponential family like :class:`~ebmlab.energies.Ising`: ``statistics(x)`` is s(y) in the formula's
order and ``theta`` the coefficients, with U = -theta . T exactly.

Local changes come from the terms' change statistics (Strauss & Ikeda 1990): with
Δ_d s(y) = s(y_d^+) - s(y_d^-) (tie d forced present / absent),

.. math::

    \delta_d(y) = U(\mathrm{flip}_d\, y) - U(y) = -(1 - 2 y_d)\, \theta \cdot \Delta_d s(y),

for every dyad (``delta``) or one dyad per row (``site_delta``, O(n) per row), so Gibbs, the tie/no-tie
sampler, pseudo-likelihood (whose maximiser is the MPLE) and energy discrepancy run on it unchanged, and
:mod:`ebmlab.metrics.exact` enumerates it on small graphs.

The statistics are computed by the term library of :mod:`ebmlab.ergm` in float64 numpy (the statnet
definitions, tested there); the energy imports it when built, so ``ebmlab.energies`` itself does not load
networkx. Results are differentiable in theta (not in x: the statistics are defined on graphs only, so
there is no gradient in x and gradient-based samplers do not apply).

References
----------
O. Frank and D. Strauss (1986), Markov graphs. JASA 81.
D. Strauss and M. Ikeda (1990), Pseudolikelihood estimation for social networks. JASA 85.
D. R. Hunter, M. S. Handcock, C. T. Butts, S. M. Goodreau and M. Morris (2008), ergm: a package to fit,
simulate and diagnose exponential-family models for networks. J. Stat. Softw. 24(3).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int
from .base import Energy
from .registry import ENERGIES

__all__ = ["ERGMEnergy", "ergm_energy"]

#: adjacency entries (rows x n x n) per numpy call when computing statistics of a large batch
_CELLS_PER_CHUNK = 1 << 22


class ERGMEnergy(Energy):
    r"""A bound ERGM, U(y) = -theta . s(y), on dyad vectors y in {0,1}^{n_dyads} (see the module docstring).

    Build it with :meth:`ebmlab.ergm.ERGM.energy` (``ERGM("edges + triangle").energy(5, [-0.4, 0.3])``) or
    directly from a formula: ``ERGMEnergy("edges + triangle", theta=[-0.4, 0.3], n_nodes=5)``.

    Parameters
    ----------
    model : str, ERGM or BoundERGM
        The formula (with ``n_nodes``), an :class:`~ebmlab.ergm.ERGM` (with ``n_nodes``) or a formula already
        bound to a node set (:meth:`ebmlab.ergm.ERGM.bind`).
    theta : sequence of float, optional
        Coefficients in formula order (default zeros).
    n_nodes : int or networkx graph, optional
        Nodes when ``model`` is not bound (see :meth:`ebmlab.ergm.ERGM.energy`).
    directed : bool, optional
        Direction when ``model`` is not bound and ``n_nodes`` is an int (default False).
    learnable : bool
        theta is an ``nn.Parameter`` (trained by any objective) instead of a buffer.
    dtype : torch.dtype
        dtype of theta (default float64).
    **node_attributes
        Node attributes the formula needs, one value per node (only with an int ``n_nodes``).

    Attributes
    ----------
    n_sites : int
        Number of dyads (the length of a state).
    n_nodes : int
    directed : bool
    labels : list of str
        Coefficient names, statnet style.
    bound : BoundERGM
        The formula bound to the node set (terms, dyad index, node attributes).
    """

    discrete = True

    def __init__(self, model: Any, theta: Optional[Sequence[float]] = None, *, n_nodes: Any = None,
                 directed: Optional[bool] = None, learnable: bool = False, dtype: torch.dtype = torch.float64,
                 **node_attributes: Sequence[Any]):
        super().__init__()
        from ..ergm.model import ERGM, BoundERGM

        if isinstance(model, str):
            model = ERGM(model)
        if isinstance(model, ERGM):
            if n_nodes is None:
                raise ConfigError("ERGMEnergy of a formula needs n_nodes (an int or a graph)")
            model = model.energy(n_nodes, None, directed=directed, **node_attributes).bound
        elif not isinstance(model, BoundERGM):
            raise ConfigError(f"model must be a formula string, an ERGM or a BoundERGM, got {type(model).__name__}")
        elif n_nodes is not None or directed is not None or node_attributes:
            raise ConfigError("a BoundERGM already fixes the nodes: pass neither n_nodes, directed nor attributes")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        self.bound = model
        self.labels = list(model.labels)
        self.n_nodes = model.network.n_nodes
        self.directed = model.network.directed
        self.n_sites = model.dyads.n_dyads
        self.learnable = bool(learnable)
        t = self._check_theta(theta, dtype)
        if self.learnable:
            self.theta = nn.Parameter(t)
        else:
            self.register_buffer("theta", t)

    # -- construction helpers ------------------------------------------------------------------------
    def _check_theta(self, theta, dtype) -> torch.Tensor:
        p = len(self.labels)
        if theta is None:
            return torch.zeros(p, dtype=dtype)
        try:
            t = theta.detach() if isinstance(theta, torch.Tensor) else torch.from_numpy(np.asarray(theta, dtype=np.float64))
            t = t.to(dtype=dtype, device="cpu").reshape(-1).clone()
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"theta must be a sequence of {p} numbers ({', '.join(self.labels)}), "
                              f"got {theta!r}") from None
        if t.numel() != p:
            raise ConfigError(f"theta has {t.numel()} values but the formula has {p} statistics "
                              f"({', '.join(self.labels)})")
        if not torch.isfinite(t).all():
            raise ConfigError(f"theta must be finite, got {t.tolist()}")
        return t

    # -- states <-> graphs -----------------------------------------------------------------------------
    def _check_states(self, x: torch.Tensor, *, values: bool) -> np.ndarray:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.n_sites:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"ERGM states must be dyad vectors of shape [batch, {self.n_sites}] "
                            f"({self.n_nodes} nodes, {'directed' if self.directed else 'undirected'}), got {shape}")
        if x.requires_grad:
            raise DataError("ERGM statistics are defined on graphs only: x must not require grad "
                            "(there is no gradient in x)")
        xn = x.detach().to("cpu", torch.float64).numpy()
        if values and not np.all((xn == 0.0) | (xn == 1.0)):
            raise DataError("ERGM states must contain only 0 and 1 (tie absent / present)")
        return xn

    def adjacency(self, x: torch.Tensor) -> np.ndarray:
        """Adjacency matrices ``[batch, n, n]`` (float64 numpy) of dyad vectors ``x``."""
        return self.bound.dyads.to_adjacency(self._check_states(x, values=True))

    def dyads_of(self, graph: Any) -> torch.Tensor:
        """The dyad vector ``[1, n_dyads]`` (float64) of a networkx graph on these nodes, or of adjacency
        matrices ``[n, n]`` / ``[B, n, n]`` (then ``[B, n_dyads]``)."""
        if isinstance(graph, np.ndarray) or isinstance(graph, torch.Tensor):
            a = np.asarray(graph.cpu() if isinstance(graph, torch.Tensor) else graph, dtype=np.float64)
            a = a[None] if a.ndim == 2 else a
            if a.ndim != 3 or a.shape[1:] != (self.n_nodes, self.n_nodes):
                raise DataError(f"adjacency must have shape [{self.n_nodes}, {self.n_nodes}] or "
                                f"[batch, {self.n_nodes}, {self.n_nodes}], got {a.shape}")
        else:
            from ..ergm.network import as_network

            net = as_network(graph, self.directed)
            if net.n_nodes != self.n_nodes:
                raise DataError(f"the graph has {net.n_nodes} nodes, the energy {self.n_nodes}")
            a = net.adjacency[None]
        return torch.from_numpy(np.ascontiguousarray(self.bound.dyads.from_adjacency(a)))

    # -- exponential family ----------------------------------------------------------------------------
    def _statistics64(self, x: torch.Tensor) -> torch.Tensor:
        xn = self._check_states(x, values=True)
        rows = max(1, _CELLS_PER_CHUNK // max(1, self.n_nodes * self.n_nodes))
        parts = [self.bound.statistics(self.bound.dyads.to_adjacency(xn[s:s + rows]))
                 for s in range(0, xn.shape[0], rows)]
        out = np.concatenate(parts, 0) if parts else np.zeros((0, len(self.labels)))
        return torch.from_numpy(out.reshape(xn.shape[0], len(self.labels))).to(x.device)

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """Sufficient statistics s(y) in the formula's order, ``[batch, p]`` (computed in float64, returned in
        the dtype of ``x``)."""
        return self._statistics64(x).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """U(y) = -theta . s(y), shape [batch] (float64 arithmetic, returned in the dtype of ``x``)."""
        t = self._statistics64(x)
        return -(t @ self.theta.to(torch.float64)).to(x.dtype)

    def change_statistics(self, x: torch.Tensor) -> torch.Tensor:
        """Change statistics Δ_d s(y) = s(y_d^+) - s(y_d^-) of every dyad of every row, ``[batch, n_dyads, p]``
        (float64; the covariates of the MPLE's logistic regression, Strauss & Ikeda 1990)."""
        xn = self._check_states(x, values=False)
        rows = max(1, _CELLS_PER_CHUNK // max(1, self.n_nodes * self.n_nodes * 8))
        parts = [self.bound.change_statistics_batch(self.bound.dyads.to_adjacency(xn[s:s + rows]))
                 for s in range(0, xn.shape[0], rows)]
        return torch.from_numpy(np.concatenate(parts, 0)).to(x.device)

    def delta(self, x: torch.Tensor, change_statistics: Optional[torch.Tensor] = None) -> torch.Tensor:
        """U(flip_d y) - U(y) = -(1 - 2 y_d) theta . Δ_d s(y) for every dyad, ``[batch, n_dyads]``.

        ``change_statistics`` (from :meth:`change_statistics` of the same ``x``) skips their recomputation; the
        result is differentiable in theta.
        """
        c = self.change_statistics(x) if change_statistics is None else change_statistics
        if c.shape != (x.shape[0], self.n_sites, len(self.labels)):
            raise DataError(f"change_statistics must have shape [{x.shape[0]}, {self.n_sites}, {len(self.labels)}], "
                            f"got {tuple(c.shape)}")
        sign = 1.0 - 2.0 * x.detach().to(torch.float64)
        return (-sign * (c.to(torch.float64) @ self.theta.to(torch.float64))).to(x.dtype)

    def site_delta(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """U(flip_{idx_b} y_b) - U(y_b) for one dyad per row, shape [batch] (O(n) per row)."""
        from ..ergm.graph_batch import GraphBatch

        xn = self._check_states(x, values=False)
        d = idx.detach().to("cpu", torch.int64).numpy()
        dy = self.bound.dyads
        g = GraphBatch(dy.to_adjacency(xn), dy, copy=False)
        i, j = dy.tail[d], dy.head[d]
        ch = np.stack([t.change(g, g.all_chains, i, j) for t in self.bound.terms], 1)
        sign = 1.0 - 2.0 * xn[g.all_chains, d]
        c = torch.from_numpy(sign[:, None] * ch).to(x.device)
        return (-(c @ self.theta.to(torch.float64))).to(x.dtype)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Not defined: the ERGM's statistics live on graphs, with no continuous relaxation in x."""
        raise ConfigError("ERGMEnergy has no gradient in x (its statistics are defined on graphs only); use a "
                          "gradient-free discrete sampler such as 'gibbs' or 'tnt'")

    def extra_repr(self) -> str:
        coef = ", ".join(f"{l}={v:.4g}" for l, v in zip(self.labels, self.theta.detach().tolist()))
        return (f"formula={self.bound.formula!r}, n_nodes={self.n_nodes}, directed={self.directed}, "
                f"n_sites={self.n_sites}, theta=({coef}), learnable={self.learnable}")


def _nodes_of(dim: int, directed: bool) -> int:
    """n with n(n-1)/2 = dim (undirected) or n(n-1) = dim (directed); ConfigError when there is none."""
    pairs = dim if directed else 2 * dim
    n = int(round((1 + math.sqrt(1 + 4 * pairs)) / 2))
    if n < 2 or n * (n - 1) != pairs:
        kind = "n(n-1)" if directed else "n(n-1)/2"
        examples = ", ".join(str(k * (k - 1) // (1 if directed else 2)) for k in range(2, 7))
        raise ConfigError(f"an ERGM on dyad vectors needs dim = {kind} for some n >= 2 ({examples}, ...); got "
                          f"dim={dim}")
    return n


@ENERGIES.register("ergm")
def ergm_energy(dim: int, formula: str = "edges + triangle", directed: bool = False,
                **node_attributes: Sequence[Any]) -> ERGMEnergy:
    """A learnable :class:`ERGMEnergy` on ``dim``-dimensional dyad vectors, started at theta = 0 (for the CLI and
    :class:`ebmlab.EnergyModel`: ``energy="ergm"``, ``energy_params={"formula": ...}``).

    ``dim`` must be n(n-1)/2 (undirected) or n(n-1) (directed) for a number of nodes n.
    """
    dim = check_int("dim", dim)
    if not isinstance(directed, bool):
        raise ConfigError(f"directed must be True or False, got {directed!r}")
    if not isinstance(formula, str):
        raise ConfigError(f"formula must be a string such as 'edges + triangle', got {formula!r}")
    return ERGMEnergy(formula, n_nodes=_nodes_of(dim, directed), directed=directed, learnable=True,
                      **node_attributes)


ergm_energy.discrete = True  # read by the CLI before the energy is built
