"""The ERGM as an exponential-family Energy on dyad vectors (ebmlab.energies.ERGMEnergy).

Checked against independent brute force: statistics against networkx counts, delta / site_delta against
energies of flipped graphs, the exact moments of ebmlab.metrics.exact against a plain itertools enumeration of
all 2^10 graphs on 5 nodes; the generic Gibbs and tie/no-tie samplers against those exact moments (chains
started from exact draws, so there is no burn-in bias; |mean - exact| / MCSE below the normal quantile of a
family-wise level of 1e-3, Bonferroni over the moments checked, MCSE from the spread of independent chains);
the generic pseudo-likelihood and energy-discrepancy objectives against ebmlab.ergm's MPLE and ED.
"""
import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.stats import norm

from ebmlab import ConfigError, DataError
from ebmlab.energies import ENERGIES, ERGMEnergy, FunctionEnergy, Ising, flip_all
from ebmlab.ergm import ERGM
from ebmlab.ergm.loglik import exact_loglik, exact_mle
from ebmlab.metrics.exact import enumerate_states, exact_expectation, exact_log_prob, exact_moments
from ebmlab.objectives import PseudoLikelihood
from ebmlab.objectives.discrete_perturbations import BernoulliPerturbation
from ebmlab.objectives.energy_discrepancy import EnergyDiscrepancy
from ebmlab.objectives.pseudo_likelihood import pseudo_likelihood_loss
from ebmlab.samplers import SAMPLERS, Gibbs, TieNoTie, sample

FAMILY_LEVEL = 1e-3

ATTRS = {"g": [0, 0, 1, 1, 1], "x": [0.5, -1.0, 0.25, 2.0, 0.0]}

#: (formula, theta, node attributes, directed, n_nodes)
MODELS = [
    ("edges + triangle", [-0.4, 0.3], {}, False, 5),
    ("edges + kstar(2)", [-2.5, 0.2], {}, False, 5),           # P(empty graph) ~ 0.4 (TNT's E = 0 branch)
    ("edges + gwesp(0.5)", [2.5, -0.2], {}, False, 5),         # mostly dense: the complete graph is visited
    ("edges + nodematch('g') + nodecov('x')", [-0.8, 0.9, 0.4], ATTRS, False, 5),
    ("edges + mutual", [-0.7, 1.1], {}, True, 4),              # 12 ordered dyads
]
IDS = ["triangle", "kstar", "gwesp", "attributes", "directed"]


def _energy(formula, theta, attrs, directed, n):
    return ERGM(formula).energy(n, theta, directed=directed, **attrs)


def _graph(x_row, n, directed):
    """networkx graph of a dyad vector in DyadIndex order (pairs i<j, or i != j, row by row)."""
    pairs = [(i, j) for i in range(n) for j in range(n) if (i != j if directed else i < j)]
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(p for p, v in zip(pairs, x_row) if v > 0.5)
    return g


def _brute_force_statistics(formula, g):
    """Independent statistics from networkx for the formulas used here."""
    out = []
    deg = dict(g.degree()) if not g.is_directed() else None
    for term in [t.strip() for t in formula.split("+")]:
        if term == "edges":
            out.append(g.number_of_edges())
        elif term == "triangle":
            out.append(sum(nx.triangles(g).values()) / 3)
        elif term == "kstar(2)":
            out.append(sum(math.comb(d, 2) for d in deg.values()))
        elif term == "mutual":
            out.append(sum(1 for u, v in g.edges() if g.has_edge(v, u)) / 2)
        elif term == "nodematch('g')":
            out.append(sum(1 for u, v in g.edges() if ATTRS["g"][u] == ATTRS["g"][v]))
        elif term == "nodecov('x')":
            out.append(sum(ATTRS["x"][u] + ATTRS["x"][v] for u, v in g.edges()))
        elif term == "gwesp(0.5)":
            r = 1 - math.exp(-0.5)
            sp = [len(set(g[u]) & set(g[v])) for u, v in g.edges()]
            out.append(math.exp(0.5) * sum(1 - r ** k for k in sp))
        else:  # pragma: no cover - the test list above is closed
            raise AssertionError(term)
    return np.array(out, dtype=float)


