"""Compiled (numba) kernels for the ERGM hot paths: change statistics of every term, the dyad-toggle
Metropolis–Hastings loop over a block of proposals (TNT or uniform), and the dyad-wise change-statistic matrix
of the MPLE.

They run on :class:`ebmlab.ergm.sparse.ListGraphs` (per-node neighbour lists in one pool, plus the tie list of
the tie/no-tie proposal), so a toggle costs O(degree) and memory grows with the number of ties, not with n^2.
The numpy code (:mod:`ebmlab.ergm.terms`, :mod:`ebmlab.ergm.sampler`) is the reference these kernels are
tested against (tests/test_ergm_kernels.py): the MH kernel consumes the very same random numbers in the same
order, so for one seed it produces the same chains (same accepted toggles, same final graphs; statistics equal
to 1e-12 relative, the only difference being the order of floating-point sums).

Change statistics (s(y_ij^+) - s(y_ij^-), statnet's definitions; sp = shared partners, all counts taken in the
graph without the tie (i, j), r = 1 - e^{-alpha}; Hunter & Handcock 2006, "Inference in curved exponential
family models for networks", JCGS 15(3), eq. 25 for gwesp):

- edges: 1; triangle: sp_ij; kstar(k): C(d_i, k-1) + C(d_j, k-1);
- gwesp: e^alpha (1 - r^{sp_ij}) + sum_{k in N(i) & N(j)} (r^{sp_ik} + r^{sp_jk});
- gwdsp: sum_{k in N(j), k != i} r^{sp_ik} + sum_{k in N(i), k != j} r^{sp_jk};
- gwdegree: r^{d_i} + r^{d_j}; degree(k): [d_i + 1 = k] - [d_i = k] + [d_j + 1 = k] - [d_j = k];
- isolates: -([d_i = 0] + [d_j = 0]) (total degree when directed); mutual: y_ji;
- nodematch: [a_i = a_j]; nodecov: x_i + x_j.

Shared partners are counted with two marker arrays (neighbours of i and of j): sp_ij costs O(d_i + d_j), gwesp
and gwdsp O(sum of the degrees of the neighbours).

Compilation happens at the first call in a process (numba's on-disk cache makes later processes fast);
:func:`compile_kernels` triggers it explicitly and returns the seconds it took, which the benchmark reports
separately from its timings.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["AVAILABLE", "KIND", "CompiledTerms", "compile_terms", "compile_kernels", "compile_report",
           "unsupported_terms"]

try:  # numba is a dependency of ebmlab; the guard only keeps the numpy reference importable without it
    import numba
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only without numba
    AVAILABLE = False
    numba = None

    def njit(*args, **kwargs):
        def wrap(f):
            return f
        return wrap if not (args and callable(args[0])) else args[0]

#: term class name -> kernel code
KIND = {"Edges": 0, "Triangle": 1, "KStar": 2, "GWESP": 3, "GWDSP": 4, "GWDegree": 5, "Degree": 6,
        "Isolates": 7, "Mutual": 8, "NodeMatch": 9, "NodeCov": 10}
_NEEDS_SP = (1, 3, 4)

_COMPILE: Dict[str, Any] = {"seconds": None}


class CompiledTerms:
    """The terms of a formula as flat arrays for the kernels.

    ``kinds[t]`` the kernel code, ``ipar[t]`` an integer parameter (k of kstar/degree), ``fpar[t]`` e^alpha of
    the gw* terms, ``rpow[t]`` the table r^k of the term (the same table the numpy term uses), ``node_int[t]``
    attribute codes (nodematch), ``node_float[t]`` numeric attribute (nodecov).
    """

    def __init__(self, terms: Sequence[Any], n_nodes: int):
        T = len(terms)
        self.kinds = np.array([KIND[type(t).__name__] for t in terms], dtype=np.int64)
        self.ipar = np.zeros(T, dtype=np.int64)
        self.fpar = np.zeros(T, dtype=np.float64)
        L = max([len(t.rpow) for t in terms if hasattr(t, "rpow")] + [1])
        self.rpow = np.zeros((T, L), dtype=np.float64)
        need_int = any(type(t).__name__ == "NodeMatch" for t in terms)
        need_float = any(type(t).__name__ == "NodeCov" for t in terms)
        self.node_int = np.zeros((T, n_nodes if need_int else 1), dtype=np.int64)
        self.node_float = np.zeros((T, n_nodes if need_float else 1), dtype=np.float64)
        for k, t in enumerate(terms):
            name = type(t).__name__
            if name in ("KStar", "Degree"):
                self.ipar[k] = t.k
            if hasattr(t, "rpow"):
                self.fpar[k] = t.scale
                self.rpow[k, :len(t.rpow)] = t.rpow
            if name == "NodeMatch":
                self.node_int[k] = t.codes
            if name == "NodeCov":
                self.node_float[k] = t.x
        self.needs_sp = bool(np.isin(self.kinds, _NEEDS_SP).any())
        #: gwesp/gwdsp also need the neighbours of j marked
        self.needs_b = bool(np.isin(self.kinds, (3, 4)).any())


def unsupported_terms(terms: Sequence[Any]) -> List[str]:
    """Labels of the terms that have no compiled kernel (empty when the whole formula compiles)."""
    return [t.label for t in terms if type(t).__name__ not in KIND]


def compile_terms(terms: Sequence[Any], n_nodes: int) -> CompiledTerms:
    bad = unsupported_terms(terms)
    if bad:
        raise ValueError(f"no compiled kernel for term(s) {', '.join(bad)}")
    return CompiledTerms(terms, n_nodes)


# ------------------------------------------------------------------------------------------------------
# dyad <-> (i, j)
# ------------------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _decode(d, n, directed):
    """Endpoints of dyad d (the order of :class:`ebmlab.ergm.graph_batch.DyadIndex`)."""
    if directed:
        i = d // (n - 1)
        r = d - i * (n - 1)
        j = r if r < i else r + 1
        return i, j
    # undirected: row i holds the n - 1 - i pairs (i, j > i); offset(i) = i (2n - i - 1) / 2
    b = 2.0 * n - 1.0
    i = np.int64((b - np.sqrt(b * b - 8.0 * d)) / 2.0)
    if i < 0:
        i = 0
    while i > 0 and i * (2 * n - i - 1) // 2 > d:
        i -= 1
    while (i + 1) * (2 * n - i - 2) // 2 <= d:
        i += 1
    j = d - i * (2 * n - i - 1) // 2 + i + 1
    return i, j


@njit(cache=True, inline="always")
def _encode(i, j, n, directed):
    if directed:
        return i * (n - 1) + (j if j < i else j - 1)
    if i > j:
        i, j = j, i
    return i * (2 * n - i - 1) // 2 + j - i - 1


# ------------------------------------------------------------------------------------------------------
# graph state helpers (chain c of a ListGraphs)
# ------------------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _find(nb, start, deg, c, i, j):
    """Position of j in the neighbour list of i (-1 when absent)."""
    s = start[c, i]
    for t in range(deg[c, i]):
        if nb[c, s + t] == j:
            return t
    return -1


@njit(cache=True, inline="always")
def _has_tie(nb, start, deg, c, i, j, directed):
    if directed or deg[c, i] <= deg[c, j]:
        return 1.0 if _find(nb, start, deg, c, i, j) >= 0 else 0.0
    return 1.0 if _find(nb, start, deg, c, j, i) >= 0 else 0.0


@njit(cache=True, inline="always")
def _comb(d, m):
    """C(d, m) as a float (0 when m > d)."""
    if m < 0 or d < m:
        return 0.0
    out = 1.0
    for t in range(m):
        out = out * (d - t) / (t + 1)
    return out


@njit(cache=True, inline="always")
def _count_marked(nb, start, deg, c, k, mark):
    s = start[c, k]
    total = 0
    for t in range(deg[c, k]):
        total += mark[c, nb[c, s + t]]
    return total


@njit(cache=True, inline="always")
def _changes(c, i, j, y, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
             nb, start, deg, indeg, markA, markB, directed, out, row):
    """Change statistics s(y_ij^+) - s(y_ij^-) of every term into ``out[row]`` (see the module docstring)."""
    si = start[c, i]
    sj = start[c, j]
    sp = 0
    if needs_sp:
        for t in range(deg[c, i]):
            markA[c, nb[c, si + t]] = 1
        for t in range(deg[c, j]):
            k = nb[c, sj + t]
            markB[c, k] = 1
            sp += markA[c, k]
    _changes_marked(c, i, j, y, sp, kinds, ipar, fpar, rpow, node_int, node_float,
                    nb, start, deg, indeg, markA, markB, directed, out, row)
    if needs_sp:
        for t in range(deg[c, i]):
            markA[c, nb[c, si + t]] = 0
        for t in range(deg[c, j]):
            markB[c, nb[c, sj + t]] = 0


@njit(cache=True, inline="always")
def _changes_marked(c, i, j, y, sp, kinds, ipar, fpar, rpow, node_int, node_float,
                    nb, start, deg, indeg, markA, markB, directed, out, row):
    """:func:`_changes` with the neighbours of i marked in ``markA``, those of j in ``markB`` (when a term needs
    shared partners) and ``sp`` = |N(i) & N(j)|."""
    si = start[c, i]
    sj = start[c, j]
    di = deg[c, i]
    dj = deg[c, j]
    yi = np.int64(y)
    if directed:
        dmi = deg[c, i] + indeg[c, i] - yi
        dmj = deg[c, j] + indeg[c, j] - yi
    else:
        dmi = di - yi
        dmj = dj - yi
    for tt in range(kinds.shape[0]):
        kind = kinds[tt]
        v = 0.0
        if kind == 0:
            v = 1.0
        elif kind == 1:
            v = float(sp)
        elif kind == 2:
            v = _comb(dmi, ipar[tt] - 1) + _comb(dmj, ipar[tt] - 1)
        elif kind == 3:
            acc = 0.0
            for t in range(dj):
                k = nb[c, sj + t]
                if markA[c, k] == 1:
                    a = _count_marked(nb, start, deg, c, k, markA) - yi
                    b = _count_marked(nb, start, deg, c, k, markB) - yi
                    acc += rpow[tt, a] + rpow[tt, b]
            v = fpar[tt] * (1.0 - rpow[tt, sp]) + acc
        elif kind == 4:
            acc = 0.0
            for t in range(dj):
                k = nb[c, sj + t]
                if k != i:
                    acc += rpow[tt, _count_marked(nb, start, deg, c, k, markA) - yi]
            for t in range(di):
                k = nb[c, si + t]
                if k != j:
                    acc += rpow[tt, _count_marked(nb, start, deg, c, k, markB) - yi]
            v = acc
        elif kind == 5:
            v = rpow[tt, dmi] + rpow[tt, dmj]
        elif kind == 6:
            kk = ipar[tt]
            v = 0.0
            if dmi + 1 == kk:
                v += 1.0
            if dmi == kk:
                v -= 1.0
            if dmj + 1 == kk:
                v += 1.0
            if dmj == kk:
                v -= 1.0
        elif kind == 7:
            v = 0.0
            if dmi == 0:
                v -= 1.0
            if dmj == 0:
                v -= 1.0
        elif kind == 8:
            v = 1.0 if _find(nb, start, deg, c, j, i) >= 0 else 0.0
        elif kind == 9:
            v = 1.0 if node_int[tt, i] == node_int[tt, j] else 0.0
        elif kind == 10:
            v = node_float[tt, i] + node_float[tt, j]
        out[row, tt] = v


@njit(cache=True)
def _room(nb, slot, start, cap, deg, pool_end, c, i):
    """Make room for one more neighbour of i (moving its list to the pool's end); False when the pool is full."""
    if deg[c, i] < cap[c, i]:
        return True
    new_cap = max(8, 2 * cap[c, i])
    if pool_end[c] + new_cap > nb.shape[1]:
        return False
    s, e = start[c, i], pool_end[c]
    for t in range(deg[c, i]):
        nb[c, e + t] = nb[c, s + t]
        slot[c, e + t] = slot[c, s + t]
    start[c, i] = e
    cap[c, i] = new_cap
    pool_end[c] = e + new_cap
    return True


@njit(cache=True)
def _set_slot(nb, slot, start, deg, c, a, b, value):
    p = _find(nb, start, deg, c, a, b)
    slot[c, start[c, a] + p] = value


@njit(cache=True)
def _remove_entry(nb, slot, start, deg, c, a, b):
    """Remove b from a's list (swap with the last entry)."""
    s = start[c, a]
    p = _find(nb, start, deg, c, a, b)
    last = deg[c, a] - 1
    nb[c, s + p] = nb[c, s + last]
    slot[c, s + p] = slot[c, s + last]
    deg[c, a] = last


@njit(cache=True, inline="always")
def _toggle(c, i, j, d, y, nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, n, directed):
    """Toggle tie (i, j) (dyad d, current value y) of chain c. Returns False (and changes nothing) when an
    array is full. The tie list follows the numpy reference: an added tie is appended; a removed tie's slot
    is filled with the last tie."""
    if y < 0.5:
        if n_ties[c] >= ties.shape[1]:
            return False
        if not _room(nb, slot, start, cap, deg, pool_end, c, i):
            return False
        if not directed and not _room(nb, slot, start, cap, deg, pool_end, c, j):
            return False
        e = n_ties[c]
        ties[c, e] = d
        n_ties[c] = e + 1
        p = start[c, i] + deg[c, i]
        nb[c, p] = j
        slot[c, p] = e
        deg[c, i] += 1
        if directed:
            indeg[c, j] += 1
        else:
            p = start[c, j] + deg[c, j]
            nb[c, p] = i
            slot[c, p] = e
            deg[c, j] += 1
        return True
    pos = slot[c, start[c, i] + _find(nb, start, deg, c, i, j)]
    last = n_ties[c] - 1
    moved = ties[c, last]
    ties[c, pos] = moved
    n_ties[c] = last
    if moved != d:
        a, b = _decode(moved, n, directed)
        _set_slot(nb, slot, start, deg, c, a, b, pos)
        if not directed:
            _set_slot(nb, slot, start, deg, c, b, a, pos)
    _remove_entry(nb, slot, start, deg, c, i, j)
    if directed:
        indeg[c, j] -= 1
    else:
        _remove_entry(nb, slot, start, deg, c, j, i)
    return True


@njit(cache=True)
def _dense_into(out, c, nb, start, deg, n, directed):
    for i in range(n):
        for j in range(n):
            out[i, j] = 0
    for i in range(n):
        s = start[c, i]
        for t in range(deg[c, i]):
            out[i, nb[c, s + t]] = 1


@njit(cache=True)
def _mh_chain(c, progress, step_base, burn_in, thin, n_dyads, n, directed, tnt,
              u_branch, u_tie, u_acc, d_rand, theta,
              kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
              nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB,
              stats, accepted, out_stats, out_ties, out_graphs, record_graphs, delta):
    """Proposals ``progress[c] ..`` of the block for chain c; returns 1 when an array is full (see mh_block)."""
    nbk = u_branch.shape[1]
    p = theta.shape[0]
    D = float(n_dyads)
    b = progress[c]
    status = 0
    generic = False                 # a term other than edges, triangle, gwesp, nodematch, nodecov
    for t in range(p):
        kind = kinds[t]
        if kind != 0 and kind != 1 and kind != 3 and kind != 9 and kind != 10:
            generic = True
    while b < nbk:
        E = n_ties[c]
        if tnt and u_branch[c, b] < 0.5 and E > 0:
            pick = np.int64(u_tie[c, b] * E)
            if pick > E - 1:
                pick = E - 1
            d = ties[c, pick]
        else:
            d = d_rand[c, b]
        i, j = _decode(d, n, directed)
        y = _has_tie(nb, start, deg, c, i, j, directed)
        if generic:
            _changes(c, i, j, y, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
                     nb, start, deg, indeg, markA, markB, directed, delta, c)
        else:
            # edges, triangle, gwesp, nodematch, nodecov written here directly (the general routine's call costs
            # ~0.1 us per proposal); the same formulas as _changes_marked
            si = start[c, i]
            sj = start[c, j]
            sp = 0
            if needs_sp:
                for t in range(deg[c, i]):
                    markA[c, nb[c, si + t]] = 1
                for t in range(deg[c, j]):
                    k = nb[c, sj + t]
                    markB[c, k] = 1
                    sp += markA[c, k]
            yi = np.int64(y)
            for tt in range(p):
                kind = kinds[tt]
                if kind == 0:
                    delta[c, tt] = 1.0
                elif kind == 1:
                    delta[c, tt] = float(sp)
                elif kind == 3:
                    acc = 0.0
                    if sp > 0:
                        for t in range(deg[c, j]):
                            k = nb[c, sj + t]
                            if markA[c, k] == 1:
                                a = _count_marked(nb, start, deg, c, k, markA) - yi
                                bb = _count_marked(nb, start, deg, c, k, markB) - yi
                                acc += rpow[tt, a] + rpow[tt, bb]
                    delta[c, tt] = fpar[tt] * (1.0 - rpow[tt, sp]) + acc
                elif kind == 9:
                    delta[c, tt] = 1.0 if node_int[tt, i] == node_int[tt, j] else 0.0
                else:
                    delta[c, tt] = node_float[tt, i] + node_float[tt, j]
            if needs_sp:
                for t in range(deg[c, i]):
                    markA[c, nb[c, si + t]] = 0
                for t in range(deg[c, j]):
                    markB[c, nb[c, sj + t]] = 0
        sgn = 1.0 - 2.0 * y
        log_r = 0.0
        for t in range(p):
            delta[c, t] *= sgn
            log_r += delta[c, t] * theta[t]
        if tnt:
            Ef = float(E)
            if y < 0.5:
                log_r += np.log(0.5 * D + 0.5) if E == 0 else np.log1p(D / (Ef + 1.0))
            else:
                log_r += -np.log(0.5 * D + 0.5) if E == 1 else np.log(Ef / (D + Ef))
        if u_acc[c, b] < log_r:
            if not _toggle(c, i, j, d, y, nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, n,
                           directed):
                status = 1
                break
            for t in range(p):
                stats[c, t] += delta[c, t]
            accepted[c] += 1
        s = step_base + b + 1
        if s > burn_in and (s - burn_in) % thin == 0:
            k = (s - burn_in) // thin - 1
            for t in range(p):
                out_stats[k, c, t] = stats[c, t]
            out_ties[k, c] = n_ties[c]
            if record_graphs:
                _dense_into(out_graphs[k, c], c, nb, start, deg, n, directed)
        b += 1
    progress[c] = b
    return status


@njit(cache=True)
def mh_block(progress, step_base, burn_in, thin, n_dyads, n, directed, tnt,
             u_branch, u_tie, u_acc, d_rand, theta,
             kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
             nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB,
             stats, accepted, out_stats, out_ties, out_graphs, record_graphs, delta, status):
    """Run proposals ``progress[c] .. nb - 1`` of the block for every chain c (the same random numbers, in the
    same roles, as :func:`ebmlab.ergm.sampler.run_metropolis_hastings`; here chain-major, ``u_*[c, b]``).
    ``status[c]`` becomes 1 when chain c stopped because an array is full (``progress`` then says where it
    stopped; the caller grows the arrays and calls again)."""
    for c in range(u_branch.shape[0]):
        status[c] = _mh_chain(c, progress, step_base, burn_in, thin, n_dyads, n, directed, tnt,
                              u_branch, u_tie, u_acc, d_rand, theta, kinds, ipar, fpar, rpow, node_int, node_float,
                              needs_sp, nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB,
                              stats, accepted, out_stats, out_ties, out_graphs, record_graphs, delta)


@njit(cache=True, parallel=True)
def mh_block_parallel(progress, step_base, burn_in, thin, n_dyads, n, directed, tnt,
                      u_branch, u_tie, u_acc, d_rand, theta,
                      kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
                      nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB,
                      stats, accepted, out_stats, out_ties, out_graphs, record_graphs, delta, status):
    """:func:`mh_block` with the chains spread over numba's threads (chains are independent and every chain reads
    only its own random numbers and writes only its own rows, so the result does not depend on the threads)."""
    for c in numba.prange(u_branch.shape[0]):
        status[c] = _mh_chain(c, progress, step_base, burn_in, thin, n_dyads, n, directed, tnt,
                              u_branch, u_tie, u_acc, d_rand, theta, kinds, ipar, fpar, rpow, node_int, node_float,
                              needs_sp, nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB,
                              stats, accepted, out_stats, out_ties, out_graphs, record_graphs, delta)


@njit(cache=True)
def change_matrix(c, tails, heads, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
                  nb, start, deg, indeg, markA, markB, directed, X, y):
    """Change statistics ``X[d]`` and tie indicators ``y[d]`` of the dyads (tails[d], heads[d]) of chain c (the
    covariates and response of the MPLE's logistic regression)."""
    for d in range(tails.shape[0]):
        i, j = tails[d], heads[d]
        yy = _has_tie(nb, start, deg, c, i, j, directed)
        _changes(c, i, j, yy, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
                 nb, start, deg, indeg, markA, markB, directed, X, d)
        y[d] = yy


@njit(cache=True)
def all_dyads_change_matrix(n, directed, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp, needs_b,
                            nb, start, deg, indeg, markA, markB, X, y):
    """Change statistics ``X[d]`` and ties ``y[d]`` of every dyad of chain 0, in dyad order (the MPLE's full
    design). The neighbours of i are marked once per row i; gwesp reads the shared partners of every tie from a
    table computed once (O(sum of squared degrees)), so a dyad costs O(d_j) plus gwdsp's work."""
    has_gwdsp = False
    has_gwesp = False
    generic = False                 # a term other than edges, triangle, gwesp, nodematch, nodecov
    fast = kinds.copy()
    for t in range(kinds.shape[0]):
        if kinds[t] == 4:
            has_gwdsp = True
        if kinds[t] == 3:
            has_gwesp = True
            fast[t] = -1            # computed below from the shared-partner table
        if kinds[t] != 0 and kinds[t] != 1 and kinds[t] != 3 and kinds[t] != 9 and kinds[t] != 10:
            generic = True
    sp_pool = np.zeros(nb.shape[1], dtype=np.int64)
    pos = np.zeros(n, dtype=np.int64)
    if has_gwesp:
        for a in range(n):
            sa = start[0, a]
            for t in range(deg[0, a]):
                markA[0, nb[0, sa + t]] = 1
            for t in range(deg[0, a]):
                sp_pool[sa + t] = _count_marked(nb, start, deg, 0, nb[0, sa + t], markA)
            for t in range(deg[0, a]):
                markA[0, nb[0, sa + t]] = 0
    d = 0
    for i in range(n):
        si = start[0, i]
        for t in range(deg[0, i]):
            markA[0, nb[0, si + t]] = 1
            pos[nb[0, si + t]] = si + t
        j0 = 0 if directed else i + 1
        for j in range(j0, n):
            if j == i:
                continue
            yy = float(markA[0, j])
            sj = start[0, j]
            sp = 0
            if needs_sp:
                for t in range(deg[0, j]):
                    sp += markA[0, nb[0, sj + t]]
            if has_gwdsp:
                for t in range(deg[0, j]):
                    markB[0, nb[0, sj + t]] = 1
            if generic:
                _changes_marked(0, i, j, yy, sp, fast, ipar, fpar, rpow, node_int, node_float,
                                nb, start, deg, indeg, markA, markB, directed, X, d)
            else:  # the common terms written here directly (the general routine costs ~0.1 us per dyad)
                for tt in range(kinds.shape[0]):
                    kind = kinds[tt]
                    if kind == 0:
                        X[d, tt] = 1.0
                    elif kind == 1:
                        X[d, tt] = float(sp)
                    elif kind == 9:
                        X[d, tt] = 1.0 if node_int[tt, i] == node_int[tt, j] else 0.0
                    elif kind == 10:
                        X[d, tt] = node_float[tt, i] + node_float[tt, j]
            if has_gwesp:
                yi = np.int64(yy)
                for tt in range(kinds.shape[0]):
                    if kinds[tt] == 3:
                        acc = 0.0
                        if sp > 0:
                            for t in range(deg[0, j]):
                                k = nb[0, sj + t]
                                if markA[0, k] == 1:
                                    acc += rpow[tt, sp_pool[pos[k]] - yi] + rpow[tt, sp_pool[sj + t] - yi]
                        X[d, tt] = fpar[tt] * (1.0 - rpow[tt, sp]) + acc
            if has_gwdsp:
                for t in range(deg[0, j]):
                    markB[0, nb[0, sj + t]] = 0
            y[d] = yy
            d += 1
        for t in range(deg[0, i]):
            markA[0, nb[0, si + t]] = 0


@njit(cache=True)
def build_lists(n, directed, tails, heads, dyad_ids, chain_ptr, nb, slot, start, cap, deg, indeg, pool_end,
                ties, n_ties, node_cap):
    """Fill the neighbour lists and tie lists of every chain from its ties (dyad-id order within a chain)."""
    C = chain_ptr.shape[0] - 1
    for c in range(C):
        e0, e1 = chain_ptr[c], chain_ptr[c + 1]
        for i in range(n):
            deg[c, i] = 0
            indeg[c, i] = 0
        for e in range(e0, e1):
            deg[c, tails[e]] += 1
            if directed:
                indeg[c, heads[e]] += 1
            else:
                deg[c, heads[e]] += 1
        off = 0
        for i in range(n):
            k = deg[c, i] * 2 + node_cap
            if k > n - 1:
                k = n - 1
            if k < 1:
                k = 1
            start[c, i] = off
            cap[c, i] = k
            off += k
            deg[c, i] = 0
        pool_end[c] = off
        for e in range(e0, e1):
            a, b = tails[e], heads[e]
            s = e - e0
            ties[c, s] = dyad_ids[e]
            p = start[c, a] + deg[c, a]
            nb[c, p] = b
            slot[c, p] = s
            deg[c, a] += 1
            if not directed:
                p = start[c, b] + deg[c, b]
                nb[c, p] = a
                slot[c, p] = s
                deg[c, b] += 1
        n_ties[c] = e1 - e0


@njit(cache=True)
def dense_adjacency(c, nb, start, deg, n, out):
    """The 0/1 adjacency of chain c into ``out[n, n]`` (float64)."""
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
    for i in range(n):
        s = start[c, i]
        for t in range(deg[c, i]):
            out[i, nb[c, s + t]] = 1.0


def compile_kernels() -> float:
    """Compile (or load from numba's cache) every kernel on a 4-node example; returns the seconds it took the
    first time in this process (0.0 on later calls). Raises RuntimeError without numba."""
    if not AVAILABLE:
        raise RuntimeError("numba is not installed: the compiled ERGM kernels are unavailable")
    if _COMPILE["seconds"] is not None:
        return 0.0
    from .sparse import ListGraphs

    t0 = time.perf_counter()
    for directed in (False, True):
        g = ListGraphs.from_edges(4, directed, [np.array([[0, 1], [1, 2]])])
        ct = CompiledTerms([], 4)
        ct.kinds = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] if not directed else [0, 7, 8, 9, 10],
                            dtype=np.int64)
        T = ct.kinds.size
        ct.ipar = np.full(T, 2, dtype=np.int64)
        ct.fpar = np.ones(T)
        ct.rpow = np.full((T, 8), 0.5)
        ct.node_int = np.zeros((T, 4), dtype=np.int64)
        ct.node_float = np.zeros((T, 4))
        ct.needs_sp = ct.needs_b = not directed
        g.change_matrix(ct, np.array([0, 1]), np.array([2, 3]))
        g.all_change_matrix(ct)
        g.sort_ties()
        g.statistics(ct, np.zeros(T))
        rng = np.random.default_rng(0)
        g.run(ct, np.zeros(T), n_draws=1, burn_in=2, thin=1, rng=rng, tnt=True, n_dyads=6 if not directed else 12,
              stats=np.zeros((1, T)), return_graphs=True)
    factorize(np.array([0.5, -0.0, 0.5, 2.0]))
    integer_codes(np.array([0.0, 2.0]), 10)
    _COMPILE["seconds"] = time.perf_counter() - t0
    return _COMPILE["seconds"]


