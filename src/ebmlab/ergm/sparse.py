"""Sparse graph storage for the compiled ERGM kernels: per-node neighbour lists in one pool, and a tie list.

:class:`ListGraphs` holds ``C`` graphs (chains) on the same ``n`` nodes. Per chain ``c``:

- ``nb[c]`` a pool of neighbour ids; node i's neighbours are ``nb[c, start[c, i] : start[c, i] + deg[c, i]]``
  (out-neighbours when directed; ``indeg`` keeps the in-degrees), with room for ``cap[c, i]`` of them (a full
  list moves to the end of the pool with twice the room; a full pool is grown by the caller);
- ``ties[c, :n_ties[c]]`` the ties as dyad ids (the tie/no-tie proposal draws from it), ``slot`` the position
  in ``ties`` of every pool entry (O(1) removal).

Memory is O(n + ties) per chain and a toggle costs O(degree). Dyad ids follow
:class:`ebmlab.ergm.graph_batch.DyadIndex` (undirected: pairs i < j row-major; directed: ordered pairs i != j),
computed arithmetically so that no n x n array is ever built.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import kernels as K

__all__ = ["ListGraphs", "dyad_ids"]


def dyad_ids(tails: np.ndarray, heads: np.ndarray, n: int, directed: bool) -> np.ndarray:
    """Dyad ids of ties (tails[e], heads[e]) (int64; undirected ties in either order)."""
    i = np.asarray(tails, dtype=np.int64)
    j = np.asarray(heads, dtype=np.int64)
    if directed:
        return i * (n - 1) + np.where(j < i, j, j - 1)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return lo * (2 * n - lo - 1) // 2 + hi - lo - 1


def decode_dyads(d: np.ndarray, n: int, directed: bool):
    """Endpoints (tails, heads) of dyad ids ``d`` (vectorised inverse of :func:`dyad_ids`)."""
    d = np.asarray(d, dtype=np.int64)
    if directed:
        i = d // (n - 1)
        r = d - i * (n - 1)
        return i, np.where(r < i, r, r + 1)
    b = 2.0 * n - 1.0
    i = np.floor((b - np.sqrt(b * b - 8.0 * d)) / 2.0).astype(np.int64).clip(0, n - 2)
    off = lambda k: k * (2 * n - k - 1) // 2
    i = np.where(off(i) > d, i - 1, i)
    i = np.where(off(i + 1) <= d, i + 1, i)
    return i, d - off(i) + i + 1


class ListGraphs:
    """``C`` graphs on ``n`` nodes as neighbour lists (see the module docstring). Build with
    :meth:`from_edges` or :meth:`from_dense`."""

    def __init__(self, n: int, directed: bool, n_chains: int, pool: int, tie_cap: int):
        self.n, self.directed, self.n_chains = int(n), bool(directed), int(n_chains)
        C = self.n_chains
        self.nb = np.zeros((C, pool), dtype=np.int32)
        self.slot = np.zeros((C, pool), dtype=np.int32)
        self.start = np.zeros((C, n), dtype=np.int64)
        self.cap = np.zeros((C, n), dtype=np.int64)
        self.deg = np.zeros((C, n), dtype=np.int64)
        self.indeg = np.zeros((C, n), dtype=np.int64)
        self.pool_end = np.zeros(C, dtype=np.int64)
        self.ties = np.zeros((C, tie_cap), dtype=np.int64)
        self.n_ties = np.zeros(C, dtype=np.int64)
        self.markA = np.zeros((C, n), dtype=np.int64)
        self.markB = np.zeros((C, n), dtype=np.int64)

    @property
    def n_dyads(self) -> int:
        return self.n * (self.n - 1) // (1 if self.directed else 2)

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_edges(cls, n: int, directed: bool, edges: Sequence[np.ndarray], *, node_cap: int = 8,
                   tie_cap: Optional[int] = None) -> "ListGraphs":
        """From one tie array ``[E_c, 2]`` (node indices) per chain. Ties are stored in dyad-id order (the order
        of the numpy reference's tie list); duplicates and self-loops must have been removed."""
        n = int(n)
        ids, tl, hd, ptr = [], [], [], [0]
        for e in edges:
            e = np.asarray(e, dtype=np.int64).reshape(-1, 2)
            d = dyad_ids(e[:, 0], e[:, 1], n, directed)
            order = np.argsort(d, kind="stable")
            d = d[order]
            t, h = decode_dyads(d, n, directed)
            ids.append(d)
            tl.append(t)
            hd.append(h)
            ptr.append(ptr[-1] + d.size)
        C = len(edges)
        max_e = max(ptr[k + 1] - ptr[k] for k in range(C)) if C else 0
        D = n * (n - 1) // (1 if directed else 2)
        if tie_cap is None:
            tie_cap = int(min(D, max(2 * max_e + 1024, 16)))
        per = 2 * max_e * (1 if directed else 2) + node_cap * n
        pool = int(per + per // 2 + 64)
        g = cls(n, directed, C, pool, max(int(tie_cap), 1))
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)
        K.build_lists(n, bool(directed), cat(tl), cat(hd), cat(ids), np.asarray(ptr, dtype=np.int64), g.nb, g.slot,
                      g.start, g.cap, g.deg, g.indeg, g.pool_end, g.ties, g.n_ties, int(node_cap))
        return g

    @classmethod
    def from_dense(cls, adjacency: np.ndarray, directed: bool) -> "ListGraphs":
        """From adjacency matrices ``[C, n, n]`` (or ``[n, n]``)."""
        a = np.asarray(adjacency)
        a = a[None] if a.ndim == 2 else a
        n = a.shape[-1]
        edges = []
        for c in range(a.shape[0]):
            m = a[c] > 0.5 if directed else np.triu(a[c] > 0.5, 1)
            edges.append(np.argwhere(m))
        return cls.from_edges(n, directed, edges)

    def copy_chains(self, n_chains: int) -> "ListGraphs":
        """``n_chains`` copies of chain 0 (all chains start from the same graph)."""
        g = ListGraphs.__new__(ListGraphs)
        g.n, g.directed, g.n_chains = self.n, self.directed, int(n_chains)
        for name in ("nb", "slot", "start", "cap", "deg", "indeg", "ties", "markA", "markB"):
            setattr(g, name, np.ascontiguousarray(np.repeat(getattr(self, name)[:1], n_chains, axis=0)))
        g.pool_end = np.repeat(self.pool_end[:1], n_chains)
        g.n_ties = np.repeat(self.n_ties[:1], n_chains)
        return g

    def sort_ties(self) -> "ListGraphs":
        """Put the tie lists in dyad-id order, in place (see :func:`ebmlab.ergm.kernels.sort_ties`)."""
        K.sort_ties(self.nb, self.slot, self.start, self.deg, self.ties, self.n_ties, self.n, self.directed)
        return self

    # -- read out ---------------------------------------------------------------------------------------
    def edges(self, c: int) -> np.ndarray:
        """Ties of chain c as an ``[E, 2]`` int64 array of (tail, head), in tie-list order."""
        t, h = decode_dyads(self.ties[c, :self.n_ties[c]], self.n, self.directed)
        return np.stack([t, h], 1)

    @property
    def A(self) -> np.ndarray:
        """Dense float64 adjacency matrices ``[C, n, n]`` (for small graphs only)."""
        out = np.zeros((self.n_chains, self.n, self.n))
        for c in range(self.n_chains):
            K.dense_adjacency(c, self.nb, self.start, self.deg, self.n, out[c])
        return out

    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in ("nb", "slot", "start", "cap", "deg", "indeg", "ties",
                                                      "markA", "markB"))

    # -- growth -------------------------------------------------------------------------------------
    def _grow(self) -> None:
        """Double the pool and the tie list (called when a kernel reports a full array)."""
        C = self.n_chains
        for name, cols in (("nb", self.nb.shape[1]), ("slot", self.slot.shape[1])):
            old = getattr(self, name)
            new = np.zeros((C, 2 * cols + 64), dtype=old.dtype)
            new[:, :cols] = old
            setattr(self, name, new)
        D = self.n_dyads
        if self.ties.shape[1] < D:
            cols = self.ties.shape[1]
            new = np.zeros((C, min(D, 2 * cols + 64)), dtype=np.int64)
            new[:, :cols] = self.ties
            self.ties = new

    # -- kernels ---------------------------------------------------------------------------------------
    def change_matrix(self, ct: "K.CompiledTerms", tails: np.ndarray, heads: np.ndarray, c: int = 0):
        """Change statistics ``X [m, p]`` and tie indicators ``y [m]`` of dyads (tails, heads) of chain c."""
        tails = np.ascontiguousarray(tails, dtype=np.int64)
        heads = np.ascontiguousarray(heads, dtype=np.int64)
        X = np.empty((tails.size, ct.kinds.size))
        y = np.empty(tails.size)
        K.change_matrix(int(c), tails, heads, ct.kinds, ct.ipar, ct.fpar, ct.rpow, ct.node_int, ct.node_float,
                        ct.needs_sp, self.nb, self.start, self.deg, self.indeg, self.markA, self.markB,
                        self.directed, X, y)
        return X, y

    def all_change_matrix(self, ct: "K.CompiledTerms"):
        """Change statistics ``X [D, p]`` and ties ``y [D]`` of every dyad of chain 0, in dyad-id order."""
        D = self.n_dyads
        X = np.empty((D, ct.kinds.size))
        y = np.empty(D)
        K.all_dyads_change_matrix(self.n, self.directed, ct.kinds, ct.ipar, ct.fpar, ct.rpow, ct.node_int,
                                  ct.node_float, ct.needs_sp, ct.needs_b, self.nb, self.start, self.deg, self.indeg,
                                  self.markA, self.markB, X, y)
        return X, y

    def statistics(self, ct: "K.CompiledTerms", empty: np.ndarray) -> np.ndarray:
        """s(y) of every chain ``[C, p]``: ``empty`` = s(empty graph) plus the change statistics of adding the
        ties one at a time (exact for every term; O(sum over ties of the degree work of one change))."""
        out = np.empty((self.n_chains, ct.kinds.size))
        for c in range(self.n_chains):
            e = self.edges(c)
            g = ListGraphs(self.n, self.directed, 1, 1, max(1, e.shape[0]))
            # node lists sized for the final degrees
            deg = np.bincount(e[:, 0], minlength=self.n)
            if not self.directed:
                deg = deg + np.bincount(e[:, 1], minlength=self.n)
            cap = np.maximum(deg, 1).astype(np.int64)
            g.nb = np.zeros((1, int(cap.sum())), dtype=np.int32)
            g.slot = np.zeros_like(g.nb)
            g.cap[0] = cap
            g.start[0] = np.concatenate([[0], np.cumsum(cap)[:-1]])
            g.pool_end[0] = int(cap.sum())
            total = np.zeros(ct.kinds.size)
            K.add_ties(np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1]), self.n, self.directed,
                       ct.kinds, ct.ipar, ct.fpar, ct.rpow, ct.node_int, ct.node_float, ct.needs_sp, g.nb, g.slot,
                       g.start, g.cap, g.deg, g.indeg, g.pool_end, g.ties, g.n_ties, g.markA, g.markB, total)
            out[c] = np.asarray(empty, dtype=np.float64) + total
        return out

    def run(self, ct: "K.CompiledTerms", theta: np.ndarray, *, n_draws: int, burn_in: int, thin: int,
            rng: np.random.Generator, tnt: bool, n_dyads: int, stats: np.ndarray, return_graphs: bool = False,
            block: int = 512, n_jobs: int = 1):
        """Dyad-toggle MH on every chain, drawing the random numbers exactly as the numpy reference does (per block
        of ``block`` proposals: branch, tie pick, log acceptance uniform, uniform dyad). ``stats`` [C, p] holds
        s(y) of the current graphs and is updated in place. Returns (statistics [K, C, p], n_ties [K, C],
        graphs [K, C, n, n] uint8 or None, accepted [C]). ``n_jobs > 1`` spreads the chains over that many numba
        threads (the same result: chains are independent and their random numbers drawn in advance)."""
        C, p = self.n_chains, ct.kinds.size
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        total = burn_in + n_draws * thin
        out_stats = np.empty((n_draws, C, p))
        out_ties = np.empty((n_draws, C), dtype=np.int64)
        out_graphs = (np.empty((n_draws, C, self.n, self.n), dtype=np.uint8) if return_graphs
                      else np.zeros((1, 1, 1, 1), dtype=np.uint8))
        accepted = np.zeros(C)
        delta = np.zeros((C, p))
        kernel = K.mh_block
        if n_jobs > 1 and C > 1:
            K.numba.set_num_threads(min(int(n_jobs), K.numba.config.NUMBA_NUM_THREADS))
            kernel = K.mh_block_parallel
        step = 0
        while step < total:
            nbk = min(block, total - step)
            # drawn in the reference's [step, chain] layout, handed to the kernel chain-major
            u_branch = np.ascontiguousarray(rng.random((nbk, C)).T)
            u_tie = np.ascontiguousarray(rng.random((nbk, C)).T)
            u_acc = np.ascontiguousarray(np.log(rng.random((nbk, C))).T)
            d_rand = np.ascontiguousarray(rng.integers(0, n_dyads, (nbk, C)).T)
            progress = np.zeros(C, dtype=np.int64)
            status = np.zeros(C, dtype=np.int64)
            while True:
                kernel(progress, step, burn_in, thin, n_dyads, self.n, self.directed, tnt,
                       u_branch, u_tie, u_acc, d_rand, theta,
                       ct.kinds, ct.ipar, ct.fpar, ct.rpow, ct.node_int, ct.node_float, ct.needs_sp,
                       self.nb, self.slot, self.start, self.cap, self.deg, self.indeg, self.pool_end,
                       self.ties, self.n_ties, self.markA, self.markB, stats, accepted, out_stats,
                       out_ties, out_graphs, bool(return_graphs), delta, status)
                if not status.any():
                    break
                self._grow()
            step += nbk
        return out_stats, out_ties, (out_graphs if return_graphs else None), accepted
