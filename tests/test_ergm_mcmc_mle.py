"""MCMC-MLE against the exact MLE of tiny graphs (all 2^15 graphs on 6 nodes enumerated), and the other
estimators' sanity on the same problem.

Tolerance for MCMC-MLE: |theta_hat - theta_exact| < 4.5 x the reported MCMC standard error (from
independent chains) per coefficient. The log-likelihood at theta_hat (exact here: <= 16 dyads) lies below
the maximum by (1/2) d^T I d ~ (1/2) sum_k (d_k / se_k)^2, d = theta_hat - theta_exact; the tolerance
takes d_k = 4.5 MCMC SEs. The bridge-sampling estimator is tested separately against enumeration, within
4.5 of its Monte Carlo standard errors.
"""
import networkx as nx
import numpy as np
import pytest
from scipy.special import logsumexp

from ebmlab.ergm import ERGM
from exact_oracle import ergm_exact_mle

EDGES = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4), (4, 5)]  # 7 ties, 2 triangles, 12 two-stars


def _graph():
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from(EDGES)
    return g


def _loglik_tolerance(fit):
    return 0.5 * float(np.sum((4.5 * fit.mcmc_se / fit.stderr) ** 2)) + 1e-9


def _exact_mle(formula):
    theta, se, loglik = ergm_exact_mle(formula, _graph())
    return theta, loglik, se


@pytest.mark.parametrize("formula", ["edges + triangle", "edges + kstar(2)"])
def test_mcmc_mle_matches_exact_mle(formula):
    theta, loglik, se = _exact_mle(formula)
    fit = ERGM(formula).fit(_graph(), method="mcmc_mle", seed=0)
    assert fit.converged and not fit.degenerate
    z = (fit.coef - theta) / fit.mcmc_se
    assert np.all(np.abs(z) < 4.5), (fit.coef, theta, fit.mcmc_se)
    # the MCMC error is a small part of the total; the model SEs approximate the exact inverse information
    assert np.all(fit.mcmc_se < 0.1 * fit.stderr)
    np.testing.assert_allclose(fit.stderr, se, rtol=0.1)
    # 15 dyads: exact log-likelihood at theta_hat, below the maximum by ~ (1/2) d^T I d, d = theta_hat - theta
    assert fit.loglik_se == 0.0
    assert loglik - _loglik_tolerance(fit) <= fit.loglik <= loglik + 1e-9, (fit.loglik, loglik)
    assert "MCMC %" in fit.summary()


def test_cd_and_ed_land_near_the_mle():
    """CD-k and ED are different estimators; on this graph they must stay within one standard error of
    the exact MLE (a loose consistency check, not an equality)."""
    theta, _, se = _exact_mle("edges + triangle")
    for method in ("cd", "ed"):
        fit = ERGM("edges + triangle").fit(_graph(), method=method, seed=0)
        assert fit.converged
        assert np.all(np.abs(fit.coef - theta) < se), (method, fit.coef, theta)
        assert np.all(np.isfinite(fit.stderr)) and np.all(fit.stderr > 0)


def test_dyad_independent_models_use_the_exact_mle():
    g = nx.karate_club_graph()
    mple = ERGM("edges + nodematch('club')").fit(g, method="mple")
    mc = ERGM("edges + nodematch('club')").fit(g, method="mcmc_mle", seed=1)
    np.testing.assert_allclose(mc.coef, mple.coef)
    assert mc.loglik == pytest.approx(mple.loglik) and mc.loglik_se == 0.0


def test_near_degenerate_fit_is_flagged():
    """A triangle model started far in the degenerate region must warn and flag, not return silently."""
    g = nx.karate_club_graph()
    with pytest.warns(UserWarning):
        fit = ERGM("edges + triangle").fit(g, method="mcmc_mle", seed=0, init=[-1.0, 1.5], max_iter=2,
                                           n_samples=256, loglik=False)
    assert fit.degenerate or not fit.converged


def test_directed_mcmc_mle_matches_exact_mle():
    """Directed graph on 4 nodes (12 ordered dyads, 4096 graphs): edges + mutual + nodecov."""
    g = nx.DiGraph()
    g.add_nodes_from(range(4))
    g.add_edges_from([(0, 1), (1, 0), (1, 2), (2, 3), (3, 1), (0, 3)])
    for v in g:
        g.nodes[v]["x"] = float(v)
    formula = "edges + mutual + nodecov('x')"
    bound = ERGM(formula).bind(g)
    D = bound.dyads.n_dyads
    Y = ((np.arange(2 ** D)[:, None] >> np.arange(D)) & 1).astype(float)
    A = np.zeros((2 ** D, 4, 4))
    A[:, bound.dyads.tail, bound.dyads.head] = Y
    S = bound.statistics(A)
    s0 = bound.observed_statistics()
    theta = np.zeros(3)
    for _ in range(60):
        w = np.exp(S @ theta - logsumexp(S @ theta))
        m = w @ S
        theta = theta + np.linalg.solve((S - m).T @ ((S - m) * w[:, None]), s0 - m)
    fit = ERGM(formula).fit(g, method="mcmc_mle", seed=0)
    assert fit.converged
    assert np.all(np.abs(fit.coef - theta) / fit.mcmc_se < 4.5), (fit.coef, theta, fit.mcmc_se)
    exact_ll = float(theta @ s0 - logsumexp(S @ theta))
    assert fit.loglik_se == 0.0  # 12 dyads: the log-likelihood is computed by enumeration
    assert exact_ll - _loglik_tolerance(fit) <= fit.loglik <= exact_ll + 1e-9


def test_ed_with_too_much_noise_is_flagged():
    """With flip_prob = 0.1 on the karate club (56 flips per step) the stabiliser swamps the loss: warn, no
    silent fit."""
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + triangle").fit(nx.karate_club_graph(), method="ed", seed=0, flip_prob=0.1, n_noise=32,
                                           se_n_samples=64)
    assert any("stabiliser" in str(w.message) for w in record)
    assert not fit.converged


@pytest.mark.parametrize("formula", ["edges + triangle", "edges + kstar(2) + gwesp(0.5)"])
def test_bridge_sampled_loglik_matches_enumeration(formula):
    from ebmlab.ergm.loglik import bridge_loglik, exact_loglik
    from ebmlab.ergm.rng import numpy_rng

    bound = ERGM(formula).bind(_graph())
    theta = np.array([-0.8, 0.4, 0.2][:bound.n_params])
    exact = exact_loglik(bound, theta)
    est, se = bridge_loglik(bound, theta, numpy_rng(0), n_bridges=8, n_chains=32, n_draws=8)
    assert 0 < se < 0.5
    assert abs(est - exact) < 4.5 * se, (est, exact, se)