def compile_report() -> Dict[str, Optional[float]]:
    """``{"seconds": compile/cache-load time of the first use in this process, or None if not yet used}``."""
    return dict(_COMPILE)


@njit(cache=True)
def add_ties(tails, heads, n, directed, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
             nb, slot, start, cap, deg, indeg, pool_end, ties, n_ties, markA, markB, total):
    """Add the ties (tails[e], heads[e]) one at a time to the empty chain 0, summing their change statistics
    into ``total``: s(y) - s(empty) (the lists must have room for the final degrees)."""
    p = kinds.shape[0]
    delta = np.zeros((1, p))
    for e in range(tails.shape[0]):
        i, j = tails[e], heads[e]
        _changes(0, i, j, 0.0, kinds, ipar, fpar, rpow, node_int, node_float, needs_sp,
                 nb, start, deg, indeg, markA, markB, directed, delta, 0)
        for t in range(p):
            total[t] += delta[0, t]
        _toggle(0, i, j, _encode(i, j, n, directed), 0.0, nb, slot, start, cap, deg, indeg, pool_end, ties,
                n_ties, n, directed)


@njit(cache=True)
def sort_ties(nb, slot, start, deg, ties, n_ties, n, directed):
    """Put every chain's tie list in dyad-id order (the order in which the numpy reference rebuilds it from an
    adjacency matrix) and update the pool's slots."""
    C = ties.shape[0]
    for c in range(C):
        E = n_ties[c]
        ties[c, :E] = np.sort(ties[c, :E])
        for e in range(E):
            a, b = _decode(ties[c, e], n, directed)
            _set_slot(nb, slot, start, deg, c, a, b, e)
            if not directed:
                _set_slot(nb, slot, start, deg, c, b, a, e)


