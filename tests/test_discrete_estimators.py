"""Every discrete estimator recovers the couplings of a small random Ising model.

Set-up: 8 spins, J_ij ~ N(0, 0.4^2), h_i ~ N(0, 0.2^2), n = 5000 exact samples (enumeration of the
256 states).  The reference is the exact maximum-likelihood estimate, computed by minimising
mean U(data) + log Z with exact log Z (LBFGS); its own RMSE to the true J is about 0.028 here (the
statistical error at n = 5000).  Every consistent estimator must land within TOL_MLE of the MLE
(RMSE over the 64 entries of J) and within TOL_TRUE of the truth; an untrained model (J = 0) has
RMSE about 0.27, so the tolerances are far from vacuous.  Pooling ED does not identify J (see
PoolingPerturbation): it is tested for what it guarantees, the conditional law p(x | g(x)).
"""
import math

import pytest
import torch

from ebmlab.energies import BernoulliNoise
from ebmlab.energies.ising import Ising
from ebmlab.metrics.exact import enumerate_states, exact_log_z
from ebmlab.objectives import PseudoLikelihood, build
from ebmlab.objectives.contrastive_divergence import PersistentCD
from ebmlab.objectives.discrete_perturbations import PoolingPerturbation
from ebmlab.objectives.mcmc_mle import MCMCMLE
from ebmlab.objectives.nce import NoiseContrastiveEstimation
from ebmlab.samplers import Gibbs, GibbsWithGradients

D, N = 8, 5000
TOL_MLE = 0.02    # RMSE(J_hat, J_MLE): optimisation + Monte Carlo error of the estimator
TOL_TRUE = 0.05   # RMSE(J_hat, J_true): the MLE itself is at 0.028
TOL_MLE_MCMC = 0.03  # MCMC-MLE: the reference sample adds its own Monte Carlo error


def _rmse(a, b):
    return float(((a - b) ** 2).mean().sqrt())


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    J = torch.randn(D, D, generator=g, dtype=torch.float64) * 0.4
    J = torch.triu(J, 1)
    J = J + J.T
    h = torch.randn(D, generator=g, dtype=torch.float64) * 0.2
    true = Ising(J, h)
    xs = enumerate_states(D)
    p = torch.softmax(-true(xs), 0)
    data = xs[torch.multinomial(p, N, replacement=True, generator=g)]
    mle = Ising(torch.zeros(D, D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64), learnable=True)
    opt = torch.optim.LBFGS(mle.parameters(), max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = mle(data).mean() + exact_log_z(mle)
        loss.backward()
        return loss

    opt.step(closure)
    # the MLE of an exponential family matches moments: check the reference itself
    s_data = (2 * data - 1)
    pm = torch.softmax(-mle(xs).detach(), 0)
    s_all = 2 * xs - 1
    torch.testing.assert_close(s_all.T @ (pm[:, None] * s_all), s_data.T @ s_data / N, atol=1e-7, rtol=0)
    return {"J": J, "h": h, "true": true, "data": data, "J_mle": mle.J.detach(), "xs": xs}


def _train(obj, data, *, steps, batch_size=None, lr=0.05, seed=1):
    """Adam with a cosine learning-rate decay from J = 0, h = 0 (plain loop, independent of fit)."""
    e = Ising(torch.zeros(D, D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64), learnable=True)
    opt = torch.optim.Adam(list(e.parameters()) + list(obj.parameters()), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = data if batch_size is None else data[torch.randint(0, data.shape[0], (batch_size,), generator=g)]
        opt.zero_grad()
        out = obj(e, batch, generator=g)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        opt.step()
        sched.step()
    return e


ESTIMATORS = {
    "pseudo_likelihood": (lambda pb: PseudoLikelihood(), dict(steps=400), TOL_MLE),
    "pcd_gibbs": (lambda pb: PersistentCD(sampler=Gibbs(), steps=1, buffer_size=1000, reinit_prob=0.0,
                                          init="bernoulli"), dict(steps=500, batch_size=500), TOL_MLE),
    "pcd_gwg": (lambda pb: PersistentCD(sampler=GibbsWithGradients(), steps=8, buffer_size=1000, reinit_prob=0.0,
                                        init="bernoulli"), dict(steps=400, batch_size=500), TOL_MLE),
    "mcmc_mle": (lambda pb: MCMCMLE(sampler=Gibbs(), n_samples=20000, steps=10, burn_in=20),
                 dict(steps=300), TOL_MLE_MCMC),
    "nce": (lambda pb: NoiseContrastiveEstimation(noise=BernoulliNoise.from_data(pb["data"]), noise_ratio=4.0,
                                                  log_z_init=D * math.log(2)),  # log Z of the initial J = 0 model
            dict(steps=600, batch_size=1000), TOL_MLE),
    "ed_bernoulli": (lambda pb: build("ed", perturbation="bernoulli", flip_prob=0.1, m=32, w=1.0),
                     dict(steps=600, batch_size=250), TOL_MLE),
    "ed_neighbourhood": (lambda pb: build("ed", perturbation="neighbourhood", m=32, w=1.0),
                         dict(steps=600, batch_size=250), TOL_MLE),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_recovers_ising_couplings(problem, name):
    make, kw, tol_mle = ESTIMATORS[name]
    e = _train(make(problem), problem["data"], **kw)
    J_hat = e.J.detach()
    assert _rmse(J_hat, problem["J_mle"]) < tol_mle
    assert _rmse(J_hat, problem["J"]) < TOL_TRUE
    # sanity of the yardstick: the untrained model is far away
    assert _rmse(torch.zeros_like(J_hat), problem["J"]) > 5 * TOL_TRUE


def _conditional_log_prob(energy, xs, keys):
    """log p(x | g(x)) for all states: -U(x) - log sum_{x': g(x') = g(x)} exp(-U(x'))."""
    u = -energy(xs).detach()
    uniq, inv = torch.unique(keys, return_inverse=True)
    out = torch.empty_like(u)
    for k in range(len(uniq)):
        sel = inv == k
        out[sel] = u[sel] - torch.logsumexp(u[sel], 0)
    return out


def test_ed_pooling_recovers_the_conditional_law_given_the_pooled_value(problem):
    """Pooling ED's guarantee: p_hat(x | g(x)) = p(x | g(x)); directions it cannot see stay untouched."""
    pool = PoolingPerturbation(2)
    e = _train(build("ed", perturbation=pool, m=32, w=1.0), problem["data"], steps=600, batch_size=250)
    xs = problem["xs"]
    keys = pool.pooled(xs) @ (3.0 ** torch.arange(D // 2, dtype=torch.float64))
    p_true = torch.softmax(-problem["true"](xs), 0)
    lc_true = _conditional_log_prob(problem["true"], xs, keys)

    def expected_conditional_kl(model):
        return float((p_true * (lc_true - _conditional_log_prob(model, xs, keys))).sum())

    zero = Ising(torch.zeros(D, D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64))
    kl_hat, kl_zero = expected_conditional_kl(e), expected_conditional_kl(zero)
    # the statistical floor: about (identified dimensions) / (2 n) = 1e-3 nats; the untrained model: ~0.3
    assert kl_hat < 0.005
    assert kl_zero > 30 * 0.005
    # couplings inside a window of two sites are invisible to pooling (s_i s_j is fixed by the window
    # count): their gradient is zero up to rounding (~1e-17), so they stay at their initial value 0
    for i in range(0, D, 2):
        assert abs(float(e.J[i, i + 1].detach())) < 1e-6
