"""ERGM terms: change statistics equal differences of full statistics; statistics match networkx
brute force; formula parsing and error messages."""
import math

import networkx as nx
import numpy as np
import pytest

from ebmlab import ConfigError, DataError
from ebmlab.ergm import ERGM, parse_formula

UNDIRECTED = ("edges + triangle + kstar(2) + kstar(3) + gwesp(0.5) + gwdsp(0.7) + gwdegree(0.3) + degree(0, 1, 3)"
              " + isolates + nodematch('g') + nodecov('x') + gwesp(0)")
DIRECTED = "edges + mutual + isolates + nodematch('g') + nodecov('x')"


def _random_graph(n, p, seed, directed):
    g = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    rng = np.random.default_rng(seed)
    for v in g.nodes:
        g.nodes[v]["g"] = int(rng.integers(0, 3))
        g.nodes[v]["x"] = float(rng.normal())
    return g


@pytest.mark.parametrize("directed,formula", [(False, UNDIRECTED), (True, DIRECTED)])
@pytest.mark.parametrize("density", [0.15, 0.5, 0.85])
def test_change_statistics_equal_full_statistic_differences(directed, formula, density):
    g = _random_graph(10, density, seed=int(100 * density) + directed, directed=directed)
    bound = ERGM(formula).bind(g)
    A = bound.network.adjacency
    X, y = bound.change_statistics()
    n = A.shape[0]
    plus = np.repeat(A[None], bound.dyads.n_dyads, 0)
    minus = plus.copy()
    d = np.arange(bound.dyads.n_dyads)
    for M, v in ((plus, 1.0), (minus, 0.0)):
        M[d, bound.dyads.tail, bound.dyads.head] = v
        if not directed:
            M[d, bound.dyads.head, bound.dyads.tail] = v
    expected = bound.statistics(plus) - bound.statistics(minus)
    # the dense all-dyad path (used by the MPLE) ...
    np.testing.assert_allclose(X, expected, atol=1e-10, rtol=1e-12)
    # ... and the per-toggle path of the sampler, with and without cached two-paths
    from ebmlab.ergm.graph_batch import GraphBatch

    c = np.zeros(bound.dyads.n_dyads, dtype=np.int64)
    for two_paths in ((False, True) if not directed else (False,)):
        g = GraphBatch(A[None], bound.dyads, track_two_paths=two_paths)
        per_toggle = np.stack([t.change(g, c, bound.dyads.tail, bound.dyads.head) for t in bound.terms], 1)
        np.testing.assert_allclose(per_toggle, expected, atol=1e-10, rtol=1e-12)
    np.testing.assert_array_equal(y, A[bound.dyads.tail, bound.dyads.head])
    assert n == 10


def test_change_statistics_survive_many_toggles():
    """Cached two-paths, degrees and tie lists stay exact through a long random toggle sequence."""
    from ebmlab.ergm.graph_batch import GraphBatch

    bound = ERGM("edges + gwesp(0.5) + gwdsp(0.2) + triangle").bind(_random_graph(9, 0.4, 3, False))
    g = GraphBatch(np.stack([bound.network.adjacency] * 3), bound.dyads, track_two_paths=True, track_ties=True)
    rng = np.random.default_rng(0)
    for _ in range(500):
        g.toggle(np.array([0, 1, 2]), rng.integers(0, bound.dyads.n_dyads, 3))
    S = g.A @ g.A
    S[:, range(9), range(9)] = 0
    np.testing.assert_array_equal(g.S, S)
    np.testing.assert_array_equal(g.deg, g.A.sum(2))
    for c in range(3):
        ties = np.flatnonzero(g.A[c][bound.dyads.tail, bound.dyads.head])
        assert sorted(g.tie_list[c, :g.n_ties[c]].tolist()) == ties.tolist()
        assert np.all(g.tie_pos[c, ties] >= 0) and np.sum(g.tie_pos[c] >= 0) == ties.size


def test_statistics_match_networkx_brute_force():
    g = _random_graph(12, 0.35, 7, False)
    alpha = 0.5
    r = 1 - math.exp(-alpha)
    s = dict(zip(ERGM(UNDIRECTED).labels(g), ERGM(UNDIRECTED).statistics(g)))
    deg = dict(g.degree())
    assert s["edges"] == g.number_of_edges()
    assert s["triangle"] == sum(nx.triangles(g).values()) / 3
    assert s["kstar2"] == sum(math.comb(d, 2) for d in deg.values())
    assert s["kstar3"] == sum(math.comb(d, 3) for d in deg.values())
    sp = {(u, v): len(set(g[u]) & set(g[v])) for u in g for v in g if u < v}
    esp = np.bincount([sp[tuple(sorted(e))] for e in g.edges()], minlength=12)
    dsp = np.bincount(list(sp.values()), minlength=12)
    degs = np.bincount(list(deg.values()), minlength=12)
    gw = lambda counts, a: math.exp(a) * sum((1 - (1 - math.exp(-a)) ** k) * c for k, c in enumerate(counts))
    assert s["gwesp.fixed.0.5"] == pytest.approx(gw(esp, 0.5), rel=1e-12)
    assert s["gwdsp.fixed.0.7"] == pytest.approx(gw(dsp, 0.7), rel=1e-12)
    assert s["gwdeg.fixed.0.3"] == pytest.approx(gw(degs, 0.3), rel=1e-12)
    assert s["gwesp.fixed.0"] == pytest.approx(np.sum(esp[1:]), rel=1e-12)  # alpha = 0: ties with >= 1 partner
    assert s["degree0"] == degs[0] and s["degree3"] == degs[3] and s["isolates"] == degs[0]
    assert s["nodematch.g"] == sum(g.nodes[u]["g"] == g.nodes[v]["g"] for u, v in g.edges())
    assert s["nodecov.x"] == pytest.approx(sum(g.nodes[u]["x"] + g.nodes[v]["x"] for u, v in g.edges()))
    assert r > 0


