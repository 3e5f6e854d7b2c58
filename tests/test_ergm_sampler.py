"""The dyad-toggle MH sampler reproduces exact expectations of tiny ERGMs (all 2^10 graphs on 5 nodes
enumerated by ebmlab.metrics.exact on the ERGM energy), for both proposals, including regimes that visit the
empty and the complete graph. tests/test_ergm_energy.py checks the generic TieNoTie sampler against the same
exact expectations (same formulas and coefficients), so the two implementations share their stationary law.

Tolerance: |mean - truth| / MCSE < 4.5, MCSE from the spread of the means of independent chains.
"""
import networkx as nx
import numpy as np
import pytest

from ebmlab.ergm import ERGM
from ebmlab.ergm.rng import numpy_rng
from ebmlab.metrics.exact import exact_expectation

N_NODES = 5


def _exact_mean_statistics(bound, theta):
    """E_theta[s] by enumerating every graph on the bound nodes (ebmlab.metrics.exact)."""
    U = bound.energy(theta)
    return exact_expectation(U, U.statistics).numpy()


@pytest.mark.parametrize("proposal", ["tnt", "random"])
@pytest.mark.parametrize("formula,theta", [
    ("edges + triangle", [-0.4, 0.3]),
    ("edges + kstar(2)", [-2.5, 0.2]),       # P(empty graph) ~ 0.4: exercises the TNT empty-graph case
    ("edges + gwesp(0.5)", [2.5, -0.2]),     # mostly dense: exercises the complete graph
    ("edges + isolates + gwdegree(0.5)", [0.2, 0.5, -0.4]),
])
def test_sampler_matches_exact_expectations(formula, theta, proposal):
    model = ERGM(formula)
    bound = model.bind(nx.empty_graph(N_NODES))
    exact = _exact_mean_statistics(bound, theta)
    C, K = 200, 40
    run = bound.run_chains(np.array(theta), n_chains=C, n_draws=K, burn_in=200, thin=10,
                           rng=numpy_rng(11), proposal=proposal)
    chain_means = run.statistics.mean(0)            # [C, p]
    est = chain_means.mean(0)
    mcse = chain_means.std(0, ddof=1) / np.sqrt(C)
    z = (est - exact) / mcse
    assert np.all(np.abs(z) < 4.5), (est, exact, z)
    # the incrementally tracked statistics equal a recomputation from the final graphs
    np.testing.assert_allclose(bound.statistics(run.final.A), run.statistics[-1], atol=1e-9)


def test_directed_sampler_matches_exact_expectations():
    model = ERGM("edges + mutual", directed=True)
    g = nx.empty_graph(4, create_using=nx.DiGraph)
    bound = model.bind(g)  # 12 ordered pairs
    theta = np.array([-0.7, 1.1])
    exact = _exact_mean_statistics(bound, theta)
    run = bound.run_chains(theta, n_chains=200, n_draws=40, burn_in=200, thin=10, rng=numpy_rng(5))
    cm = run.statistics.mean(0)
    z = (cm.mean(0) - exact) / (cm.std(0, ddof=1) / np.sqrt(200))
    assert np.all(np.abs(z) < 4.5), z


def test_simulate_api_returns_graphs_and_is_reproducible():
    model = ERGM("edges + triangle")
    g = nx.florentine_families_graph()
    a = model.simulate(g, [-1.5, 0.1], n_samples=20, seed=3, return_graphs=True, burn_in=200, thin=20)
    b = model.simulate(g, [-1.5, 0.1], n_samples=20, seed=3, burn_in=200, thin=20)
    np.testing.assert_array_equal(a.statistics, b.statistics)
    assert a.statistics.shape == (20, 2) and len(a.graphs) == 20
    assert set(a.graphs[0].nodes) == set(g.nodes)
    np.testing.assert_allclose(model.statistics(a.graphs[7]), a.statistics[7])
    assert 0 < a.acceptance_rate <= 1 and a.toggles_per_second > 0
    c = model.simulate(10, [-1.0, 0.0], n_samples=5, seed=1)   # from the empty graph on 10 nodes
    assert c.statistics.shape == (5, 2)


def test_degenerate_simulation_is_flagged():
    model = ERGM("edges + triangle")
    with pytest.warns(UserWarning, match="near-degenerate"):
        sim = model.simulate(nx.florentine_families_graph(), [0.0, 2.0], n_samples=64, seed=0, burn_in=3000,
                             thin=50)
    assert sim.degenerate and sim.degenerate_fraction > 0.5
