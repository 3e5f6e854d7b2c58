"""The VP controlled chain, its exact path weights, and the log-variance / reverse-KL losses."""
import math

import pytest
import torch

from ebmlab import ConfigError
from ebmlab.diffusion import FourierControl, VPSchedule, kl_loss, log_variance_loss, simulate
from ebmlab.energies import FunctionEnergy, Gaussian


class LinearControl(torch.nn.Module):
    """u(x, t_k) = θ_k x + b_k (one scalar pair per step)."""

    uses_energy_grad = False

    def __init__(self, theta, bias):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.as_tensor(theta, dtype=torch.float64).clone())
        self.bias = torch.nn.Parameter(torch.as_tensor(bias, dtype=torch.float64).clone())

    def forward(self, x, k, grad_u=None):
        return self.theta[k] * x + self.bias[k]


def _log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def test_schedule_matches_linear_beta():
    sch = VPSchedule(4)
    assert sch.dt == 0.25
    # midpoints of the generative steps are at noising times .875, .625, .375, .125
    expected = [0.1 + s * 9.9 for s in (0.875, 0.625, 0.375, 0.125)]
    assert torch.allclose(sch.beta, torch.tensor(expected, dtype=torch.float64))
    assert torch.allclose(sch.a ** 2 + sch.s ** 2, torch.ones(4, dtype=torch.float64))


def test_two_step_path_weight_by_hand():
    """K = 2, d = 1, u = θ_k x + b_k, U(x) = (x - 1)² + .3: every density written out in full."""
    sch = VPSchedule(2)
    theta, bias = [0.4, -0.7], [0.2, 0.5]
    control = LinearControl(theta, bias)
    energy = FunctionEnergy(lambda x: ((x - 1.0) ** 2).sum(-1) + 0.3)
    x0, xi = 0.8, [-1.1, 0.6]
    paths = simulate(control, energy, sch, 1, 1, mode="eval", dtype=torch.float64,
                     x0=torch.tensor([[x0]], dtype=torch.float64),
                     noise=torch.tensor(xi, dtype=torch.float64).reshape(2, 1, 1))
    dt = 0.5
    log_p, log_q, x = 0.0, 0.0, x0
    for k, beta in enumerate([0.1 + 0.75 * 9.9, 0.1 + 0.25 * 9.9]):
        u = theta[k] * x + bias[k]
        var = 1.0 - math.exp(-beta * dt)
        mean = x + dt * (0.5 * beta * x + math.sqrt(beta) * u)
        x_new = mean + math.sqrt(var) * xi[k]
        log_p += _log_normal(x_new, mean, var)  # generative kernel p_u(x_{k+1} | x_k)
        log_q += _log_normal(x, math.exp(-0.5 * beta * dt) * x_new, var)  # noising kernel q(x_k | x_{k+1})
        x = x_new
    expected = (-((x - 1.0) ** 2) - 0.3 + log_q) - (_log_normal(x0, 0.0, 1.0) + log_p)
    assert paths.x.item() == pytest.approx(x, abs=1e-12)
    assert paths.log_weight.item() == pytest.approx(expected, abs=1e-12)
    # the four accumulated terms add up, and on-policy (eval) paths carry no running-vs-reference mismatch
    total = paths.running + paths.stochastic + paths.reference + paths.terminal
    assert total.item() == pytest.approx(expected, abs=1e-12)
    assert paths.terminal.item() == pytest.approx(-((x - 1.0) ** 2) - 0.3 - _log_normal(x0, 0.0, 1.0), abs=1e-12)


def _optimal_theta(sch):
    # the reversed noising chain of the stationary N(0, I): x_{k+1} | x_k ~ N(a_k x_k, s_k²)
    return (sch.a - 1.0 - 0.5 * sch.beta * sch.dt) / (sch.dt * sch.sigma)


def test_log_variance_vanishes_at_the_closed_form_optimum():
    """Target N(0, I) e^{-c}: the optimal control θ*_k x is linear; LV = 0 and ∇LV = 0 there, > 0 elsewhere."""
    d, c0 = 3, 1.7
    log_z = 0.5 * d * math.log(2 * math.pi) - c0
    energy = FunctionEnergy(lambda x: 0.5 * (x * x).sum(-1) + c0)
    sch = VPSchedule(20)
    theta = _optimal_theta(sch)
    g = torch.Generator().manual_seed(0)
    control = LinearControl(theta, torch.zeros(20))
    p = simulate(control, energy, sch, 512, d, mode="log_variance", generator=g, dtype=torch.float64)
    assert torch.allclose(p.log_weight, torch.full_like(p.log_weight, log_z), atol=1e-10, rtol=0)
    loss = log_variance_loss(p.log_weight)
    loss.backward()
    assert float(loss.detach()) < 1e-20
    assert float(control.theta.grad.abs().max()) < 1e-9 and float(control.bias.grad.abs().max()) < 1e-9

    for shift in (0.3, -0.2):
        off = LinearControl(theta + shift, torch.zeros(20))
        p = simulate(off, energy, sch, 512, d, mode="log_variance", generator=g, dtype=torch.float64)
        loss = log_variance_loss(p.log_weight)
        loss.backward()
        assert float(loss.detach()) > 1e-3
        assert float(off.theta.grad.norm()) > 1e-3


