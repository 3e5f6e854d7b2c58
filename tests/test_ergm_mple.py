"""MPLE: equals an independent logistic regression; edges-only has the closed form logit(density)."""
import math

import networkx as nx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ebmlab.ergm import ERGM


def _flomarriage():
    g = nx.florentine_families_graph()
    g.add_node("Pucci")
    return g


def test_edges_only_closed_form():
    g = _flomarriage()
    fit = ERGM("edges").fit(g, method="mple")
    N, E = 120, 20
    p = E / N
    assert fit.coef[0] == pytest.approx(math.log(p / (1 - p)), abs=1e-10)        # -1.6094
    assert fit.stderr[0] == pytest.approx(math.sqrt(1 / (N * p * (1 - p))), abs=1e-10)  # 0.2449
    assert fit.loglik == pytest.approx(E * math.log(p) + (N - E) * math.log(1 - p), abs=1e-9)
    assert fit.coef[0] == pytest.approx(-1.609, abs=5e-4) and fit.stderr[0] == pytest.approx(0.2449, abs=1e-4)
    # a directed graph: N = n (n - 1) ordered pairs
    dg = nx.gnp_random_graph(12, 0.2, seed=3, directed=True)
    fd = ERGM("edges").fit(dg, method="mple")
    Nd, Ed = 132, dg.number_of_edges()
    pd = Ed / Nd
    assert fd.coef[0] == pytest.approx(math.log(pd / (1 - pd)), abs=1e-10)
    assert fd.stderr[0] == pytest.approx(math.sqrt(1 / (Nd * pd * (1 - pd))), abs=1e-10)


@pytest.mark.parametrize("formula,graph", [
    ("edges + triangle", "flo"), ("edges + kstar(2) + gwesp(0.5)", "karate"),
    ("edges + gwdegree(0.7) + gwdsp(0.3) + isolates", "flo"), ("edges + nodematch('club') + nodecov('x')", "karate"),
    ("edges + mutual + nodecov('x')", "directed"),
])
def test_mple_matches_independent_logistic_regression(formula, graph):
    if graph == "flo":
        g = _flomarriage()
    elif graph == "karate":
        g = nx.karate_club_graph()
        for v in g:
            g.nodes[v]["x"] = (v % 5) / 4.0
    else:
        g = nx.gnp_random_graph(14, 0.2, seed=1, directed=True)
        for v in g:
            g.nodes[v]["x"] = math.sin(v)
    model = ERGM(formula)
    fit = model.fit(g, method="mple")
    X, y = model.bind(g).change_statistics()
    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(fit.coef, ref.coef_[0], atol=1e-5)
    # independent standard errors: inverse of X^T W X at the sklearn optimum
    p = 1 / (1 + np.exp(-X @ ref.coef_[0]))
    se = np.sqrt(np.diag(np.linalg.inv((X * (p * (1 - p))[:, None]).T @ X)))
    np.testing.assert_allclose(fit.stderr, se, rtol=1e-4)
    assert fit.converged


def test_mple_matches_numpy_irls_to_1e6():
    """An independent plain IRLS on the uncompressed design matrix agrees to 1e-6."""
    g = nx.karate_club_graph()
    model = ERGM("edges + triangle + kstar(2)")
    fit = model.fit(g, method="mple")
    X, y = model.bind(g).change_statistics()
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-X @ beta))
        W = p * (1 - p)
        beta = beta + np.linalg.solve((X * W[:, None]).T @ X, X.T @ (y - p))
    np.testing.assert_allclose(fit.coef, beta, atol=1e-6)
    se = np.sqrt(np.diag(np.linalg.inv((X * W[:, None]).T @ X)))
    np.testing.assert_allclose(fit.stderr, se, rtol=1e-6)


def test_summary_table_layout():
    fit = ERGM("edges + triangle").fit(_flomarriage(), method="mple")
    text = fit.summary()
    for token in ("Estimate", "Std. Error", "z value", "Pr(>|z|)", "edges", "triangle", "Signif. codes",
                  "Null Deviance: 166.4"):
        assert token in text
    assert "***" in text.splitlines()[[k for k, l in enumerate(text.splitlines()) if l.startswith("edges")][0]]
