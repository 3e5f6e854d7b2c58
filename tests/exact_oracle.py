"""Brute-force test oracle, independent of the library: the exact MLE of an exponential family by enumeration.

For the statistics S[k] of every state k and target moments t (observed statistics, or their data mean), Newton's
method on l(θ) = θ·t − log Σ_k exp(θ·S[k]) converges to the MLE when it exists.
"""
import numpy as np
from scipy.special import logsumexp

from ebmlab.ergm import ERGM


def newton_mle(S, t, iters=60, atol=1e-8):
    """(θ̂, inverse information I(θ̂)⁻¹, log Σ_k exp(θ̂·S[k])) for all-state statistics S [K, p] and moments t [p]."""
    theta = np.zeros(S.shape[1])
    for _ in range(iters):
        lw = S @ theta
        w = np.exp(lw - logsumexp(lw))
        m = w @ S
        cov = (S - m).T @ ((S - m) * w[:, None])
        theta = theta + np.linalg.solve(cov, t - m)
    assert np.allclose(m, t, atol=atol)  # the score vanishes: a genuine maximiser
    return theta, np.linalg.inv(cov), float(logsumexp(S @ theta))


def ergm_exact_mle(formula, graph):
    """Exact MLE of an undirected ERGM on ``graph`` by enumerating all 2^D graphs on its nodes:
    (θ̂, standard errors, log-likelihood)."""
    bound = ERGM(formula).bind(graph)
    n, D = graph.number_of_nodes(), bound.dyads.n_dyads
    Y = ((np.arange(2 ** D)[:, None] >> np.arange(D)) & 1).astype(float)
    A = np.zeros((2 ** D, n, n))
    A[:, bound.dyads.tail, bound.dyads.head] = Y
    A[:, bound.dyads.head, bound.dyads.tail] = Y
    s0 = bound.observed_statistics()
    theta, inv_info, log_z = newton_mle(bound.statistics(A), s0)
    return theta, np.sqrt(np.diag(inv_info)), float(theta @ s0 - log_z)
