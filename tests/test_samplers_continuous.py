"""Statistical and numerical correctness of the continuous samplers (float64).

Moment tests: 512 independent chains started from the sampler's exact stationary law; each chain
is averaged over its draws, so the chain averages are iid and their standard deviation over
chains divided by sqrt(chains) is an honest Monte Carlo standard error (MCSE). Every moment
(3 means + 6 second moments per case) must satisfy |estimate - truth| / MCSE < Z_CRIT, with
Z_CRIT the two-sided normal quantile at family-wise level 1e-3, Bonferroni-corrected over all
moments of all cases in this file.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import norm

from ebmlab.energies import Energy
from ebmlab.metrics import mcse_mean
from ebmlab.samplers import HMC, MALA, ULA, KineticLangevin, RandomWalkMetropolis, build, sample
from ebmlab.samplers.adaptation import DualAveraging
from ebmlab.samplers.integrators import kinetic_energy, leapfrog

DT = torch.float64
MEAN = torch.tensor([1.0, -1.0, 0.5], dtype=DT)
PRECISION = torch.tensor([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=DT)
COV = torch.linalg.inv(PRECISION)

CASES = {
    "rwm": lambda: RandomWalkMetropolis(step_size=1.0),
    "ula": lambda: ULA(step_size=0.25),
    "mala": lambda: MALA(step_size=0.5),
    "hmc": lambda: HMC(step_size=0.3, n_leapfrog=5),
    "hmc_mass": lambda: HMC(step_size=0.3, n_leapfrog=5, mass=torch.tensor([2.0, 1.0, 0.5], dtype=DT)),
    "kinetic_langevin": lambda: KineticLangevin(step_size=0.2, friction=1.0),
}
N_MOMENTS = 3 + 6
FAMILY_ALPHA = 1e-3
Z_CRIT = float(norm.ppf(1 - FAMILY_ALPHA / (2 * N_MOMENTS * len(CASES))))  # ~4.3


class CorrelatedGaussian(Energy):
    """A user-defined energy with only ``forward``: U(x) = ½ (x-μ)ᵀ P (x-μ)."""

    def __init__(self, mean, precision):
        super().__init__()
        self.mean = mean
        self.precision = precision

    def forward(self, x):
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(-1)


def ula_stationary_cov(precision: torch.Tensor, h: float) -> torch.Tensor:
    """Σ_h = V diag(1 / (λ (1 - hλ/2))) Vᵀ, the exact stationary covariance of ULA on a Gaussian."""
    lam, vec = torch.linalg.eigh(precision)
    return vec @ torch.diag(1.0 / (lam * (1.0 - h * lam / 2.0))) @ vec.T


def draw_gaussian(mean, cov, n, generator):
    chol = torch.linalg.cholesky(cov)
    return mean + torch.randn(n, mean.numel(), dtype=DT, generator=generator) @ chol.T


def moment_z_scores(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """z = (estimate - truth) / MCSE for E[x_i] and E[x_i x_j] (i <= j), MCSE from chain averages."""
    draws, chains, d = x.shape
    iu = torch.triu_indices(d, d)
    second = (x.unsqueeze(-1) * x.unsqueeze(-2))[..., iu[0], iu[1]]  # (draws, chains, 6)
    per_chain = torch.cat([x.mean(0), second.mean(0)], dim=1)  # (chains, 9)
    truth_second = (cov + torch.outer(mean, mean))[iu[0], iu[1]]
    truth = torch.cat([mean, truth_second])
    est = per_chain.mean(0)
    mcse = per_chain.std(0) / math.sqrt(chains)
    return (est - truth) / mcse


@pytest.mark.parametrize("case", list(CASES))
def test_gaussian_moments_within_mcse(case):
    energy = CorrelatedGaussian(MEAN, PRECISION)
    sampler = CASES[case]()
    g = torch.Generator().manual_seed(1234)
    if case == "ula":
        target_cov = ula_stationary_cov(PRECISION, sampler.step_size)
    else:
        target_cov = COV
    x0 = draw_gaussian(MEAN, target_cov, 512, g)
    # burn-in: adapts MALA/HMC/RWM step sizes; for kinetic Langevin it also equilibrates the
    # momentum, which starts at zero (about 5 / (friction * h) = 25 steps suffice; we take 100).
    x, info = sample(energy, sampler, x0, steps=400, burn_in=100, generator=g)
    assert x.shape == (400, 512, 3) and x.dtype == DT
    assert info.divergences == 0
    z = moment_z_scores(x, MEAN, target_cov)
    assert torch.all(z.abs() < Z_CRIT), f"{case}: z-scores {z.tolist()} exceed {Z_CRIT:.2f}"
    # the ESS-based MCSE of ebmlab.metrics agrees with the between-chain MCSE (about 10% apart measured)
    between = x.mean(0).std(0) / math.sqrt(x.shape[1])
    ratio = mcse_mean(x) / between
    assert bool(((ratio > 0.75) & (ratio < 1.33)).all()), ratio
    if case == "ula":  # power check: ULA's O(h) bias is visible against the exact law
        assert moment_z_scores(x, MEAN, COV).abs().max() > Z_CRIT


def test_ula_bias_formula_matches_linear_recursion_and_vanishes():
    """Σ_h solves Σ = (I - hP) Σ (I - hP) + 2h I (the ULA recursion), and ||Σ_h - Σ|| = O(h)."""
    eye = torch.eye(3, dtype=DT)
    for h in (0.02, 0.1, 0.3):
        a = (eye - h * PRECISION).numpy()
        lyap = scipy.linalg.solve_discrete_lyapunov(a, 2 * h * np.eye(3))
        np.testing.assert_allclose(ula_stationary_cov(PRECISION, h).numpy(), lyap, rtol=1e-10, atol=1e-12)
    errs = [torch.linalg.matrix_norm(ula_stationary_cov(PRECISION, h) - COV).item() for h in (0.04, 0.02, 0.01, 0.005)]
    assert errs[-1] < 0.01 * torch.linalg.matrix_norm(COV).item()
    for a, b in zip(errs, errs[1:]):  # first order: halving h halves the bias
        assert 1.9 < a / b < 2.1


def baoab_stationary_cov(precision: np.ndarray, h: float, friction: float, mass: np.ndarray) -> np.ndarray:
    """Stationary covariance of the linear BAOAB recursion on z = (x, p) for U = ½ xᵀPx."""
    d = precision.shape[0]
    eye, zero = np.eye(d), np.zeros((d, d))
    minv = np.diag(1.0 / mass)
    b = np.block([[eye, zero], [-h / 2 * precision, eye]])
    a = np.block([[eye, h / 2 * minv], [zero, eye]])
    c = math.exp(-friction * h)
    o = np.block([[eye, zero], [zero, c * eye]])
    step = b @ a @ o @ a @ b
    noise = b @ a @ np.vstack([zero, math.sqrt(1 - c * c) * np.diag(np.sqrt(mass))])
    return scipy.linalg.solve_discrete_lyapunov(step, noise @ noise.T)


@pytest.mark.parametrize("h, friction", [(0.2, 1.0), (0.5, 0.3), (0.05, 10.0)])
def test_baoab_position_marginal_is_exact_for_gaussians(h, friction):
    """The claim in KineticLangevin's docstring: for a Gaussian target BAOAB's position marginal is
    exactly N(μ, P⁻¹) for any friction and stable h; only the momentum covariance is biased."""
    p = PRECISION.numpy()
    for mass in (np.ones(3), np.array([2.0, 1.0, 0.5])):
        sigma = baoab_stationary_cov(p, h, friction, mass)
        np.testing.assert_allclose(sigma[:3, :3], np.linalg.inv(p), rtol=1e-9, atol=1e-12)
        momentum_cov = sigma[3:, 3:]
        assert not np.allclose(momentum_cov, np.diag(mass), rtol=1e-3)  # the bias sits in p


@pytest.mark.parametrize("make", [lambda: MALA(step_size=0.05), lambda: HMC(step_size=0.05, n_leapfrog=4)])
def test_dual_averaging_reaches_target_acceptance(make):
    """After burn-in adaptation the mean acceptance is within ±0.05 of the target (10-D anisotropic Gaussian)."""
    d = 10
    scales = torch.logspace(-0.5, 0.5, d, dtype=DT)
    energy = CorrelatedGaussian(torch.zeros(d, dtype=DT), torch.diag(1.0 / scales**2))
    sampler = make()
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(256, d, dtype=DT, generator=g) * scales
    _, info = sample(energy, sampler, x0, steps=300, burn_in=500, generator=g)
    assert info.adapted
    assert info.step_size != sampler.step_size
    assert abs(info.acceptance_rate - sampler.target_accept) < 0.05, (info.acceptance_rate, info.step_size)


def test_dual_averaging_update_matches_algorithm_5():
    da = DualAveraging(0.8, gamma=0.05, t0=10.0, kappa=0.75)
    s0 = da.init(0.1)
    assert s0.mu == pytest.approx(math.log(1.0))
    s1 = da.update(s0, 0.5)
    hbar = (0.8 - 0.5) / 11.0
    assert s1.error_avg == pytest.approx(hbar)
    assert s1.log_step == pytest.approx(s0.mu - 1.0 / 0.05 * hbar)
    assert s1.log_step_avg == pytest.approx(s1.log_step)  # eta_1 = 1
    s2 = da.update(s1, 1.0)
    hbar2 = (1 - 1 / 12) * hbar + (0.8 - 1.0) / 12
    log2 = s0.mu - math.sqrt(2) / 0.05 * hbar2
    eta = 2 ** -0.75
    assert s2.log_step == pytest.approx(log2)
    assert s2.log_step_avg == pytest.approx(eta * log2 + (1 - eta) * s1.log_step_avg)
    assert da.final(s2) == pytest.approx(math.exp(s2.log_step_avg))
    # accepting more than the target pushes the step up; NaN counts as a rejection
    assert da.update(da.init(0.1), 1.0).step_size > da.update(da.init(0.1), 0.0).step_size
    assert da.update(da.init(0.1), float("nan")).step_size == da.update(da.init(0.1), 0.0).step_size


class Anharmonic(Energy):
    """U(x) = ½ xᵀPx + 0.1 Σ x⁴ (smooth, non-Gaussian)."""

    def forward(self, x):
        return 0.5 * ((x @ PRECISION) * x).sum(-1) + 0.1 * (x**4).sum(-1)


def _trajectory_max_energy_error(h: float, total_time: float = 2.0) -> float:
    energy = Anharmonic()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 3, dtype=DT, generator=g)
    p = torch.randn(64, 3, dtype=DT, generator=g)
    u, grad = energy.energy_and_grad(x)
    h0 = u + kinetic_energy(p)
    worst = torch.zeros(64, dtype=DT)
    for _ in range(round(total_time / h)):  # one leapfrog step at a time to see the whole trajectory
        x, p, u, grad = leapfrog(energy, x, p, grad, h, 1)
        worst = torch.maximum(worst, (u + kinetic_energy(p) - h0).abs())
    return worst.max().item()


def test_leapfrog_energy_error_is_second_order():
    errs = [_trajectory_max_energy_error(h) for h in (0.04, 0.02, 0.01)]
    for a, b in zip(errs, errs[1:]):
        assert 3.6 < a / b < 4.4, errs


def test_leapfrog_is_reversible():
    energy = Anharmonic()
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(32, 3, dtype=DT, generator=g)
    p0 = torch.randn(32, 3, dtype=DT, generator=g)
    inv_mass = torch.tensor([1.0, 0.5, 2.0], dtype=DT)
    _, grad0 = energy.energy_and_grad(x0)
    x1, p1, _, grad1 = leapfrog(energy, x0, p0, grad0, 0.1, 20, inv_mass)
    assert not torch.allclose(x1, x0)
    x2, p2, _, _ = leapfrog(energy, x1, -p1, grad1, 0.1, 20, inv_mass)
    torch.testing.assert_close(x2, x0, rtol=0, atol=1e-10)
    torch.testing.assert_close(-p2, p0, rtol=0, atol=1e-10)


class CountingGaussian(Energy):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return 0.5 * (x**2).sum(-1)


@pytest.mark.parametrize(
    "make, per_step",
    [
        (lambda: ULA(0.1), 1),
        (lambda: MALA(0.1), 1),
        (lambda: HMC(0.1, n_leapfrog=7), 7),
        (lambda: KineticLangevin(0.1), 1),
        (lambda: RandomWalkMetropolis(0.5), 1),
    ],
)
def test_evaluation_counts(make, per_step):
    energy = CountingGaussian()
    sampler = make()
    x, info = sample(energy, sampler, torch.zeros(16, 2, dtype=DT), steps=10, burn_in=5, generator=0)
    expected = 1 + per_step * 15
    assert energy.calls == expected
    assert info.n_grad_evals == expected


def test_sampling_leaves_no_graph_and_no_parameter_grads():
    from ebmlab.energies import MLPEnergy

    energy = MLPEnergy(2, hidden=(16,))
    for name in ("ula", "mala", "hmc", "kinetic_langevin", "rwm"):
        x, _ = sample(energy, build(name), torch.zeros(8, 2), steps=3, burn_in=2, generator=0)
        assert not x.requires_grad and x.grad_fn is None
    assert all(p.grad is None for p in energy.parameters())


def test_divergent_hmc_trajectories_are_rejected_and_flagged():
    energy = CorrelatedGaussian(torch.zeros(3, dtype=DT), 100.0 * torch.eye(3, dtype=DT))
    sampler = HMC(step_size=1.0, n_leapfrog=20)  # h * sqrt(100) = 10 >> 2: unstable
    state = sampler.init(energy, torch.full((8, 3), 0.1, dtype=DT))
    new, info = sampler.step(energy, state, generator=torch.Generator().manual_seed(0))
    assert bool(info.divergent.all()) and not bool(info.accepted.any())
    torch.testing.assert_close(new.x, state.x)
    assert torch.isfinite(new.energy).all()


def test_mala_rejects_proposals_with_infinite_energy():
    class HalfSpace(Energy):  # density supported on x_0 > 0 only
        def forward(self, x):
            u = 0.5 * (x**2).sum(-1)
            return torch.where(x[:, 0] > 0, u, torch.full_like(u, float("inf")))

    sampler = MALA(step_size=0.5)
    x, info = sample(HalfSpace(), sampler, torch.full((64, 2), 0.5, dtype=DT), steps=200, generator=0)
    assert bool((x[..., 0] > 0).all())
    assert info.divergences > 0


def test_mala_acceptance_matches_textbook_formula():
    """MALA's simplified log-ratio equals U(x) - U(y) + log q(x|y) - log q(y|x) with
    log q(b|a) = -|b - a + h grad U(a)|² / (4h), recomputed here from the same random draw."""
    energy = Anharmonic()
    h = 0.3
    x = torch.randn(64, 3, dtype=DT, generator=torch.Generator().manual_seed(8))
    sampler = MALA(step_size=h)
    state = sampler.init(energy, x)
    _, info = sampler.step(energy, state, generator=torch.Generator().manual_seed(9))
    xi = torch.randn(64, 3, dtype=DT, generator=torch.Generator().manual_seed(9))
    u_x, g_x = energy.energy_and_grad(x)
    y = x - h * g_x + math.sqrt(2 * h) * xi
    u_y, g_y = energy.energy_and_grad(y)
    log_q_fwd = -((y - x + h * g_x) ** 2).sum(-1) / (4 * h)
    log_q_bwd = -((x - y + h * g_y) ** 2).sum(-1) / (4 * h)
    expected = torch.exp(torch.clamp(u_x - u_y + log_q_bwd - log_q_fwd, max=0.0))
    torch.testing.assert_close(info.acceptance_rate, expected, rtol=1e-10, atol=1e-12)
    assert 0.05 < expected.mean() < 0.95  # a non-trivial mix of acceptances
