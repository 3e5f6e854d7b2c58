"""Compiled ERGM kernels (ebmlab.ergm.kernels, ebmlab.ergm.sparse) against the numpy reference.

The numba MH kernel consumes the same random numbers as the numpy loop, so for one seed the chains must be the
same: same numbers of ties at every draw, same final graphs, statistics equal up to the order of floating-point
sums (1e-12 relative). Change statistics and observed statistics must agree to 1e-12.
"""
import warnings

import networkx as nx
import numpy as np
import pytest

from ebmlab import ConfigError
from ebmlab.ergm import ERGM
from ebmlab.ergm.graph_batch import DyadIndex
from ebmlab.ergm.model import resolve_backend
from ebmlab.ergm.sampler import run_metropolis_hastings
from ebmlab.ergm.sparse import ListGraphs, decode_dyads, dyad_ids

UNDIRECTED = ("edges + triangle + kstar(2) + kstar(3) + gwesp(0.5) + gwdsp(0.7) + gwdegree(0.4) + degree(0, 1, 3) "
              "+ isolates + nodematch('grp') + nodecov('x')")
DIRECTED = "edges + mutual + isolates + nodematch('grp') + nodecov('x')"


def _karate():
    g = nx.karate_club_graph()
    g.add_node(34)  # an isolate
    for v in g.nodes:
        g.nodes[v]["grp"] = v % 3
        g.nodes[v]["x"] = v / 7.0
    return g


def _digraph():
    g = nx.gnp_random_graph(14, 0.2, seed=3, directed=True)
    for v in g.nodes:
        g.nodes[v]["grp"] = v % 2
        g.nodes[v]["x"] = (v - 5) / 3.0
    return g


def _bound(formula, g, backend):
    return ERGM(formula, backend=backend).bind(g)


def _close(a, b, rtol=1e-12):
    scale = np.maximum(1.0, np.abs(b))
    return np.all(np.abs(np.asarray(a) - np.asarray(b)) <= rtol * scale)


@pytest.mark.parametrize("formula,graph", [(UNDIRECTED, _karate), (DIRECTED, _digraph)])
def test_change_matrix_and_statistics_match_reference(formula, graph):
    g = graph()
    ref, fast = _bound(formula, g, "numpy"), _bound(formula, g, "numba")
    assert fast.backend == "numba" and ref.backend == "numpy"
    X0, y0 = ref.change_statistics()
    X1, y1 = fast.change_statistics()
    assert X1.shape == X0.shape and np.array_equal(y0, y1)
    assert _close(X1, X0)
    # the same kernel on an arbitrary subset of dyads (the case-control MPLE's path)
    lg = fast.list_graphs()
    pick = np.arange(0, ref.dyads.n_dyads, 7)
    X2, y2 = lg.change_matrix(fast.compiled_terms, ref.dyads.tail[pick], ref.dyads.head[pick])
    assert _close(X2, X0[pick]) and np.array_equal(y2, y0[pick])
    # s(y) as a sum of change statistics of adding the ties one by one
    s_seq = lg.statistics(fast.compiled_terms, fast.empty_statistics())[0]
    assert _close(s_seq, ref.observed_statistics())