@njit(cache=True)
def _factorize(values, table_bits):
    """Codes of the distinct float64 values (by bit pattern, -0.0 folded into 0.0) in order of appearance."""
    size = 1 << table_bits
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    uniq = np.empty(values.shape[0], dtype=np.float64)
    codes = np.empty(values.shape[0], dtype=np.int64)
    bits = values.view(np.uint64)
    m = 0
    for t in range(values.shape[0]):
        v = values[t]
        if v == 0.0:
            v = 0.0
            key = np.uint64(0)
        else:
            key = bits[t]
        h = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - table_bits)) & mask
        while True:
            slot = table[h]
            if slot < 0:
                table[h] = m
                uniq[m] = v
                codes[t] = m
                m += 1
                break
            if uniq[slot] == v:
                codes[t] = slot
                break
            h = (h + 1) & mask
    return codes, uniq[:m].copy()


def factorize(values: np.ndarray):
    """``(codes, uniques)`` with ``uniques`` sorted and ``uniques[codes] == values`` (a hash table: O(n), where
    ``np.unique(..., return_inverse=True)`` sorts). NaN is not allowed."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    bits = max(4, int(2 * v.size).bit_length())
    codes, uniq = _factorize(v, bits)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[codes], uniq[order]


@njit(cache=True)
def integer_codes(values, max_span):
    """``(codes, size)`` = (values - min, max - min + 1) when every value is an integer and the span is at most
    ``max_span``; ``size = -1`` otherwise (one pass, no sort)."""
    n = values.shape[0]
    codes = np.empty(n, dtype=np.int64)
    if n == 0:
        return codes, 1
    lo = values[0]
    hi = values[0]
    for t in range(n):
        v = values[t]
        if v != np.floor(v):
            return codes, -1
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if hi - lo > max_span:
        return codes, -1
    for t in range(n):
        codes[t] = np.int64(values[t] - lo)
    return codes, np.int64(hi - lo) + 1
