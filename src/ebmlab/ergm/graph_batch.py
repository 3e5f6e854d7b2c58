"""A batch of graphs on the same node set, kept in the form that makes dyad toggles cheap.

Per graph (chain) ``c`` it stores the adjacency ``A[c]``, the total degree ``deg[c]`` (out + in for
directed graphs), optionally the two-path (shared-partner) counts ``S[c] = A[c] @ A[c]`` (zero diagonal)
and a list of the current ties (for the tie/no-tie proposal).  :meth:`toggle` updates all of them in
O(n) per graph, so change statistics for the triangle and geometrically weighted terms cost O(n).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["DyadIndex", "GraphBatch"]


class DyadIndex:
    """Enumeration of the dyads of an n-node graph.

    Undirected: unordered pairs i < j, ``D = n(n-1)/2``. Directed: ordered pairs i != j, ``D = n(n-1)``.
    ``tail[d], head[d]`` are the endpoints of dyad ``d`` and ``index[i, j]`` is ``d`` (both orders for
    undirected graphs, -1 on the diagonal).
    """

    def __init__(self, n_nodes: int, directed: bool):
        self.n_nodes = n_nodes
        self.directed = directed
        self.n_dyads = n_nodes * (n_nodes - 1) // (1 if directed else 2)
        self._arrays = None

    def _build(self):
        # built on first use: O(n^2) memory, never needed by the sparse (compiled) path of large graphs
        n_nodes = self.n_nodes
        if self.directed:
            i, j = np.nonzero(~np.eye(n_nodes, dtype=bool))
        else:
            i, j = np.triu_indices(n_nodes, 1)
        tail, head = i.astype(np.int64), j.astype(np.int64)
        index = -np.ones((n_nodes, n_nodes), dtype=np.int64)
        index[tail, head] = np.arange(self.n_dyads)
        if not self.directed:
            index[head, tail] = np.arange(self.n_dyads)
        # cell (i, j) of the flattened adjacency -> its dyad, or n_dyads (a zero column) on the diagonal
        cell = np.where(index >= 0, index, self.n_dyads).reshape(-1)
        self._arrays = (tail, head, index, cell)
        return self._arrays

    @property
    def tail(self) -> np.ndarray:
        return (self._arrays or self._build())[0]

    @property
    def head(self) -> np.ndarray:
        return (self._arrays or self._build())[1]

    @property
    def index(self) -> np.ndarray:
        return (self._arrays or self._build())[2]

    @property
    def _cell_dyad(self) -> np.ndarray:
        return (self._arrays or self._build())[3]

    def to_adjacency(self, y: np.ndarray) -> np.ndarray:
        """Adjacency matrices ``[B, n, n]`` (float64) of dyad vectors ``y[B, n_dyads]`` (dyad d = (tail[d], head[d])).

        One gather: ``A[b, i, j] = y[b, index[i, j]]`` with a zero diagonal (symmetric when undirected).
        """
        y = np.asarray(y, dtype=np.float64)
        padded = np.concatenate([y, np.zeros((y.shape[0], 1))], axis=1)
        return np.take(padded, self._cell_dyad, axis=1).reshape(y.shape[0], self.n_nodes, self.n_nodes)

    def from_adjacency(self, adjacency: np.ndarray) -> np.ndarray:
        """Dyad vectors ``y[B, n_dyads]`` (float64) of adjacency matrices ``[B, n, n]``: ``y[b, d] = A[b, tail[d], head[d]]``."""
        a = np.asarray(adjacency, dtype=np.float64)
        return a[:, self.tail, self.head]


class GraphBatch:
    """``C`` graphs on the same ``n`` nodes with cached degrees, two-paths and tie lists.

    Parameters
    ----------
    adjacency : ndarray [C, n, n]
        0/1 float64 adjacency matrices (symmetric when undirected). Copied.
    dyads : DyadIndex
    track_two_paths : bool
        Maintain ``S = A @ A`` (needed by gwesp and gwdsp; triangle uses it when present).
    track_ties : bool
        Maintain the tie list (needed by the TNT proposal).
    copy : bool
        Copy ``adjacency`` (default). ``False`` uses a C-contiguous float64 array as it is (a caller that built
        it for this batch saves one copy); toggles then modify it.
    """

    def __init__(self, adjacency: np.ndarray, dyads: DyadIndex, *, track_two_paths: bool = False,
                 track_ties: bool = False, copy: bool = True):
        a = np.array(adjacency, dtype=np.float64, order="C", copy=True) if copy else np.ascontiguousarray(
            adjacency, dtype=np.float64)
        if a.ndim == 2:
            a = a[None]
        self.A = a
        self.dyads = dyads
        self.directed = dyads.directed
        self.n_chains, self.n_nodes = a.shape[0], a.shape[1]
        #: ``arange(n_chains)``; passing this very object as ``c`` marks "every chain, in order"
        self.all_chains = np.arange(self.n_chains)
        self.deg = np.ascontiguousarray(a.sum(2) + (a.sum(1) if self.directed else 0.0))
        self.S: Optional[np.ndarray] = None
        if track_two_paths:
            if self.directed:
                raise ValueError("two-path tracking is implemented for undirected graphs only")
            s = np.ascontiguousarray(a @ a)
            idx = np.arange(self.n_nodes)
            s[:, idx, idx] = 0.0
            self.S = s
            kk = np.arange(self.n_nodes)
            self._row_index = kk[:, None] * self.n_nodes + kk[None, :]   # row p: p*n + k
            self._col_index = kk[None, :] * self.n_nodes + kk[:, None]   # column p: k*n + p
        y = a[:, dyads.tail, dyads.head] > 0.5  # [C, D]
        self.n_ties = y.sum(1).astype(np.int64)
        self.tie_list: Optional[np.ndarray] = None
        self.tie_pos: Optional[np.ndarray] = None
        if track_ties:
            D = dyads.n_dyads
            self.tie_list = np.zeros((self.n_chains, max(D, 1)), dtype=np.int64)
            self.tie_pos = -np.ones((self.n_chains, max(D, 1)), dtype=np.int64)
            for c in range(self.n_chains):
                ties = np.nonzero(y[c])[0]
                self.tie_list[c, :ties.size] = ties
                self.tie_pos[c, ties] = np.arange(ties.size)

    # -- fast gathers (flat indexing is several times faster than numpy's multi-axis fancy indexing) --
    def entries(self, M: np.ndarray, c: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``M[c, i, j]`` for a [C, n, n] array of this batch (a copy)."""
        n = self.n_nodes
        return M.reshape(-1)[(c * n + i) * n + j]

    def rows(self, M: np.ndarray, c: np.ndarray, i: np.ndarray) -> np.ndarray:
        """``M[c, i, :]`` for a [C, n, n] array of this batch (a copy, shape [B, n])."""
        n = self.n_nodes
        return M.reshape(-1, n)[c * n + i]

    def two_path_rows(self, c: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Shared-partner counts ``S[c, i, :]`` (S = A @ A; the diagonal entry is unspecified).

        Read from the cache when ``track_two_paths`` is on, else computed as ``A[c, i, :] @ A[c]`` (cheaper than
        maintaining the cache for small graphs: numpy's per-call overhead dominates there).
        """
        if self.S is not None:
            return self.rows(self.S, c, i)
        a_i = self.rows(self.A, c, i)
        if c is self.all_chains:
            mats = self.A
        else:
            mats = self.A[c]
        return np.matmul(a_i[:, None, :], mats)[:, 0, :]

    def two_path_entries(self, c: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``S[c, i, j]`` = number of shared partners of i and j."""
        if self.S is not None:
            return self.entries(self.S, c, i, j)
        return np.einsum("bk,bk->b", self.rows(self.A, c, i), self.rows(self.A, c, j))

    def degree(self, c: np.ndarray, i: np.ndarray) -> np.ndarray:
        """``deg[c, i]`` (total degree)."""
        return self.deg.reshape(-1)[c * self.n_nodes + i]

    def toggle(self, chains: np.ndarray, dyad: np.ndarray) -> None:
        """Toggle dyad ``dyad[b]`` of graph ``chains[b]``; ``chains`` must hold distinct indices.

        All updates are single flat gathers/scatters (numpy's per-call overhead dominates at these sizes).
        """
        B = chains.size
        if B == 0:
            return
        n = self.n_nodes
        i = self.dyads.tail[dyad]
        j = self.dyads.head[dyad]
        ci, cj = chains * n + i, chains * n + j
        a_flat = self.A.reshape(-1)
        ij = ci * n + j
        y = a_flat[ij]
        sgn = 1.0 - 2.0 * y  # +1 adds a tie, -1 removes one
        if self.directed:
            a_flat[ij] = 1.0 - y
        else:
            a_flat[np.concatenate([ij, cj * n + i])] = np.concatenate([1.0 - y, 1.0 - y])
        sgn2 = np.concatenate([sgn, sgn])
        self.deg.reshape(-1)[np.concatenate([ci, cj])] += sgn2
        if self.S is not None:
            # S[i, k] += sgn A[j, k], S[j, k] += sgn A[i, k] (k != i, j) and the symmetric entries. Every index
            # that occurs twice below carries a zero increment, so one fancy '+=' is exact.
            rows = self.A.reshape(-1, n)[np.concatenate([cj, ci])] * sgn2[:, None]  # [2B, n]: A[j,:], A[i,:]
            rows.reshape(-1)[np.arange(2 * B) * n + np.concatenate([i, j])] = 0.0
            base = np.concatenate([chains, chains]) * (n * n)
            pq = np.concatenate([i, j])
            idx = np.concatenate([self._row_index[pq], self._col_index[pq]], 1) + base[:, None]
            self.S.reshape(-1)[idx] += np.concatenate([rows, rows], 1)
        self.n_ties[chains] += sgn.astype(np.int64)
        if self.tie_list is not None:
            added = sgn > 0
            cap = self.tie_list.shape[1]
            tl, tp = self.tie_list.reshape(-1), self.tie_pos.reshape(-1)
            ca, da = chains[added], dyad[added]
            cr, dr = chains[~added], dyad[~added]
            # n_ties is already updated: an added tie goes to slot n_ties - 1; a removed tie's slot is filled
            # with the tie from the old last slot (index n_ties). Duplicate indices below carry equal values.
            slot = self.n_ties[ca] - 1
            p = tp[cr * cap + dr]
            last = tl[cr * cap + self.n_ties[cr]]
            tl[np.concatenate([ca * cap + slot, cr * cap + p])] = np.concatenate([da, last])
            tp[np.concatenate([ca * cap + da, cr * cap + last, cr * cap + dr])] = np.concatenate(
                [slot, np.where(last == dr, -1, p), np.full(dr.size, -1)])
