"""ERGM fits at the edge: a separated MPLE (frozen chains), an MLE that does not exist, a singular
information matrix.

The graph is the triangular prism on 6 nodes (ties 01 12 02 23 34 45 14 35 05: two triangles joined by
a perfect matching, 3-regular, 9 ties). Its 15 dyads allow enumerating all 2^15 graphs:

* ``edges + triangle``: every tie has at most 1 shared partner and every non-tie 2, so the MPLE logistic
  regression is completely separated (its coefficients diverge) and dyad-toggle chains at the MPLE reject
  every toggle. The exact MLE exists (the observed statistics (9, 2) are interior to the convex hull of
  all attainable statistics) and is about (3.152, -1.944).
* ``edges + kstar(2)``: 9 ties with all degrees 3 have the fewest 2-stars possible (18) for 9 ties, and
  (9, 18) is a vertex of the lower boundary of the hull, so the likelihood increases without bound along
  a direction of recession: the MLE does not exist (Barndorff-Nielsen 1978, Thm 9.13; Handcock 2003).

Tolerances: MCMC-MLE within 4.5 of its reported MCMC standard errors of the exact MLE, as in
tests/test_ergm_mcmc_mle.py.
"""
import warnings

import networkx as nx
import numpy as np
import pytest
import torch

from ebmlab.ergm import ERGM
from exact_oracle import ergm_exact_mle

PRISM = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (1, 4), (3, 5), (0, 5)]


def _prism():
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from(PRISM)
    return g


def _exact_mle(formula):
    theta, se, _ = ergm_exact_mle(formula, _prism())
    return theta, se


def _messages(record):
    return " | ".join(str(w.message) for w in record)


def test_separated_mple_restarts_and_reaches_the_exact_mle():
    theta, se = _exact_mle("edges + triangle")
    assert np.allclose(theta, [3.152, -1.944], atol=1e-3)
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + triangle").fit(_prism(), method="mcmc_mle", generator=torch.Generator().manual_seed(1))
    assert "separat" in _messages(record)
    assert fit.converged and fit.mle_exists is not False and fit.stderr_reliable
    z = (fit.coef - theta) / fit.mcmc_se
    assert np.all(np.abs(z) < 4.5), (fit.coef, theta, fit.mcmc_se)
    assert np.all(np.isfinite(fit.stderr)) and np.all(fit.stderr > 0)
    np.testing.assert_allclose(fit.stderr, se, rtol=0.15)
    assert "Bernoulli-graph point" in fit.summary()


def test_frozen_chain_from_a_user_start_is_detected_and_restarted():
    """Started at the separated MPLE itself, every toggle is rejected: the fit must notice (zero acceptance,
    singular draw covariance), damp the start towards a safe point and still reach the MLE."""
    theta, _ = _exact_mle("edges + triangle")
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + triangle").fit(_prism(), method="mcmc_mle", init=[95.3, -63.7],
                                           generator=torch.Generator().manual_seed(2))
    assert "no toggle was accepted" in _messages(record)
    assert fit.converged
    assert fit.diagnostics["restarts"] >= 1
    assert fit.diagnostics["history"][0]["acceptance_rate"] == 0.0
    assert "restart" in fit.summary()
    assert np.all(np.abs(fit.coef - theta) / fit.mcmc_se < 4.5), (fit.coef, theta, fit.mcmc_se)


def test_cd_does_not_converge_on_a_frozen_chain():
    """CD-k starts at the separated MPLE, where its short chains reject every toggle and reproduce s_obs
    exactly, which passed its convergence test at once (coefficients ~ (95, -64), standard errors 0). Short
    CD chains keep drifting back towards the separated direction on this graph (the CD-8 fixed point
    does not seem to exist, like the MPLE), so the honest outcome is a warning and converged=False."""
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + triangle").fit(_prism(), method="cd", generator=torch.Generator().manual_seed(3))
    text = _messages(record)
    assert "separated" in text and "do not mix" in text
    assert not fit.converged
    assert fit.diagnostics["restarts"] >= 1
    assert not np.any(fit.stderr == 0.0)
    # longer short chains have a fixed point, and it lies near the MLE (the loose check of
    # tests/test_ergm_mcmc_mle.py::test_cd_and_ed_land_near_the_mle: within one standard error)
    theta, se = _exact_mle("edges + triangle")
    with pytest.warns(UserWarning, match="separated"):
        fit = ERGM("edges + triangle").fit(_prism(), method="cd", steps=32, generator=torch.Generator().manual_seed(6))
    assert fit.converged and np.all(np.abs(fit.coef - theta) < se), (fit.coef, theta, se)