def test_directed_statistics_match_networkx():
    g = _random_graph(11, 0.3, 5, True)
    s = dict(zip(ERGM(DIRECTED).labels(g), ERGM(DIRECTED).statistics(g)))
    assert s["edges"] == g.number_of_edges()
    assert s["mutual"] == sum(1 for u, v in g.edges() if g.has_edge(v, u)) / 2
    assert s["isolates"] == sum(1 for v in g if g.degree(v) == 0)
    assert s["nodematch.g"] == sum(g.nodes[u]["g"] == g.nodes[v]["g"] for u, v in g.edges())


def test_formula_parser_accepts_statnet_syntax():
    specs = parse_formula("flomarriage ~ edges + gwesp(decay = 0.25, fixed = TRUE) + nodematch(\"g\") + kstar(2)")
    assert [s.name for s in specs] == ["edges", "gwesp", "nodematch", "kstar"]
    assert specs[1].kwargs == {"decay": 0.25, "fixed": True}
    assert specs[2].args == ("g",)
    assert specs[3].args == (2,)
    g = _random_graph(8, 0.4, 1, False)
    assert ERGM("edges+gwesp(0.5,fixed=TRUE)").labels(g) == ["edges", "gwesp.fixed.0.5"]


@pytest.mark.parametrize("formula,where", [("edges + ", 8), ("edges + triangle(", 17), ("edges triangle", 6),
                                           ("edges + kstar(2", 15), ("nodematch('g)", 10), ("", 0)])
def test_parse_errors_show_the_position(formula, where):
    with pytest.raises(ConfigError) as err:
        parse_formula(formula)
    msg = str(err.value)
    assert f"position {where}" in msg and "^" in msg


def test_error_messages():
    und = _random_graph(8, 0.4, 1, False)
    di = _random_graph(8, 0.4, 1, True)
    with pytest.raises(ConfigError, match="unknown ERGM term 'triangles'.*edges.*gwesp.*triangle"):
        ERGM("edges + triangles")
    with pytest.raises(ConfigError, match="mutual.*directed graphs only"):
        ERGM("edges + mutual").bind(und)
    with pytest.raises(ConfigError, match="'triangle' is implemented for undirected graphs only"):
        ERGM("edges + triangle").bind(di)
    del und.nodes[3]["g"]
    with pytest.raises(ConfigError, match="attribute 'g' is missing on node 3"):
        ERGM("edges + nodematch('g')").bind(und)
    with pytest.raises(ConfigError, match="numeric"):
        ERGM("nodecov('g')").bind(_with_attr(nx.path_graph(3), "g", "a"))
    with pytest.raises(DataError, match="at least 2 nodes"):
        ERGM("edges").bind(nx.empty_graph(1))
    with pytest.raises(DataError, match="at least 2 nodes"):
        ERGM("edges").fit(nx.Graph())
    with pytest.raises(ConfigError, match="decay"):
        ERGM("gwesp").bind(und)
    with pytest.raises(ConfigError, match="fixed=FALSE|unsupported value fixed"):
        ERGM("gwesp(0.5, fixed=FALSE)").bind(und)
    with pytest.raises(ConfigError, match="kstar"):
        ERGM("kstar(0)").bind(und)
    with pytest.raises(ConfigError, match="theta has 1 values but the model has 2"):
        ERGM("edges + triangle").simulate(und, [0.1], n_samples=2)
    with pytest.raises(ConfigError, match="unknown ERGM fitting method 'mle'.*mcmc_mle"):
        ERGM("edges").fit(und, method="mle")
    with pytest.raises(ConfigError, match="repeats"):
        ERGM("edges + edges").bind(und)


@pytest.mark.parametrize("term", ["gwesp", "gwdsp", "gwdegree"])
def test_gw_cutoff_is_rejected_not_ignored(term):
    """statnet's cutoff= only shapes the curved (fixed=FALSE) term; accepting it for the fixed-decay term and
    silently computing the uncut statistic would fit a different model than the user asked for."""
    g = _random_graph(8, 0.4, 1, False)
    with pytest.raises(ConfigError, match=rf"{term}\(0.5, cutoff=3\): cutoff= only applies to statnet's curved"):
        ERGM(f"edges + {term}(0.5, cutoff=3)").bind(g)
    with pytest.raises(ConfigError, match="cutoff"):
        ERGM(f"edges + {term}(decay=0.5, fixed=TRUE, cutoff=30)").fit(g, method="mple")
    assert ERGM(f"edges + {term}(0.5, fixed=TRUE)").labels(g)[1].endswith("fixed.0.5")


def _with_attr(g, name, value):
    for v in g.nodes:
        g.nodes[v][name] = value
    return g
