"""ERGM model terms: sufficient statistics s(y) and change statistics for one dyad toggle.

An ERGM is p_theta(y) = exp(theta . s(y)) / Z(theta) over simple graphs y on a fixed node set
(Frank & Strauss 1986; Wasserman & Pattison 1996; Hunter & Handcock 2006 for the geometrically
weighted terms). Every term provides

- ``statistic(A)``: s(y) for a batch of adjacency matrices ``A[B, n, n]``;
- ``change(g, c, i, j)``: the change statistic ``delta_ij s(y) = s(y_ij^+) - s(y_ij^-)`` of dyad
  (i, j) in graph ``c`` of a :class:`GraphBatch`, where ``y_ij^+`` / ``y_ij^-`` are the graph with the tie
  (i, j) forced present / absent. It is vectorised over toggles; the change of toggling dyad (i, j)
  is ``(1 - 2 y_ij) delta_ij s(y)``.

Definitions follow statnet's ``ergm`` package exactly (undirected unless stated; r = 1 - e^{-alpha}):

=================  ==============================================================  ==================
term               s(y)                                                            directed
=================  ==============================================================  ==================
edges              number of ties                                                  yes
triangle           number of triangles                                             no
kstar(k)           sum_i C(d_i, k)                                                 no
gwesp(alpha)       e^alpha sum_k (1 - r^k) ESP_k  (ESP_k: ties with k shared part.) no
gwdsp(alpha)       e^alpha sum_k (1 - r^k) DSP_k  (DSP_k: dyads with k shared p.)   no
gwdegree(alpha)    e^alpha sum_k (1 - r^k) D_k    (D_k: nodes of degree k)          no
degree(k, ...)     number of nodes of degree k (one statistic per k)               no
isolates           number of nodes with no ties (in or out)                        yes
mutual             number of reciprocated pairs i <-> j                            only
nodematch("a")     ties whose endpoints share the value of attribute a             yes
nodecov("a")       sum over ties (i, j) of x_i + x_j for numeric attribute a       yes
=================  ==============================================================  ==================

The gw* terms are statnet's fixed-decay forms (``gwesp(0.5)`` = ``gwesp(0.5, fixed=TRUE)``); the curved
forms (``fixed=FALSE``) and their ``cutoff=`` argument, which only applies to them, raise a ConfigError.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from scipy.special import comb

from .._core.errors import ConfigError
from .._core.registry import Registry
from .formula import TermSpec
from .graph_batch import GraphBatch
from .network import Network

__all__ = ["Term", "TERMS", "build_terms", "DIRECTED_TERMS"]

TERMS = Registry("ERGM term")

#: Terms available for directed graphs.
DIRECTED_TERMS = ("edges", "isolates", "mutual", "nodecov", "nodematch")


class Term:
    """Base class of ERGM terms; see the module docstring for the statistics."""

    #: statnet-style coefficient label
    label: str = ""
    #: uses two-path counts S = A @ A (cached in the GraphBatch for large graphs)
    needs_two_paths: bool = False

    def statistic(self, A: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """s(y) for a batch of adjacency matrices ``A[B, n, n]``; returns ``[B]``."""
        raise NotImplementedError(f"term {type(self).__name__} must implement statistic(A)")

    def change(self, g: GraphBatch, c: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:  # pragma: no cover
        """s(y_ij^+) - s(y_ij^-) for dyads (i[b], j[b]) of graphs c[b] of ``g``; returns ``[B]``."""
        raise NotImplementedError(f"term {type(self).__name__} must implement change(g, c, i, j)")

    def all_changes(self, A: np.ndarray, tail: np.ndarray, head: np.ndarray):
        """Change statistics of every dyad (tail[d], head[d]) of one graph ``A[n, n]`` with dense matrix
        algebra (used by the MPLE); ``None`` when a term has no such shortcut."""
        return None

    def empty_statistic(self, n_nodes: int) -> float:
        """s(empty graph on ``n_nodes`` nodes): 0 except for degree(0) and isolates (n)."""
        return 0.0

    #: smallest attainable value of s(y) (None: no general bound); every count statistic is >= 0
    min_value: Optional[float] = 0.0


def _deg_minus(g: GraphBatch, c: np.ndarray, i: np.ndarray, j: np.ndarray):
    """Degrees of i and j in the graph with the tie (i, j) removed."""
    # total degree for directed graphs: the tie i->j counts once for each endpoint
    y = g.entries(g.A, c, i, j)
    return g.degree(c, i) - y, g.degree(c, j) - y


def _all_deg_minus(A: np.ndarray, tail: np.ndarray, head: np.ndarray, directed: bool):
    """Degrees of tail[d] and head[d] in the graph ``A[n, n]`` with tie d removed."""
    deg = A.sum(1) + (A.sum(0) if directed else 0.0)
    y = A[tail, head]
    return deg[tail] - y, deg[head] - y


def _undirected_degree(A: np.ndarray) -> np.ndarray:
    return A.sum(2)


def _total_degree(A: np.ndarray, directed: bool) -> np.ndarray:
    return A.sum(2) + A.sum(1) if directed else A.sum(2)


def _upper(A: np.ndarray) -> np.ndarray:
    n = A.shape[-1]
    return np.triu(np.ones((n, n)), 1) * A


def _two_paths(A: np.ndarray) -> np.ndarray:
    return A @ A


class Edges(Term):
    """edges: s(y) = sum_{dyads} y_ij; change statistic 1."""

    label = "edges"

    def __init__(self, directed: bool):
        self.directed = directed

    def statistic(self, A):
        return A.sum((1, 2)) / (1.0 if self.directed else 2.0)

    def change(self, g, c, i, j):
        return np.ones(c.shape[0])

    def all_changes(self, A, tail, head):
        return np.ones(tail.shape[0])


class Triangle(Term):
    """triangle: s(y) = trace(A^3) / 6; change statistic = shared partners of (i, j) = A[i] . A[j]."""

    label = "triangle"

    def statistic(self, A):
        return ((A @ A) * A).sum((1, 2)) / 6.0

    def change(self, g, c, i, j):
        return g.two_path_entries(c, i, j)

    def all_changes(self, A, tail, head):
        return (A @ A)[tail, head]


class KStar(Term):
    """kstar(k): s(y) = sum_i C(d_i, k); change statistic C(d_i^-, k-1) + C(d_j^-, k-1)."""

    def __init__(self, k: int):
        self.k = k
        self.label = f"kstar{k}"

    def statistic(self, A):
        return comb(_undirected_degree(A), self.k).sum(1)

    def change(self, g, c, i, j):
        di, dj = _deg_minus(g, c, i, j)
        return comb(di, self.k - 1) + comb(dj, self.k - 1)

    def all_changes(self, A, tail, head):
        di, dj = _all_deg_minus(A, tail, head, False)
        return comb(di, self.k - 1) + comb(dj, self.k - 1)


class _Geometric(Term):
    """Shared helpers of the geometrically weighted terms (Hunter 2007): r = 1 - e^{-alpha}."""

    def __init__(self, decay: float, n_nodes: int):
        self.decay = decay
        self.r = 1.0 - math.exp(-decay)
        self.scale = math.exp(decay)
        # r**k for k = 0..n, looked up instead of pow (counts are integers)
        self.rpow = self.r ** np.arange(n_nodes + 2, dtype=np.float64)

    def _rp(self, counts: np.ndarray) -> np.ndarray:
        return self.rpow[counts.astype(np.int64)]


class GWESP(_Geometric):
    """gwesp(alpha) = e^alpha sum_{k>=1} (1 - r^k) ESP_k = e^alpha sum_{ties ij} (1 - r^{sp_ij}).

    Change statistic of adding (i, j): e^alpha (1 - r^{sp_ij}) + sum_{k in N(i) & N(j)} (r^{sp_ik} + r^{sp_jk}),
    shared-partner counts taken in the graph without (i, j) (Hunter & Handcock 2006, eq. 25 for fixed decay).
    """

    needs_two_paths = True

    def __init__(self, decay: float, n_nodes: int):
        super().__init__(decay, n_nodes)
        self.label = f"gwesp.fixed.{decay:g}"

    def statistic(self, A):
        S = _two_paths(A)
        return self.scale * (_upper(A) * (1.0 - self.r ** S)).sum((1, 2))

    def change(self, g, c, i, j):
        ai, aj = g.rows(g.A, c, i), g.rows(g.A, c, j)
        y = g.entries(g.A, c, i, j)[:, None]
        s_i = g.two_path_rows(c, i)
        si = s_i - y * aj
        sj = g.two_path_rows(c, j) - y * ai
        common = ai * aj
        return (self.scale * (1.0 - self._rp(s_i[np.arange(c.shape[0]), j]))
                + (common * (self._rp(si) + self._rp(sj))).sum(1))

    def all_changes(self, A, tail, head):
        # sum_k A_ik A_jk r^{sp_ik} = ((A o R) @ A)_ij with R = r^S; for tied dyads every such sp_ik counts j,
        # so the graph without (i, j) has sp_ik - 1 there (R1 = r^{S-1}).
        S = A @ A
        y = A[tail, head]
        out = np.empty(tail.shape[0])
        for mask, R in ((y < 0.5, self._rp(S)), (y > 0.5, self._rp(np.maximum(S - 1, 0)))):
            M = (A * R) @ A
            out[mask] = (M[tail, head] + M[head, tail])[mask]
        return out + self.scale * (1.0 - self._rp(S[tail, head]))


class GWDSP(_Geometric):
    """gwdsp(alpha) = e^alpha sum_{k>=1} (1 - r^k) DSP_k = e^alpha sum_{dyads ij} (1 - r^{sp_ij}).

    Adding (i, j) gives every dyad (i, k), k in N(j), and (j, k), k in N(i), one more shared partner, so the
    change statistic is sum_{k in N(j)\\i} r^{sp_ik} + sum_{k in N(i)\\j} r^{sp_jk} (graph without (i, j)).
    """

    needs_two_paths = True

    def __init__(self, decay: float, n_nodes: int):
        super().__init__(decay, n_nodes)
        self.label = f"gwdsp.fixed.{decay:g}"

    def statistic(self, A):
        S = _two_paths(A)
        n = A.shape[-1]
        return self.scale * (np.triu(np.ones((n, n)), 1) * (1.0 - self.r ** S)).sum((1, 2))

    def change(self, g, c, i, j):
        b = np.arange(c.shape[0])
        ai, aj = g.rows(g.A, c, i), g.rows(g.A, c, j)
        y = g.entries(g.A, c, i, j)[:, None]
        si = g.two_path_rows(c, i) - y * aj
        sj = g.two_path_rows(c, j) - y * ai
        ai[b, j] = 0.0
        aj[b, i] = 0.0
        return (aj * self._rp(si)).sum(1) + (ai * self._rp(sj)).sum(1)

    def all_changes(self, A, tail, head):
        # sum_{k in N(j), k != i} r^{sp_ik} = (R @ A)_ij - R_ii A_ij, with R = r^{S-1} for tied dyads
        S = A @ A
        y = A[tail, head]
        out = np.empty(tail.shape[0])
        for mask, R in ((y < 0.5, self._rp(S)), (y > 0.5, self._rp(np.maximum(S - 1, 0)))):
            M = R @ A
            diag = np.diag(R)
            val = M[tail, head] + M[head, tail] - y * (diag[tail] + diag[head])
            out[mask] = val[mask]
        return out


class GWDegree(_Geometric):
    """gwdegree(alpha) = e^alpha sum_k (1 - r^k) D_k = e^alpha sum_i (1 - r^{d_i}); change r^{d_i^-} + r^{d_j^-}."""

    def __init__(self, decay: float, n_nodes: int):
        super().__init__(decay, n_nodes)
        self.label = f"gwdeg.fixed.{decay:g}"

    def statistic(self, A):
        return self.scale * (1.0 - self.r ** _undirected_degree(A)).sum(1)

    def change(self, g, c, i, j):
        di, dj = _deg_minus(g, c, i, j)
        return self._rp(di) + self._rp(dj)

    def all_changes(self, A, tail, head):
        di, dj = _all_deg_minus(A, tail, head, False)
        return self._rp(di) + self._rp(dj)


class Degree(Term):
    """degree(k): number of nodes with degree exactly k."""

    def __init__(self, k: int):
        self.k = k
        self.label = f"degree{k}"

    def statistic(self, A):
        return (_undirected_degree(A) == self.k).sum(1).astype(np.float64)

    def empty_statistic(self, n_nodes):
        return float(n_nodes) if self.k == 0 else 0.0

    def change(self, g, c, i, j):
        di, dj = _deg_minus(g, c, i, j)
        k = self.k
        return ((di + 1 == k).astype(float) - (di == k) + (dj + 1 == k) - (dj == k)).astype(np.float64)

    def all_changes(self, A, tail, head):
        di, dj = _all_deg_minus(A, tail, head, False)
        k = self.k
        return ((di + 1 == k).astype(float) - (di == k) + (dj + 1 == k) - (dj == k)).astype(np.float64)


class Isolates(Term):
    """isolates: number of nodes without any tie (in- or out-ties for directed graphs)."""

    label = "isolates"

    def __init__(self, directed: bool):
        self.directed = directed

    def statistic(self, A):
        return (_total_degree(A, self.directed) == 0).sum(1).astype(np.float64)

    def empty_statistic(self, n_nodes):
        return float(n_nodes)

    def change(self, g, c, i, j):
        di, dj = _deg_minus(g, c, i, j)
        return -((di == 0).astype(np.float64) + (dj == 0))

    def all_changes(self, A, tail, head):
        di, dj = _all_deg_minus(A, tail, head, self.directed)
        return -((di == 0).astype(np.float64) + (dj == 0))


class Mutual(Term):
    """mutual (directed): s(y) = sum_{i<j} y_ij y_ji; change statistic of i->j is y_ji."""

    label = "mutual"

    def statistic(self, A):
        return (A * np.swapaxes(A, 1, 2)).sum((1, 2)) / 2.0

    def change(self, g, c, i, j):
        return g.entries(g.A, c, j, i)

    def all_changes(self, A, tail, head):
        return A[head, tail].copy()


class NodeMatch(Term):
    """nodematch("a"): ties whose endpoints have equal values of attribute a; change [a_i == a_j]."""

    def __init__(self, attr: str, values: List[Any], directed: bool):
        self.label = f"nodematch.{attr}"
        self.directed = directed
        codes = {v: k for k, v in enumerate(dict.fromkeys(values))}
        #: integer code of every node's attribute value (equal codes = equal values)
        self.codes = np.array([codes[v] for v in values], dtype=np.int64)

    @property
    def same(self) -> np.ndarray:
        """[n, n] 0/1 matrix of equal attribute values (built on demand: O(n^2) memory)."""
        x = self.codes
        return (x[:, None] == x[None, :]).astype(np.float64)

    def statistic(self, A):
        return (A * self.same).sum((1, 2)) / (1.0 if self.directed else 2.0)

    def change(self, g, c, i, j):
        return (self.codes[i] == self.codes[j]).astype(np.float64)

    def all_changes(self, A, tail, head):
        return (self.codes[tail] == self.codes[head]).astype(np.float64)


class NodeCov(Term):
    """nodecov("a"): sum over ties (i, j) of x_i + x_j (numeric attribute); change x_i + x_j."""

    min_value = None

    def __init__(self, attr: str, values: List[Any], directed: bool):
        self.label = f"nodecov.{attr}"
        self.directed = directed
        try:
            x = np.array([float(v) for v in values])
        except (TypeError, ValueError):
            bad = next(v for v in values if not isinstance(v, Real))
            raise ConfigError(f"nodecov({attr!r}) needs a numeric attribute; got value {bad!r}") from None
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"nodecov({attr!r}) needs finite attribute values")
        self.x = x

    def statistic(self, A):
        pair = self.x[:, None] + self.x[None, :]
        return (A * pair).sum((1, 2)) / (1.0 if self.directed else 2.0)

    def change(self, g, c, i, j):
        return self.x[i] + self.x[j]

    def all_changes(self, A, tail, head):
        return self.x[tail] + self.x[head]


# ---------------------------------------------------------------------------------------------------
# Factories: (network, TermSpec) -> list of Terms, with argument checks.
# ---------------------------------------------------------------------------------------------------

def _no_args(spec: TermSpec) -> None:
    if spec.args or spec.kwargs:
        raise ConfigError(f"term {spec.name!r} takes no arguments, got {spec.name}({_fmt_args(spec)})")


def _fmt_args(spec: TermSpec) -> str:
    parts = [repr(a) for a in spec.args] + [f"{k}={v!r}" for k, v in spec.kwargs.items()]
    return ", ".join(parts)


def _undirected_only(spec: TermSpec, net: Network) -> None:
    if net.directed:
        raise ConfigError(
            f"term {spec.name!r} is implemented for undirected graphs only; "
            f"for directed graphs use: {', '.join(DIRECTED_TERMS)}"
        )


def _allowed_kwargs(spec: TermSpec, allowed: Dict[str, Callable[[Any], bool]]) -> None:
    for key, value in spec.kwargs.items():
        if key not in allowed:
            raise ConfigError(f"term {spec.name!r} has no argument {key!r}; allowed: {', '.join(allowed) or 'none'}")
        if not allowed[key](value):
            raise ConfigError(f"unsupported value {key}={value!r} in term {spec.name!r}")


def _decay(spec: TermSpec) -> float:
    """The fixed decay of a gw* term: first positional argument or decay=/alpha=; fixed=TRUE tolerated.

    statnet's ``cutoff=`` sets how many shared-partner (or degree) counts the *curved* term
    (``fixed=FALSE``) keeps as separate statistics; statnet ignores it for the fixed-decay term, the only
    form implemented here. It is therefore rejected rather than accepted and ignored.
    """
    if "cutoff" in spec.kwargs:
        raise ConfigError(
            f"term {spec.name}({_fmt_args(spec)}): cutoff= only applies to statnet's curved {spec.name} "
            f"(fixed=FALSE), which is not supported; the fixed-decay {spec.name} implemented here sums over all "
            f"counts with no cutoff, so remove cutoff= (e.g. {spec.name}(0.5))")
    _allowed_kwargs(spec, {"decay": lambda v: True, "alpha": lambda v: True, "fixed": lambda v: v is True})
    values = list(spec.args[:1]) + [spec.kwargs[k] for k in ("decay", "alpha") if k in spec.kwargs]
    if len(spec.args) > 2 or (len(spec.args) == 2 and spec.args[1] is not True):
        raise ConfigError(f"term {spec.name}({_fmt_args(spec)}): expected ({spec.name}(decay) or "
                          f"{spec.name}(decay, fixed=TRUE)); curved (fixed=FALSE) terms are not supported")
    if len(values) != 1:
        raise ConfigError(f"term {spec.name!r} needs exactly one fixed decay, e.g. {spec.name}(0.5); "
                          f"got {spec.name}({_fmt_args(spec)})")
    v = values[0]
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"decay of {spec.name!r} must be a finite number >= 0, got {v!r}")
    return float(v)


def _positive_ints(spec: TermSpec, what: str) -> List[int]:
    _allowed_kwargs(spec, {})
    if not spec.args:
        raise ConfigError(f"term {spec.name!r} needs {what}, e.g. {spec.name}(2)")
    out = []
    for v in spec.args:
        if isinstance(v, bool) or not isinstance(v, Real) or float(v) != int(v) or v < 0:
            raise ConfigError(f"term {spec.name!r}: {what} must be integers >= 0, got {v!r}")
        out.append(int(v))
    return out


def _attr_name(spec: TermSpec) -> str:
    if len(spec.args) != 1 or not isinstance(spec.args[0], str):
        raise ConfigError(f"term {spec.name!r} needs one node-attribute name, e.g. {spec.name}(\"group\"); "
                          f"got {spec.name}({_fmt_args(spec)})")
    return spec.args[0]


@TERMS.register("edges")
def _edges(net: Network, spec: TermSpec) -> List[Term]:
    _no_args(spec)
    return [Edges(net.directed)]


@TERMS.register("triangle")
def _triangle(net, spec):
    _no_args(spec)
    _undirected_only(spec, net)
    return [Triangle()]


@TERMS.register("kstar")
def _kstar(net, spec):
    _undirected_only(spec, net)
    ks = _positive_ints(spec, "star sizes k")
    if any(k < 1 for k in ks):
        raise ConfigError(f"kstar(k) needs k >= 1, got {ks}")
    return [KStar(k) for k in ks]


@TERMS.register("degree")
def _degree(net, spec):
    _undirected_only(spec, net)
    return [Degree(k) for k in _positive_ints(spec, "degrees k")]


@TERMS.register("gwesp")
def _gwesp(net, spec):
    _undirected_only(spec, net)
    return [GWESP(_decay(spec), net.n_nodes)]


@TERMS.register("gwdsp")
def _gwdsp(net, spec):
    _undirected_only(spec, net)
    return [GWDSP(_decay(spec), net.n_nodes)]


@TERMS.register("gwdegree")
def _gwdegree(net, spec):
    _undirected_only(spec, net)
    return [GWDegree(_decay(spec), net.n_nodes)]


@TERMS.register("isolates")
def _isolates(net, spec):
    _no_args(spec)
    return [Isolates(net.directed)]


@TERMS.register("mutual")
def _mutual(net, spec):
    _no_args(spec)
    if not net.directed:
        raise ConfigError("term 'mutual' is defined for directed graphs only; the graph is undirected")
    return [Mutual()]


@TERMS.register("nodematch")
def _nodematch(net, spec):
    _allowed_kwargs(spec, {"diff": lambda v: v is False})
    attr = _attr_name(spec)
    return [NodeMatch(attr, net.attribute(attr), net.directed)]


@TERMS.register("nodecov")
def _nodecov(net, spec):
    _allowed_kwargs(spec, {})
    attr = _attr_name(spec)
    return [NodeCov(attr, net.attribute(attr), net.directed)]


def build_terms(net: Network, specs: List[TermSpec]) -> List[Term]:
    """Bind parsed term specifications to a network (attributes, size, direction)."""
    terms: List[Term] = []
    for spec in specs:
        terms.extend(TERMS.get(spec.name)(net, spec))
    labels = [t.label for t in terms]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ConfigError(f"the formula repeats term(s) {', '.join(sorted(dup))}; each statistic may appear once")
    return terms