def _brute_force_moments(formula, theta, n, directed):
    """Exact E[x], E[x x^T] and E[s] by a plain itertools loop over all graphs (no ebmlab enumeration)."""
    D = n * (n - 1) if directed else n * (n - 1) // 2
    xs = np.array(list(itertools.product([0.0, 1.0], repeat=D)))
    S = np.array([_brute_force_statistics(formula, _graph(row, n, directed)) for row in xs])
    lw = S @ np.asarray(theta)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return w @ xs, (xs * w[:, None]).T @ xs, w @ S, float(np.log(np.exp(lw - lw.max()).sum()) + lw.max())


# --------------------------------------------------------------------------------------------------------------
# the energy itself
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("formula,theta,attrs,directed,n", MODELS, ids=IDS)
def test_statistics_and_energy_match_networkx(formula, theta, attrs, directed, n):
    U = _energy(formula, theta, attrs, directed, n)
    x = (torch.rand(40, U.n_sites, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < 0.5).double()
    ref = np.stack([_brute_force_statistics(formula, _graph(r, n, directed)) for r in x.numpy()])
    np.testing.assert_allclose(U.statistics(x).numpy(), ref, atol=1e-12)
    torch.testing.assert_close(U(x), -(torch.from_numpy(ref) @ torch.tensor(theta, dtype=torch.float64)))
    assert U.labels == ERGM(formula).energy(n, directed=directed, **attrs).labels
    assert U.theta.tolist() == pytest.approx(theta) and U.discrete and U.n_sites == x.shape[1]
    # float32 states give float32 energies and statistics
    assert U(x.float()).dtype == torch.float32 and U.statistics(x.float()).dtype == torch.float32


@pytest.mark.parametrize("formula", ["edges + triangle + kstar(2) + kstar(3)", "edges + gwesp(0.5) + gwdsp(0.3)",
                                     "edges + gwdegree(0.7) + degree(1, 2) + isolates",
                                     "edges + nodematch('g') + nodecov('x')"])
def test_delta_and_site_delta_equal_flipped_energy_differences(formula):
    p = len(ERGM(formula).energy(5, **({"g": ATTRS["g"], "x": ATTRS["x"]} if "node" in formula else {})).labels)
    theta = torch.linspace(-0.7, 0.9, p, dtype=torch.float64)
    U = ERGM(formula).energy(5, theta, **({"g": ATTRS["g"], "x": ATTRS["x"]} if "node" in formula else {}))
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(9, 10, generator=g, dtype=torch.float64) < 0.45).double()
    brute = U(flip_all(x).reshape(-1, 10)).reshape(9, 10) - U(x).unsqueeze(1)
    torch.testing.assert_close(U.delta(x), brute, atol=1e-12, rtol=0)             # batched change statistics
    torch.testing.assert_close(U.delta(x[3:4]), brute[3:4], atol=1e-12, rtol=0)   # one graph: dense algebra
    idx = torch.randint(10, (9,), generator=g)
    torch.testing.assert_close(U.site_delta(x, idx), brute[torch.arange(9), idx], atol=1e-12, rtol=0)


def test_directed_delta_equals_flipped_energy_differences():
    U = ERGM("edges + mutual + isolates + nodecov('x')").energy(4, [-0.5, 1.2, 0.3, 0.2], directed=True,
                                                                x=[0.0, 1.0, -2.0, 0.5])
    x = (torch.rand(6, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64) < 0.4).double()
    brute = U(flip_all(x).reshape(-1, 12)).reshape(6, 12) - U(x).unsqueeze(1)
    torch.testing.assert_close(U.delta(x), brute, atol=1e-12, rtol=0)
    torch.testing.assert_close(U.site_delta(x, torch.arange(6)), brute[torch.arange(6), torch.arange(6)])