def test_nonexistent_mle_is_reported_without_standard_errors():
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + kstar(2)").fit(_prism(), method="mcmc_mle", generator=torch.Generator().manual_seed(4))
    assert "does not exist" in _messages(record)
    assert fit.mle_exists is False
    assert not fit.converged
    assert np.all(np.isnan(fit.stderr)) and np.all(np.isnan(fit.z)) and np.all(np.isnan(fit.pvalues))
    assert not fit.stderr_reliable
    text = fit.summary()
    assert "does not exist" in text and "NOT converged" in text
    table = [line for line in text.splitlines() if line.startswith(("edges ", "kstar2 "))]
    assert len(table) == 2 and all("inf" not in line and line.count("NA") == 4 for line in table), table
    d = fit.as_dict()
    assert d["stderr"] == [None, None] and d["mle_exists"] is False
    # the recession direction: the likelihood grows along u with u . (s - s_obs) <= 0 for every graph
    u = np.asarray(fit.diagnostics["recession_direction"])
    assert u.shape == (2,) and u[1] < 0 < u[0]


def test_existing_mle_is_not_flagged_as_nonexistent():
    """The same exact check on the graph of tests/test_ergm_mcmc_mle.py (interior observed statistics)."""
    g = nx.Graph()
    g.add_nodes_from(range(6))
    g.add_edges_from([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (2, 4), (4, 5)])
    fit = ERGM("edges + kstar(2)").fit(g, method="mcmc_mle", generator=torch.Generator().manual_seed(5))
    assert fit.mle_exists is True and fit.converged and fit.stderr_reliable


def test_invert_information_warns_and_flags_a_singular_matrix():
    from ebmlab.ergm.estimation.information import invert_information

    good = np.array([[2.0, 0.5], [0.5, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inv, reliable, cond = invert_information(good, where="test")
    np.testing.assert_allclose(inv @ good, np.eye(2), atol=1e-12)
    assert reliable and cond == pytest.approx(np.linalg.cond(good))
    bad = np.array([[1.0, 2.0], [2.0, 4.0]])  # rank 1: the second statistic is twice the first
    with pytest.warns(UserWarning, match=r"test: the information matrix is singular.*condition number"):
        inv, reliable, cond = invert_information(bad, where="test", labels=["a", "b"])
    assert not reliable and not np.isfinite(cond) or cond > 1e12
    np.testing.assert_allclose(inv, np.linalg.pinv(bad), atol=1e-12)
    with pytest.raises(Exception, match="square"):
        invert_information(np.ones((2, 3)), where="test")


def test_mple_with_linearly_dependent_statistics_marks_standard_errors_unreliable():
    """kstar(1) counts every tie twice: the change statistics are collinear with edges, the information is
    singular, and the standard errors must not be reported as if they were fine."""
    g = nx.karate_club_graph()
    with pytest.warns(UserWarning, match="singular"):
        fit = ERGM("edges + kstar(1)").fit(g, method="mple")
    assert not fit.stderr_reliable
    assert "unreliable" in fit.summary()
    assert fit.as_dict()["stderr_reliable"] is False


def test_well_posed_fit_has_reliable_standard_errors():
    fit = ERGM("edges + triangle").fit(nx.florentine_families_graph(), method="mple")
    assert fit.stderr_reliable and "unreliable" not in fit.summary()


def test_boundary_observation_on_a_larger_graph_is_reported():
    """The 7-cycle (21 dyads, too many to enumerate here) under edges + kstar(2): 7 ties with all degrees 2
    have the fewest 2-stars possible (7) and (7, 7) is a vertex of the hull, so the MLE does not exist.
    Without enumeration the fit must still say that no simulated graph ever went beyond the observed
    statistics and that the standard errors are unreliable, instead of a silent non-convergence."""
    with pytest.warns(UserWarning) as record:
        fit = ERGM("edges + kstar(2)").fit(nx.cycle_graph(7), method="mcmc_mle",
                                           generator=torch.Generator().manual_seed(7))
    assert "the MLE may not exist" in _messages(record)
    assert not fit.converged and not fit.stderr_reliable and fit.mle_exists is None
    u = np.asarray(fit.diagnostics["boundary_direction"])
    assert u[1] < 0 < u[0]
    text = fit.summary()
    assert "unreliable" in text and "may not exist" in text
