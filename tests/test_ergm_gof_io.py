"""GOF distributions against networkx brute force, file reading, the CLI entry point."""
import networkx as nx
import numpy as np
import pytest

from ebmlab import DataError
from ebmlab.ergm import ERGM, cli_fit, read_graph
from ebmlab.ergm.gof import gof_distributions


def test_gof_distributions_match_networkx():
    g = nx.gnp_random_graph(15, 0.15, seed=4)
    A = nx.to_numpy_array(g, nodelist=range(15))
    d = gof_distributions(A, directed=False)
    np.testing.assert_array_equal(d["degree"], np.bincount([k for _, k in g.degree()], minlength=15))
    esp = [len(set(g[u]) & set(g[v])) for u, v in g.edges()]
    np.testing.assert_array_equal(d["esp"], np.bincount(esp, minlength=14))
    lengths = dict(nx.all_pairs_shortest_path_length(g))
    dist = [lengths[u].get(v, np.inf) for u in range(15) for v in range(u + 1, 15)]
    finite = [x for x in dist if np.isfinite(x)]
    expected = np.concatenate([np.bincount(finite, minlength=15)[1:15], [sum(np.isinf(dist))]])
    np.testing.assert_array_equal(d["distance"], expected)
    assert d["degree"].sum() == 15 and d["esp"].sum() == g.number_of_edges()
    assert d["distance"].sum() == 15 * 14 / 2


def test_gof_and_plot(tmp_path):
    g = nx.florentine_families_graph()
    fit = ERGM("edges + gwesp(0.5)").fit(g, method="mple")
    gof = fit.gof(n_samples=30, seed=2)
    assert gof.statistics["degree"].simulated.shape == (30, 15)
    s = gof.statistics["esp"]
    assert np.all(s.lower <= s.mean + 1e-12) and np.all(s.mean <= s.upper + 1e-12)
    # every simulated graph has as many dyads as the observed one
    np.testing.assert_allclose(gof.statistics["distance"].simulated.sum(1), 105)
    assert "degree" in gof.summary() and "MC p" in gof.summary()
    path = gof.plot(str(tmp_path / "gof.png"))
    assert (tmp_path / "gof.png").stat().st_size > 1000 and path.endswith("gof.png")


def test_read_graph_formats_and_errors(tmp_path):
    g = nx.karate_club_graph()
    nx.write_edgelist(g, tmp_path / "k.edgelist", data=False)
    nx.write_graphml(g, tmp_path / "k.graphml")
    nx.write_gml(g, tmp_path / "k.gml")
    (tmp_path / "k.csv").write_text("source,target\n" + "\n".join(f"{u},{v}" for u, v in g.edges()))
    for name in ("k.edgelist", "k.graphml", "k.gml", "k.csv"):
        h = read_graph(tmp_path / name)
        assert h.number_of_nodes() == 34 and h.number_of_edges() == 78, name
    with pytest.raises(DataError, match="does not exist"):
        read_graph(tmp_path / "missing.edgelist")
    (tmp_path / "bad.txt").write_text("1 2\n3\n")
    with pytest.raises(DataError, match="line 2"):
        read_graph(tmp_path / "bad.txt")
    (tmp_path / "bad.graphml").write_text("<not graphml")
    with pytest.raises(DataError, match="GRAPHML"):
        read_graph(tmp_path / "bad.graphml")
    (tmp_path / "k.xyz").write_text("1 2\n")
    with pytest.raises(DataError, match="unknown graph file type"):
        read_graph(tmp_path / "k.xyz")


def test_cli_fit_returns_summary(tmp_path):
    g = nx.florentine_families_graph()
    path = tmp_path / "flo.edgelist"
    nx.write_edgelist(g, path, data=False, delimiter=" ")
    text = cli_fit(str(path), "edges + triangle", method="mple", seed=0)
    assert "Maximum Pseudolikelihood Results" in text and "triangle" in text
    # edge-list nodes with spaces in names are not an issue for networkx's florentine labels
    assert "15 nodes" in text