def test_dyad_ids_round_trip():
    for n, directed in ((2, False), (9, False), (1000, False), (7, True), (300, True)):
        dy = DyadIndex(n, directed)
        d = dyad_ids(dy.tail, dy.head, n, directed)
        assert np.array_equal(d, np.arange(dy.n_dyads))
        t, h = decode_dyads(d, n, directed)
        assert np.array_equal(t, dy.tail) and np.array_equal(h, dy.head)
    # a 10^5-node graph: ids near the end decode without any n x n array
    n = 100_000
    d = np.array([0, 1, n - 2, n - 1, n * (n - 1) // 2 - 1])
    t, h = decode_dyads(d, n, False)
    assert np.array_equal(dyad_ids(t, h, n, False), d) and np.all(t < h)


@pytest.mark.parametrize("formula,graph,theta,proposal", [
    (UNDIRECTED, _karate, None, "tnt"),
    (UNDIRECTED, _karate, None, "random"),
    (DIRECTED, _digraph, np.array([-1.5, 0.8, 0.1, 0.3, 0.05]), "tnt"),
])
def test_mh_chains_identical_to_reference(formula, graph, theta, proposal):
    g = graph()
    ref, fast = _bound(formula, g, "numpy"), _bound(formula, g, "numba")
    if theta is None:
        theta = np.random.default_rng(0).normal(0.0, 0.05, ref.n_params)
        theta[0] = -1.0
    kw = dict(n_chains=6, n_draws=40, burn_in=300, thin=25, proposal=proposal)
    r0 = ref.run_chains(theta, rng=np.random.default_rng(11), **kw)
    r1 = fast.run_chains(theta, rng=np.random.default_rng(11), **kw)
    assert r0.backend == "numpy" and r1.backend == "numba"
    assert np.array_equal(r0.n_ties, r1.n_ties)
    assert np.array_equal(r0.acceptance_rate, r1.acceptance_rate)
    assert np.array_equal(r0.final.A, r1.final.A)
    assert _close(r1.statistics, r0.statistics)
    # continuing the chains from their final states: still the same chains
    r0b = ref.run_chains(theta, rng=np.random.default_rng(12), start=r0.final.A, **kw)
    r1b = fast.run_chains(theta, rng=np.random.default_rng(12), start=r1.final, **kw)
    assert np.array_equal(r0b.final.A, r1b.final.A) and _close(r1b.statistics, r0b.statistics)


def test_mh_kernel_grows_its_arrays():
    """From the empty graph towards density ~0.9: node lists and the tie list overflow and are grown mid-block."""
    b_ref, b_fast = (ERGM("edges + triangle", backend=k).bind(30) for k in ("numpy", "numba"))
    theta = np.array([2.5, -0.01])
    kw = dict(n_chains=3, n_draws=5, burn_in=3000, thin=100, proposal="tnt")
    r0 = b_ref.run_chains(theta, rng=np.random.default_rng(2), **kw)
    r1 = b_fast.run_chains(theta, rng=np.random.default_rng(2), **kw)
    assert r1.n_ties[-1].min() > 300  # far beyond the initial capacity of an empty graph
    assert np.array_equal(r0.n_ties, r1.n_ties) and np.array_equal(r0.final.A, r1.final.A)
    assert _close(r1.statistics, r0.statistics)


def test_mcmc_mle_and_simulate_same_on_both_backends():
    g = nx.florentine_families_graph()
    opts = dict(method="mcmc_mle", seed=4, n_samples=256, n_chains=16, loglik=False)
    f0 = ERGM("edges + triangle", backend="numpy").fit(g, **opts)
    f1 = ERGM("edges + triangle", backend="numba").fit(g, **opts)
    assert f0.diagnostics["backend"] == "numpy" and f1.diagnostics["backend"] == "numba"
    assert np.allclose(f1.coef, f0.coef, rtol=0, atol=1e-9)
    assert np.allclose(f1.stderr, f0.stderr, rtol=1e-7)
    s0 = ERGM("edges + gwesp(0.5)", backend="numpy").simulate(g, [-2.0, 0.3], n_samples=8, seed=3,
                                                              return_graphs=True)
    s1 = ERGM("edges + gwesp(0.5)", backend="numba").simulate(g, [-2.0, 0.3], n_samples=8, seed=3,
                                                              return_graphs=True)
    assert _close(s1.statistics, s0.statistics)
    assert all(nx.utils.graphs_equal(a, b) for a, b in zip(s0.graphs, s1.graphs))


def test_mple_same_on_both_backends():
    g = _karate()
    f0 = ERGM("edges + gwesp(0.5) + nodematch('grp')", backend="numpy").fit(g)
    f1 = ERGM("edges + gwesp(0.5) + nodematch('grp')", backend="numba").fit(g)
    assert np.allclose(f1.coef, f0.coef, rtol=1e-10) and np.allclose(f1.stderr, f0.stderr, rtol=1e-8)


def test_backend_is_never_a_silent_fallback():
    class NoKernel:
        label = "custom"

    with pytest.raises(ConfigError, match="no compiled kernel for term\\(s\\) custom"):
        resolve_backend("numba", [NoKernel()])
    with pytest.warns(UserWarning, match="no compiled kernel for term\\(s\\) custom; running the numpy reference"):
        assert resolve_backend("auto", [NoKernel()]) == "numpy"
    with pytest.raises(ConfigError, match="backend must be one of"):
        ERGM("edges", backend="cuda")
    assert ERGM("edges").bind(nx.path_graph(4)).backend == "numba"


def test_list_graphs_memory_grows_with_ties_not_n_squared():
    n = 20_000
    rng = np.random.default_rng(0)
    e = np.unique(np.sort(rng.integers(0, n, (50_000, 2)), 1), axis=0)
    e = e[e[:, 0] != e[:, 1]]
    lg = ListGraphs.from_edges(n, False, [e])
    assert lg.nbytes() < 200 * (n + e.shape[0]) * 8 / 8  # well under one n x n bit matrix (50 MB)
    assert np.array_equal(np.sort(dyad_ids(*lg.edges(0).T, n, False)), np.sort(dyad_ids(e[:, 0], e[:, 1], n, False)))


# -- input checks from the robustness review ------------------------------------------------------------------

def test_self_loops_are_counted_in_a_warning():
    g = nx.Graph([(0, 1), (1, 1), (2, 2), (1, 2)])
    with pytest.warns(UserWarning, match="the graph has 2 self-loop\\(s\\)"):
        net = ERGM("edges").bind(g).network
    assert net.n_edges == 2


def test_nul_byte_in_node_label_is_refused(tmp_path):
    from ebmlab import DataError
    from ebmlab.ergm import read_graph

    p = tmp_path / "g.edgelist"
    p.write_bytes(b"a b\nb\x00x c\n")
    with pytest.raises(DataError, match="line 2: node label 'b\\\\x00x' contains a NUL byte"):
        read_graph(p)
    q = tmp_path / "g.graphml"
    nx.write_graphml(nx.Graph([("a", "b")]), q)
    q.write_text(q.read_text().replace('id="b"', 'id="b&#0;"').replace('target="b"', 'target="b&#0;"'))
    with pytest.raises(DataError):
        read_graph(q)


@pytest.mark.parametrize("method", ["mple", "mcmc_mle"])
def test_statistic_frozen_at_its_minimum_is_not_estimable(method):
    g = nx.florentine_families_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the singular-information warning is expected too
        fit = ERGM("edges + degree(100)").fit(g, method=method, seed=1, n_samples=256, n_chains=8) \
            if method == "mcmc_mle" else ERGM("edges + degree(100)").fit(g, method=method)
    assert fit.coef[1] == -np.inf and np.isnan(fit.stderr[1])
    assert not fit.converged and fit.diagnostics["not_estimable"] == ["degree100"]
    text = fit.summary()
    assert "-Inf" in text and "NOT converged" in text and "not estimable" in text
    assert "Estimation converged" not in text
    with pytest.warns(UserWarning, match="degree100 are at their smallest attainable value"):
        ERGM("edges + degree(100)").fit(g)
    # a statistic that can move is estimated as usual
    assert ERGM("edges + degree(1)").fit(g).converged


def test_case_control_mple_agrees_with_full_mple_within_its_sampling_error():
    """Weighted case-control MPLE vs the full MPLE on a 300-node graph (44,850 dyads, 12,000 controls).

    Bound: theta_cc - theta ~ H^{-1} (S_cc - S) with S the full score at the MPLE (zero) and S_cc its
    Hansen–Hurwitz estimate; Cov(S_cc) = N^2 / m Cov_nonties(-x_d p_d) (N non-ties, m controls drawn with
    replacement). |difference| must be within 4 of these standard deviations.
    """
    from ebmlab.ergm.estimation.mple import case_control_sample

    g = nx.watts_strogatz_graph(300, 8, 0.2, seed=1)
    model = ERGM("edges + gwesp(0.5) + kstar(2)")
    full = model.fit(g)
    m = 12_000
    cc = model.fit(g, seed=7, n_controls=m)
    bound = model.bind(g)
    X, y = bound.change_statistics()
    p = 1.0 / (1.0 + np.exp(-(X @ full.coef)))
    H = (X * (p * (1 - p))[:, None]).T @ X
    nonties = y < 0.5
    N = int(nonties.sum())
    V = N ** 2 / m * np.cov((X[nonties] * p[nonties, None]).T)
    Hi = np.linalg.inv(H)
    sd = np.sqrt(np.diag(Hi @ V @ Hi))
    assert np.all(np.abs(cc.coef - full.coef) <= 4 * sd), (cc.coef, full.coef, sd)
    assert np.all(sd < 1.5 * full.stderr)  # the bound is informative, not vacuous
    # the weights matter: without them (controls weighted 1) the edges coefficient is far off
    Xs, ys, w = case_control_sample(bound, m, np.random.default_rng(7))
    assert w[ys < 0.5][0] == pytest.approx((bound.dyads.n_dyads - g.number_of_edges()) / m)
    from ebmlab.ergm.estimation.mple import _compress, mple_estimate
    unweighted = mple_estimate(*_compress(Xs, ys))[0]
    assert abs(unweighted[0] - full.coef[0]) > 3 * sd[0]  # shifted by about log((D - E) / m)
    assert "case-control MPLE" in cc.notes[-1] or any("case-control" in n for n in cc.notes)


def test_parallel_chains_are_the_same_chains():
    g = nx.karate_club_graph()
    theta = np.array([-2.0, 0.5])
    kw = dict(n_chains=4, n_draws=10, burn_in=200, thin=20, proposal="tnt")
    r1 = ERGM("edges + gwesp(0.5)").bind(g).run_chains(theta, rng=np.random.default_rng(5), **kw)
    r2 = ERGM("edges + gwesp(0.5)", n_jobs=2).bind(g).run_chains(theta, rng=np.random.default_rng(5), **kw)
    assert np.array_equal(r1.statistics, r2.statistics) and np.array_equal(r1.final.A, r2.final.A)
    with pytest.raises(ConfigError, match="n_jobs > 1"):
        ERGM("edges", backend="numpy", n_jobs=2)


def test_chain_diagnostics_geweke_and_summary():
    from ebmlab.ergm.diagnostics import chain_diagnostics, geweke

    rng = np.random.default_rng(0)
    K, C = 200, 8
    iid = rng.normal(size=(K, C, 1))
    drift = iid + np.linspace(3.0, 0.0, K)[:, None, None]  # chains still moving towards equilibrium
    z_iid, z_drift = geweke(iid)["z"][0], geweke(drift)["z"][0]
    # the formula: first 10% vs last 50% means, standard errors from the spread over the C chains
    a, b = iid[:20].mean(0)[:, 0], iid[100:].mean(0)[:, 0]
    assert z_iid == pytest.approx((a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / C + b.var(ddof=1) / C))
    assert abs(z_iid) < 4 and z_drift > 8
    d = chain_diagnostics(np.concatenate([iid, drift], 2), ["stable", "drifting"])
    assert d["rhat"][1] > 1.05 and d["rhat"][0] < 1.05 and d["ess"][0] > 0.5 * K * C
    fit = ERGM("edges + triangle").fit(nx.florentine_families_graph(), method="mcmc_mle", seed=1, n_samples=256,
                                       n_chains=8, loglik=False)
    cd = fit.chain_diagnostics
    assert cd["n_chains"] == 8 and len(cd["ess"]) == 2 and all(np.isfinite(cd["rhat"]))
    assert "MCMC diagnostics of the final sample (8 chains x 64 draws" in fit.summary()


def test_large_sparse_graph_fits_without_dense_arrays():
    """5,000 nodes (12.5 M dyads > 2^23): case-control MPLE and a short MCMC-MLE on neighbour lists only."""
    from ebmlab import DataError
    from ebmlab.ergm.estimation.mple import FULL_MPLE_MAX_DYADS

    g = nx.gnm_random_graph(5000, 12_500, seed=2)
    model = ERGM("edges + gwesp(0.5, fixed=TRUE)")
    bound = model.bind(g)
    assert bound.dyads.n_dyads > FULL_MPLE_MAX_DYADS and not bound.dense
    mple = model.fit(g, method="mple", seed=3)
    assert mple.diagnostics["n_controls"] == 125_000 and np.all(np.isfinite(mple.coef))
    # edges coefficient of a G(n, m) graph: logit(density) up to the case-control and gwesp corrections
    dens = 12_500 / bound.dyads.n_dyads
    assert abs(mple.coef[0] - np.log(dens / (1 - dens))) < 0.1
    fit = model.fit(g, method="mcmc_mle", seed=3, n_samples=32, n_chains=4, max_iter=2, burn_in=20_000,
                    thin=2_000, warm_burn_in=5_000, loglik=False)
    assert fit.diagnostics["backend"] == "numba" and np.all(np.isfinite(fit.coef))
    assert abs(fit.coef[0] - mple.coef[0]) < 0.2
    assert bound.network._adjacency is None and fit.model.network._adjacency is None
    with pytest.raises(DataError, match="no dense adjacency matrix is built above 4000 nodes"):
        bound.network.adjacency