def test_kl_loss_is_tight_at_the_optimum_and_an_upper_bound_elsewhere():
    d, c0 = 2, -0.4
    log_z = 0.5 * d * math.log(2 * math.pi) - c0
    energy = FunctionEnergy(lambda x: 0.5 * (x * x).sum(-1) + c0)
    sch = VPSchedule(20)
    g = torch.Generator().manual_seed(1)
    p = simulate(LinearControl(_optimal_theta(sch), torch.zeros(20)), energy, sch, 256, d, mode="kl", generator=g,
                 dtype=torch.float64)
    assert float(kl_loss(p.log_weight).detach()) == pytest.approx(-log_z, abs=1e-10)
    p = simulate(LinearControl(_optimal_theta(sch) + 0.3, torch.full((20,), 0.2)), energy, sch, 4000, d, mode="kl",
                 generator=g, dtype=torch.float64)
    neg_elbo = -p.log_weight.detach()
    se = float(neg_elbo.std() / math.sqrt(4000))
    assert float(neg_elbo.mean()) > -log_z + 5 * se  # KL > 0, by more than five standard errors


def test_importance_weights_are_unbiased_for_an_untrained_control():
    """E[w] = Z for any control: log Ẑ of 20,000 paths within 4 SE of the exact log Z (Gaussian target)."""
    from ebmlab.diffusion import log_z_from_log_weights

    target = Gaussian([0.5, -0.3], [0.6, 1.4])  # Z = 1 ...
    offset = 2.5  # ... shifted: U + 2.5 has log Z = -2.5
    energy = FunctionEnergy(lambda x: target(x) + offset)
    sch = VPSchedule(10)
    control = FourierControl(2, sch, use_energy_grad=False, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        control.net[-1].bias.fill_(0.1)  # a deliberately wrong control
    p = simulate(control, energy, sch, 20000, 2, mode="eval", generator=torch.Generator().manual_seed(2),
                 dtype=torch.float64)
    est, se = log_z_from_log_weights(p.log_weight)
    assert 0 < se < 0.05
    assert abs(est - (-offset)) < 4 * se


def test_bad_mode_and_noise_shape_are_config_errors():
    sch = VPSchedule(3)
    energy = FunctionEnergy(lambda x: (x * x).sum(-1))
    ctl = LinearControl([0.0] * 3, [0.0] * 3)
    with pytest.raises(ConfigError, match="mode must be one of"):
        simulate(ctl, energy, sch, 4, 1, mode="lv")
    with pytest.raises(ConfigError, match="noise must have shape"):
        simulate(ctl, energy, sch, 4, 1, noise=torch.zeros(2, 4, 1))
    with pytest.raises(ConfigError, match="beta_max must be >= beta_min"):
        VPSchedule(10, beta_min=2.0, beta_max=1.0)


def test_score_interpolation_control_at_initialisation_and_unbiased_weights():
    """At initialisation the interpolated control is σ[(1 - t)(-x) + t clip(-∇U)] exactly; its importance weights
    stay unbiased (log Ẑ within 4 SE of the exact log Z of a shifted Gaussian)."""
    from ebmlab.diffusion import log_z_from_log_weights

    target = Gaussian([1.0, -0.5], [0.5, 2.0])
    offset = -1.25
    energy = FunctionEnergy(lambda x: target(x) + offset)
    sch = VPSchedule(10)
    clip = 1.5
    control = FourierControl(2, sch, score_clip=clip, score_interpolation=True,
                             generator=torch.Generator().manual_seed(0)).double()
    x = 3.0 * torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grad = energy.energy_and_grad(x)[1]
    for k in (0, 4, 9):
        t, sig = float(sch.t[k]), float(sch.sigma[k])
        expected = sig * ((1 - t) * (-x) + t * (-grad).clamp(-clip, clip))
        assert torch.allclose(control(x, k, grad), expected, atol=1e-12)
    assert (-grad).abs().max() > clip  # the clip is exercised
    p = simulate(control, energy, sch, 20000, 2, mode="eval", generator=torch.Generator().manual_seed(2),
                 dtype=torch.float64)
    est, se = log_z_from_log_weights(p.log_weight)
    assert 0 < se < 0.05
    assert abs(est - (-offset)) < 4 * se
    with pytest.raises(ConfigError, match="score_interpolation=True needs use_energy_grad=True"):
        FourierControl(2, sch, use_energy_grad=False, score_interpolation=True)
    with pytest.raises(ConfigError, match="score_interpolation must be true or false"):
        FourierControl(2, sch, score_interpolation="yes")