def test_construction_errors_and_learnable_theta():
    with pytest.raises(ConfigError, match="2 statistics"):
        ERGM("edges + triangle").energy(5, [1.0])
    with pytest.raises(ConfigError, match="missing"):
        ERGM("edges + nodematch('g')").energy(5)
    with pytest.raises(ConfigError, match="5 nodes"):
        ERGM("edges + nodematch('g')").energy(5, g=[0, 1])
    with pytest.raises(ConfigError, match="undirected graphs only"):
        ERGM("edges + triangle").energy(4, directed=True)
    with pytest.raises(ConfigError, match="needs n_nodes"):
        ERGMEnergy("edges")
    U = ERGMEnergy("edges + triangle", [-0.4, 0.3], n_nodes=5, learnable=True)
    assert isinstance(U.theta, torch.nn.Parameter)
    with pytest.raises(DataError, match=r"\[batch, 10\]"):
        U(torch.zeros(2, 9, dtype=torch.float64))
    with pytest.raises(DataError, match="only 0 and 1"):
        U(torch.full((2, 10), 0.5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="no gradient in x"):
        U.energy_and_grad(torch.zeros(2, 10, dtype=torch.float64))
    # theta is a state-dict entry: saving and loading restores the model
    V = ERGMEnergy("edges + triangle", n_nodes=5, learnable=True)
    V.load_state_dict(U.state_dict())
    assert torch.equal(V.theta, U.theta)
    # the registered factory: dim = n(n-1)/2 dyads, learnable, theta = 0
    R = ENERGIES.build("ergm", dim=10, formula="edges + kstar(2)")
    assert R.n_nodes == 5 and R.learnable and torch.equal(R.theta.detach(), torch.zeros(2, dtype=torch.float64))
    assert ENERGIES.build("ergm", dim=12, formula="edges + mutual", directed=True).n_nodes == 4
    with pytest.raises(ConfigError, match="n\\(n-1\\)/2"):
        ENERGIES.build("ergm", dim=7)


# --------------------------------------------------------------------------------------------------------------
# exact enumeration (ebmlab.metrics.exact) on the ERGM energy
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("formula,theta,attrs,directed,n", MODELS, ids=IDS)
def test_exact_moments_equal_brute_force_enumeration(formula, theta, attrs, directed, n):
    U = _energy(formula, theta, attrs, directed, n)
    mean, second, stats, log_z = _brute_force_moments(formula, theta, n, directed)
    m = exact_moments(U)
    np.testing.assert_allclose(m.mean.numpy(), mean, atol=1e-12)
    np.testing.assert_allclose(m.second.numpy(), second, atol=1e-12)
    np.testing.assert_allclose(exact_expectation(U, U.statistics).numpy(), stats, rtol=1e-12, atol=1e-12)
    # ebmlab.ergm's exact log-likelihood is the same enumeration
    bound = U.bound
    g = _graph([1.0 if k % 3 == 0 else 0.0 for k in range(U.n_sites)], n, directed)
    for v in g:
        g.nodes[v].update({k: vals[v] for k, vals in attrs.items()})
    obs = ERGM(formula).bind(g)
    s_obs = _brute_force_statistics(formula, g)
    assert exact_loglik(obs, np.asarray(theta)) == pytest.approx(float(np.dot(theta, s_obs)) - log_z, abs=1e-10)
    assert bound.n_params == len(theta)


def test_exact_mle_matches_brute_force_newton():
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4), (4, 5)])
    bound = ERGM("edges + triangle").bind(g)
    U = bound.energy()
    xs = enumerate_states(15)
    S = U.statistics(xs).numpy()
    s0 = bound.observed_statistics()
    theta = np.zeros(2)
    for _ in range(50):  # plain Newton on theta . s0 - log sum exp(theta . S)
        w = np.exp(S @ theta - (S @ theta).max())
        w /= w.sum()
        mu = w @ S
        theta = theta + np.linalg.solve((S - mu).T @ ((S - mu) * w[:, None]), s0 - mu)
    est, ll, info, converged = exact_mle(bound)
    assert converged
    np.testing.assert_allclose(est, theta, atol=1e-8)
    assert ll == pytest.approx(exact_loglik(bound, theta), abs=1e-9)
    lp = exact_log_prob(bound.energy(theta), bound.observed_dyads())
    assert ll == pytest.approx(float(lp[0]), abs=1e-9)
    np.testing.assert_allclose(info, (S - mu).T @ ((S - mu) * w[:, None]), rtol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# generic samplers on the ERGM energy
# --------------------------------------------------------------------------------------------------------------
def _exact_draws(U, n, generator):
    xs = enumerate_states(U.n_sites)
    p = torch.exp(exact_log_prob(U, xs))
    return xs[torch.multinomial(p, n, replacement=True, generator=generator)]


def _assert_matches_exact(U, draws):
    """draws [K, C, D]: chain means of T and T^2 against their exact values, Bonferroni over the 2p moments."""
    K, C, D = draws.shape
    T = U.statistics(draws.reshape(-1, D)).reshape(K, C, -1)
    est = torch.cat([T, T ** 2], -1).mean(0)                         # [C, 2p] chain means
    exact = exact_expectation(U, lambda x: torch.cat([U.statistics(x), U.statistics(x) ** 2], -1))
    z = (est.mean(0) - exact) / (est.std(0) / math.sqrt(C))
    bound = norm.ppf(1 - FAMILY_LEVEL / (2 * z.numel()))
    assert bool((z.abs() < bound).all()), (est.mean(0), exact, z)


@pytest.mark.parametrize("formula,theta,attrs,directed,n", MODELS, ids=IDS)
def test_gibbs_matches_exact_moments(formula, theta, attrs, directed, n):
    U = _energy(formula, theta, attrs, directed, n)
    g = torch.Generator().manual_seed(3)
    sampler = Gibbs()
    state = sampler.init(U, _exact_draws(U, 256, g))
    draws = []
    for _ in range(60):
        state, _ = sampler.step(U, state, generator=g)
        draws.append(state.x)
    _assert_matches_exact(U, torch.stack(draws))
    torch.testing.assert_close(state.energy, U(state.x))  # the cached energy tracks the accepted deltas


@pytest.mark.parametrize("formula,theta,attrs,directed,n", MODELS, ids=IDS)
def test_tie_no_tie_sampler_matches_exact_moments(formula, theta, attrs, directed, n):
    U = _energy(formula, theta, attrs, directed, n)
    g = torch.Generator().manual_seed(4)
    sampler = SAMPLERS.get("tnt")()
    state = sampler.init(U, _exact_draws(U, 256, g))
    draws = []
    for k in range(600):
        state, info = sampler.step(U, state, generator=g)
        if k % 10 == 9:
            draws.append(state.x)
    assert 0.05 < float(info.acceptance_rate.mean()) <= 1.0
    _assert_matches_exact(U, torch.stack(draws))
    torch.testing.assert_close(state.energy, U(state.x))


def test_tie_no_tie_on_empty_and_full_graphs_and_generic_energies():
    """From the empty graph only additions are proposed and from the full one only removals; the kernel is
    generic: on an Ising model, with and without site_delta, it matches the exact marginals."""
    U = ERGM("edges").energy(5, [0.0])
    s = TieNoTie()
    g = torch.Generator().manual_seed(5)
    empty = s.init(U, torch.zeros(64, 10, dtype=torch.float64))
    new, info = s.step(U, empty, generator=g)
    assert bool((new.x.sum(1) == info.accepted.double()).all())          # every move added a tie
    # acceptance of an addition to the empty graph at theta = 0: min(1, (D + 1) / 2) = 1
    assert bool(info.accepted.all())
    full = s.init(U, torch.ones(64, 10, dtype=torch.float64))
    new, info = s.step(U, full, generator=g)
    assert bool((new.x.sum(1) == 10 - info.accepted.double()).all())     # every move removed a tie
    # removal from the full graph: ratio E / (D + E) = 1/2
    torch.testing.assert_close(info.acceptance_rate, torch.full((64,), 0.5, dtype=torch.float64))

    J = torch.tensor([[0, 0.6, -0.4, 0], [0.6, 0, 0.3, 0.2], [-0.4, 0.3, 0, 0.5], [0, 0.2, 0.5, 0]],
                     dtype=torch.float64)
    ising = Ising(J, torch.tensor([0.2, -0.3, 0.1, 0.0], dtype=torch.float64))
    no_site_delta = FunctionEnergy(ising.forward)
    no_site_delta.discrete, no_site_delta.n_sites = True, 4
    exact = exact_moments(ising).mean
    for energy in (ising, no_site_delta):
        x, _ = sample(energy, "tnt", torch.zeros(400, 4, dtype=torch.float64), steps=200, burn_in=100, thin=5,
                      generator=torch.Generator().manual_seed(6))
        cm = x.mean(0)  # [chains, 4]
        z = (cm.mean(0) - exact) / (cm.std(0) / math.sqrt(cm.shape[0]))
        assert bool((z.abs() < norm.ppf(1 - FAMILY_LEVEL / 8)).all()), z


def test_tie_no_tie_step_is_pure_and_reproducible():
    U = ERGM("edges + triangle").energy(6, [-0.5, 0.2])
    s = TieNoTie()
    x0 = (torch.rand(8, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < 0.3).double()
    x0_copy = x0.clone()
    state = s.init(U, x0)
    e0 = state.energy.clone()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        st = state
        for _ in range(30):
            st, info = s.step(U, st, generator=g)
        assert info.acceptance_rate.shape == (8,) and info.accepted.dtype == torch.bool and info.n_grad_evals == 1
        return st.x

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state.x, x0_copy) and torch.equal(state.energy, e0) and torch.equal(x0, x0_copy)
    with pytest.raises(ConfigError, match="discrete"):
        s.init(FunctionEnergy(lambda z: z.sum(1)), x0)


# --------------------------------------------------------------------------------------------------------------
# generic objectives: pseudo-likelihood = MPLE, energy discrepancy = ERGM's ED
# --------------------------------------------------------------------------------------------------------------
def _flomarriage():
    g = nx.florentine_families_graph()
    g.add_node("Pucci")
    return g


@pytest.mark.parametrize("formula,graph", [("edges + triangle", "flo"), ("edges + kstar(2) + gwesp(0.5)", "karate")])
def test_pseudo_likelihood_objective_is_the_mple(formula, graph):
    g = _flomarriage() if graph == "flo" else nx.karate_club_graph()
    fit = ERGM(formula).fit(g, method="mple")
    bound = ERGM(formula).bind(g)
    x = bound.observed_dyads()
    U = bound.energy(fit.coef, learnable=True)
    out = PseudoLikelihood()(U, x)
    assert float(out.loss.detach()) == pytest.approx(-fit.diagnostics["log_pseudolikelihood"], rel=1e-12)
    out.loss.backward()
    assert float(U.theta.grad.abs().max()) < 1e-6
    # training theta with the generic objective and a torch optimizer reaches the MPLE
    V = bound.energy(learnable=True)
    opt = torch.optim.LBFGS(V.parameters(), lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    change = V.change_statistics(x)

    def closure():
        opt.zero_grad()
        loss = pseudo_likelihood_loss(V.delta(x, change_statistics=change))
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(V.theta.detach().numpy(), fit.coef, atol=1e-5)


def test_energy_discrepancy_objective_reproduces_the_ergm_ed_fit():
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4), (4, 5)])
    fit = ERGM("edges + triangle").fit(g, method="ed", seed=0, n_noise=96, m=8, se_n_samples=64)
    assert fit.diagnostics["start"] == "mple" and not fit.diagnostics["restarted_from_zero"]
    bound = ERGM("edges + triangle").bind(g)
    flip_prob = fit.diagnostics["flip_prob"]
    ed = EnergyDiscrepancy(BernoulliPerturbation(flip_prob), m=8, w=1.0)
    batch = bound.observed_dyads().float().expand(96, -1)
    # the same perturbations (the fit's noise seed), evaluated by the generic objective on the ERGM energy
    U = bound.energy(fit.coef, learnable=True)
    out = ed(U, batch, generator=torch.Generator().manual_seed(fit.diagnostics["noise_seed"]))
    assert float(out.loss.detach()) == pytest.approx(fit.diagnostics["ed_loss"], abs=1e-5)
    out.loss.backward()
    grad_at_fit = float(U.theta.grad.abs().max())
    V = bound.energy(fit.coef + np.array([0.5, -0.5]), learnable=True)
    ed(V, batch, generator=torch.Generator().manual_seed(fit.diagnostics["noise_seed"])).loss.backward()
    assert grad_at_fit < 1e-4 < float(V.theta.grad.abs().max())


def test_ed_reports_a_restart_from_zero_when_the_mple_is_separated():
    """6 nodes, edges 01 12 02 23 34 45 14 35 05: edges + triangle has a separated pseudo-likelihood
    (MPLE about (95, -64)); ED must not start from it silently."""
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (1, 4), (3, 5), (0, 5)])
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + triangle").fit(g, method="ed", seed=0, n_noise=64, m=8, se_n_samples=64)
    assert any("started from theta = 0" in str(w.message) for w in record)
    assert fit.diagnostics["restarted_from_zero"] and fit.diagnostics["start"] == "zeros"
    assert "started from theta = 0" in fit.summary()
