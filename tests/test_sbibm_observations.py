"""ebmlab's sbibm simulators against sbibm's own observations.

sbibm ships, for each task, ten pairs (θ*, x_o) drawn by *its* simulator (copied as numbers into
``ebmlab.sbi.sbibm_observations``).  If ebmlab's simulator is the same law, x_o is a typical draw of ebmlab's
simulator at θ*: the probability-integral transform p = P(S(X) ≤ S(x_o)), X ~ simulate(θ*), of a statistic S is
uniform on [0, 1].  S is the exact log-likelihood (every task where it is a density of x; for bernoulli_glm it is only
known up to a term of x alone, so S is the Mahalanobis distance to the simulated mean there).  A simulator with the
wrong noise scale, mean map or link gives p ≈ 0 or ≈ 1 for most observations.

Checks, with a fixed generator: sbibm's x_o has a finite likelihood at its θ*; no observation is atypically
unlikely (p ≥ 1e-4, resolution 1/20,000); and Fisher's combination of a task's ten p-values, −2 Σ log p ~ χ²₂₀, is
not significant at 10⁻³ in either tail (lower tail: x_o too unlikely = a simulator narrower than sbibm's; upper
tail, with 1 − p: too typical = wider).  Measured power of ten observations: the two_moons radius noise at 2× its
standard deviation gives a tail probability 6·10⁻⁵ (caught), at 0.5× 0.005 (not caught); gaussian_linear's noise
variance at 0.5× or 0.7× gives 10⁻¹² and 4·10⁻⁵ (caught), at 1.4× or 2× 0.5 and 0.016 (not caught): the test
catches wrong maps, supports and gross scale errors, not a noise scale off by a factor below about 2.
"""

import math

import pytest
import torch
from scipy.stats import chi2

from ebmlab import ConfigError
from ebmlab.sbi import get_task
from ebmlab.sbi.sbibm_observations import OBSERVATIONS, sbibm_observation

N_SIM = 20_000


def _pit(task, theta, x_o, g):
    theta = torch.tensor(theta, dtype=torch.float64)
    x_o = torch.tensor(x_o, dtype=torch.float64)
    x = task.simulate(theta.expand(N_SIM, -1), generator=g).to(torch.float64)
    if task.name == "bernoulli_glm":
        mean, cov = x.mean(0), torch.cov(x.T)
        prec = torch.linalg.inv(cov)
        def stat(v):
            d = v - mean
            return -((d @ prec) * d).sum(-1)  # larger = more typical, like a log-likelihood
    else:
        def stat(v):
            return task.log_likelihood(v, theta.expand(v.shape[0], -1))
    s_o = stat(x_o[None])[0]
    assert torch.isfinite(s_o), f"{task.name}: sbibm's x_o has zero likelihood at its own θ*"
    return float((stat(x) <= s_o).double().mean())


@pytest.mark.parametrize("name", list(OBSERVATIONS))
def test_sbibm_observations_are_typical_draws_of_our_simulator(name):
    task = get_task(name)
    g = torch.Generator().manual_seed(0)
    ps = []
    for k in range(1, 11):
        theta, x_o = sbibm_observation(name, k)
        assert len(theta) == task.dim_theta and len(x_o) == task.dim_x
        assert bool(task.prior_log_prob(torch.tensor([theta], dtype=torch.float64)).isfinite().all())
        ps.append(_pit(task, theta, x_o, g))
    assert min(ps) >= 1e-4, f"{name}: PIT values {ps}"
    floor = 1.0 / N_SIM
    too_unlikely = chi2.sf(-2 * sum(math.log(max(p, floor)) for p in ps), 2 * len(ps))
    too_typical = chi2.sf(-2 * sum(math.log(max(1 - p, floor)) for p in ps), 2 * len(ps))
    assert min(too_unlikely, too_typical) >= 1e-3, f"{name}: PIT values {ps}"


def test_sbibm_observation_bad_input():
    with pytest.raises(ConfigError, match="unknown sbibm task 'nope'"):
        sbibm_observation("nope", 1)
    with pytest.raises(ConfigError, match="allowed 1-10"):
        sbibm_observation("slcp", 11)
