"""Dyad-toggle Metropolis–Hastings for ERGMs, batched over independent chains.

Target: p_theta(y) ∝ exp(theta . s(y)). One step per chain proposes to toggle one dyad (i, j) and
accepts with probability min(1, exp((1 - 2 y_ij) theta . delta_ij s(y)) q(y'→y) / q(y→y')).

Proposals
---------
``"random"``
    A uniformly chosen dyad; symmetric, q ratio 1.
``"tnt"`` (tie / no tie, statnet's default; Morris, Handcock & Hunter 2008)
    If the graph has ties, with probability 1/2 a uniformly chosen *tie*, otherwise a uniformly chosen
    dyad; the empty graph always proposes a uniform dyad. With E ties and D dyads,
    q(add) = 1/D if E = 0 else 1/(2D), and q(remove) = 1/(2E) + 1/(2D). The ratio for an addition is
    (D + 1)/2 when E = 0 and 1 + D/(E + 1) otherwise; for a removal 2/(D + 1) when E = 1 and
    E/(D + E) otherwise (statnet's ``MH_TNT``). On the full graph every proposal removes a tie.

With ``backend="numba"`` (the default when every term has a kernel) :meth:`ebmlab.ergm.model.BoundERGM.run_chains`
runs the same algorithm, on the same random numbers, in the compiled kernel :func:`ebmlab.ergm.kernels.mh_block`;
this numpy loop is the reference it is tested against.

The same TNT kernel exists for any discrete energy under ebmlab's sampler contract,
:class:`ebmlab.samplers.TieNoTie` (registered as ``"tnt"``; on :class:`ebmlab.energies.ERGMEnergy` it samples
this ERGM). The statnet drivers (simulate, MCMC-MLE, CD, GOF, bridge sampling) use this loop (backend "numpy")
or its compiled twin (backend "numba", the default) because both keep each graph's degrees and tie list up to
date under toggles instead of rebuilding the graph from the dyad vector at every step: on 64 chains this numpy
loop already runs about 3-6 times as many toggles per second as the generic sampler. Both are tested against the exact expectations of the same 5-node models
(tests/test_ergm_sampler.py, tests/test_ergm_energy.py), so they share their stationary law.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .graph_batch import DyadIndex, GraphBatch
from .terms import Term

__all__ = ["MHRun", "run_metropolis_hastings", "PROPOSALS"]

PROPOSALS = ("tnt", "random")

#: graphs with more nodes than this keep the shared-partner matrix cached between toggles
TWO_PATH_CACHE_MIN_NODES = 64


@dataclass
class MHRun:
    """Output of :func:`run_metropolis_hastings`.

    ``statistics[k, c]`` is s(y) of chain c at its k-th recorded draw (time-major), ``graphs`` the
    adjacency matrices (uint8) when requested, ``final`` the batch in its last state.
    """

    statistics: np.ndarray            # [K, C, p]
    n_ties: np.ndarray                # [K, C]
    graphs: Optional[np.ndarray]      # [K, C, n, n] uint8 or None
    acceptance_rate: np.ndarray       # [C]
    n_toggles: int
    seconds: float
    final: GraphBatch = field(repr=False)
    #: "numpy" (this loop) or "numba" (:mod:`ebmlab.ergm.kernels`, ``final`` then a ListGraphs)
    backend: str = "numpy"

    @property
    def toggles_per_second(self) -> float:
        return self.n_toggles / max(self.seconds, 1e-12)


def run_metropolis_hastings(terms: Sequence[Term], dyads: DyadIndex, start: np.ndarray, theta: np.ndarray,
                            *, n_draws: int, burn_in: int, thin: int, rng: np.random.Generator,
                            proposal: str = "tnt", return_graphs: bool = False,
                            block: int = 512) -> MHRun:
    """Run ``C = start.shape[0]`` chains of dyad-toggle Metropolis–Hastings.

    Parameters
    ----------
    terms : sequence of Term
        Model terms (their change statistics drive the acceptance ratio).
    dyads : DyadIndex
    start : ndarray [C, n, n]
        Initial adjacency of every chain.
    theta : ndarray [p]
    n_draws : int
        Draws recorded per chain, after ``burn_in`` steps and then every ``thin`` steps.
    proposal : {"tnt", "random"}
    rng : numpy Generator
    return_graphs : bool
        Also keep the adjacency matrix of every recorded draw.

    Returns
    -------
    MHRun
    """
    theta = np.asarray(theta, dtype=np.float64)
    tnt = proposal == "tnt"
    # the two-path cache costs O(n) scatter work per accepted toggle; below ~64 nodes recomputing the two
    # rows a toggle needs (A[i] @ A) is cheaper
    cache = any(t.needs_two_paths for t in terms) and start.shape[-1] > TWO_PATH_CACHE_MIN_NODES
    g = GraphBatch(start, dyads, track_two_paths=cache, track_ties=tnt)
    C, D = g.n_chains, dyads.n_dyads
    stats = np.stack([t.statistic(g.A) for t in terms], 1) if terms else np.zeros((C, 0))
    ar = g.all_chains
    total = burn_in + n_draws * thin
    out_stats = np.empty((n_draws, C, len(terms)))
    out_ties = np.empty((n_draws, C), dtype=np.int64)
    out_graphs = np.empty((n_draws, C, g.n_nodes, g.n_nodes), dtype=np.uint8) if return_graphs else None
    accepted = np.zeros(C)
    tail, head = dyads.tail, dyads.head
    n = g.n_nodes
    if tnt:
        # log q(y'->y)/q(y->y') as a function of the current number of ties E (see the module docstring)
        E_all = np.arange(D + 1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_q_add = np.log1p(D / (E_all + 1.0))
            log_q_remove = np.log(E_all / (D + E_all))
        log_q_add[0] = math.log(0.5 * D + 0.5)
        if D >= 1:
            log_q_remove[1] = -math.log(0.5 * D + 0.5)
        cap = g.tie_list.shape[1]
        tie_flat = g.tie_list.reshape(-1)
    a_flat = g.A.reshape(-1)
    ar_cap = ar * (cap if tnt else 0)
    ar_nn = ar * n * n
    t0 = time.perf_counter()
    step = 0
    k = 0
    while step < total:
        nb = min(block, total - step)
        u_branch = rng.random((nb, C))
        u_tie = rng.random((nb, C))
        u_acc = np.log(rng.random((nb, C)))
        d_rand = rng.integers(0, D, (nb, C))
        for b in range(nb):
            if tnt:
                E = g.n_ties
                pick = (u_tie[b] * E).astype(np.int64)
                np.minimum(pick, np.maximum(E - 1, 0), out=pick)
                d = np.where((u_branch[b] < 0.5) & (E > 0), tie_flat[ar_cap + pick], d_rand[b])
            else:
                d = d_rand[b]
            i, j = tail[d], head[d]
            y = a_flat[ar_nn + i * n + j]
            sgn = 1.0 - 2.0 * y
            delta = np.stack([t.change(g, ar, i, j) for t in terms], 1)
            delta *= sgn[:, None]
            log_r = delta @ theta
            if tnt:
                log_r += np.where(y < 0.5, log_q_add[E], log_q_remove[E])
            idx = np.flatnonzero(u_acc[b] < log_r)
            if idx.size:
                g.toggle(idx, d[idx])
                stats[idx] += delta[idx]
                accepted[idx] += 1
            step += 1
            if step > burn_in and (step - burn_in) % thin == 0:
                out_stats[k] = stats
                out_ties[k] = g.n_ties
                if out_graphs is not None:
                    out_graphs[k] = g.A.astype(np.uint8)
                k += 1
    seconds = time.perf_counter() - t0
    return MHRun(out_stats, out_ties, out_graphs, accepted / max(total, 1), total * C, seconds, g)
