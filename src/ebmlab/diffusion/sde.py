r"""The variance-preserving reference SDE and the simulation of the controlled (generative) process.

Noising (reference) process, noising time s ∈ [0, 1] (Song et al. 2021, "Score-based generative modeling
through stochastic differential equations"):

    dY_s = -½ β(s) Y_s ds + √β(s) dW_s,      β(s) = β_min + s (β_max - β_min),  β_min = .1, β_max = 10,

started at the target Y_0 ~ exp(-U)/Z; Y_1 is close to the prior N(0, I).  The generative process runs in
generative time t = 1 - s from X_0 ~ N(0, I) and is steered by a control u(x, t) (Berner, Richter & Ullrich 2024,
"An optimal control perspective on diffusion-based generative modeling"; Richter & Berner 2024, "Improved
sampling via learned diffusions"):

    dX_t = ( ½ β̄ X_t + σ̄ u(X_t, t) ) dt + (noise),    σ̄ = √β̄.

Discretisation (K steps of length Δ = 1/K, generative times t_k = kΔ): on step k let
β̄_k = β(1 - (t_k + t_{k+1})/2) (the exact mean of the linear β over the step), a_k = exp(-½ β̄_k Δ) and
s_k² = 1 - a_k² (the exact Ornstein–Uhlenbeck transition of the noising SDE over the step). The generative step,
simulated with a reference control w (w = u for on-policy paths, w = u.detach() for the log-variance loss), is

    x_{k+1} = x_k + Δ (½ β̄_k x_k + σ̄_k w_k) + s_k ξ_k,     ξ_k ~ N(0, I),

and the reference (noising) kernel is q(x_k | x_{k+1}) = N(a_k x_{k+1}, s_k² I).  The **log path weight**

    log w(X) = [-U(x_K) + Σ_k log q(x_k | x_{k+1})] - [log N(x_0; 0, I) + Σ_k log p_u(x_{k+1} | x_k)]

is the exact discrete-time log Radon–Nikodym derivative of the (unnormalised) time-reversed noising chain with
respect to the u-controlled chain, so E_{X^u}[exp(log w)] = Z for every K (no discretisation bias in the
importance-weighted log Z) and log w is constant (= log Z) exactly when the controlled chain is the reversed
noising chain.  Writing c_k = Δ σ̄_k / s_k (≈ √Δ) it is accumulated, path by path, as the four terms of
Richter & Berner's eq. (the discrete forms of their running cost, stochastic integral and terminal term):

    running    = Σ_k  ½ c_k² |u_k|² - c_k² u_k · w_k                 (→ ∫ ½|u|² - u·w dt)
    stochastic = -Σ_k c_k u_k · ξ_k                                  (→ -∫ u · dW)
    reference  = Σ_k  ½ |ξ_k + c_k w_k|² - |x_k - a_k x_{k+1}|² / (2 s_k²)   (the reference kernel's log ratio)
    terminal   = -U(x_K) - log N(x_0; 0, I)

(the Gaussian normalising constants of p_u and q are equal, s_k² on both sides, and cancel).  The log-variance
loss is Var(log w) on paths of the detached reference control, the reverse-KL loss is E_{X^u}[-log w] (= KL + const)
with gradients through the simulated path (reparametrisation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive

_LOG_2PI = math.log(2.0 * math.pi)
MODES = ("log_variance", "kl", "eval")


class VPSchedule:
    r"""β(s) = β_min + s (β_max - β_min) on [0, 1] and its K-step discretisation (see the module docstring).

    Attributes (float64 tensors of length K, generative step k): ``t`` (t_k), ``beta`` (β̄_k), ``sigma`` (√β̄_k),
    ``a`` (a_k = exp(-½ β̄_k Δ)), ``s`` (s_k = √(1 - a_k²)), ``c`` (Δ σ̄_k / s_k); ``dt`` = Δ = 1/K.
    """

    def __init__(self, sde_steps: int = 100, beta_min: float = 0.1, beta_max: float = 10.0):
        self.sde_steps = check_int("sde_steps", sde_steps)
        self.beta_min = check_positive("beta_min", beta_min)
        self.beta_max = check_positive("beta_max", beta_max)
        if self.beta_max < self.beta_min:
            raise ConfigError(f"beta_max must be >= beta_min, got beta_max={beta_max!r} < beta_min={beta_min!r}")
        k = self.sde_steps
        self.dt = 1.0 / k
        self.t = torch.arange(k, dtype=torch.float64) / k
        s_mid = 1.0 - (self.t + 0.5 * self.dt)
        self.beta = self.beta_min + s_mid * (self.beta_max - self.beta_min)
        self.sigma = self.beta.sqrt()
        self.a = torch.exp(-0.5 * self.beta * self.dt)
        self.s = torch.sqrt(-torch.expm1(-self.beta * self.dt))
        self.c = self.dt * self.sigma / self.s

    def beta_at(self, s: torch.Tensor) -> torch.Tensor:
        """β(s) at noising time s."""
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def to_dict(self) -> dict:
        return {"sde_steps": self.sde_steps, "beta_min": self.beta_min, "beta_max": self.beta_max}


@dataclass
class Paths:
    """Result of :func:`simulate`: terminal draws ``x`` [n, d] and, per path [n], ``log_weight`` =
    ``running + stochastic + reference + terminal`` (module docstring), the energy at the terminal point
    ``energy`` (U(x_K)), the prior point ``x0`` and the number of energy evaluations per path."""

    x: torch.Tensor
    x0: torch.Tensor
    log_weight: torch.Tensor
    running: torch.Tensor
    stochastic: torch.Tensor
    reference: torch.Tensor
    terminal: torch.Tensor
    energy: torch.Tensor
    energy_evals_per_path: int


def log_standard_normal(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) per row."""
    return -0.5 * (x * x).sum(-1) - 0.5 * x.shape[-1] * _LOG_2PI


def simulate(
    control: Callable,
    energy,
    schedule: VPSchedule,
    n_paths: int,
    dim: int,
    *,
    mode: str = "eval",
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float32,
    device=None,
    noise: Optional[torch.Tensor] = None,
    x0: Optional[torch.Tensor] = None,
    terminal_energy: bool = True,
) -> Paths:
    r"""Simulate ``n_paths`` paths of the controlled chain (module docstring), batched over paths, and accumulate
    their log path weights.

    Parameters
    ----------
    control : callable
        ``control(x, k, grad_u)`` -> u(x, t_k) [n, d]; ``k`` is the step index (``schedule.t[k]`` its time) and
        ``grad_u`` is ∇U(x) when ``control.uses_energy_grad`` is true, else ``None``.
    energy : Energy
        The target U (``energy(x)`` -> [n]).
    mode : {"log_variance", "kl", "eval"}
        ``"log_variance"``: the path is simulated with the detached control w = u.detach() and carries no graph;
        u is re-attached in ``running`` and ``stochastic`` (the log-variance loss of Richter & Berner 2024).
        ``"kl"``: on-policy path w = u with gradients through the whole simulation (reverse KL).
        ``"eval"``: no gradients at all.
    noise : Tensor[K, n, d], optional
        The increments ξ_k (tests); default drawn from ``generator``.
    x0 : Tensor[n, d], optional
        Prior draws (tests); default N(0, I) from ``generator``.
    terminal_energy : bool
        Evaluate -U(x_K) into ``terminal`` (False: ``terminal`` = -log N(x_0; 0, I) only and ``energy`` is NaN;
        DiffEBM adds its own EBM term).
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    n_paths = check_int("n_paths", n_paths)
    k_steps = schedule.sde_steps
    if x0 is None:
        x = torch.randn(n_paths, dim, generator=generator, dtype=dtype, device=device)
    else:
        x = x0.to(dtype)
    if noise is not None and noise.shape != (k_steps, n_paths, dim):
        raise ConfigError(f"noise must have shape [{k_steps}, {n_paths}, {dim}], got {tuple(noise.shape)}")
    uses_grad = bool(getattr(control, "uses_energy_grad", False))
    x_start = x.detach()
    grad_ctx = torch.enable_grad() if mode != "eval" else torch.no_grad()
    zero = torch.zeros(n_paths, dtype=dtype, device=x.device)
    running, stochastic, reference = zero.clone(), zero.clone(), zero.clone()
    evals = 0
    with grad_ctx:
        for k in range(k_steps):
            a, s, c = float(schedule.a[k]), float(schedule.s[k]), float(schedule.c[k])
            beta, sig, dt = float(schedule.beta[k]), float(schedule.sigma[k]), schedule.dt
            grad_u = None
            if uses_grad:
                evals += 1
                grad_u = _energy_grad(energy, x, create_graph=(mode == "kl"))
            u = control(x, k, grad_u)
            w = u.detach() if mode == "log_variance" else u
            xi = noise[k].to(dtype) if noise is not None else torch.randn(
                x.shape, generator=generator, dtype=dtype, device=x.device)
            x_new = x + dt * (0.5 * beta * x + sig * w) + s * xi
            if mode == "log_variance":
                x_new = x_new.detach()
            running = running + (0.5 * c * c) * (u * u).sum(-1) - (c * c) * (u * w).sum(-1)
            stochastic = stochastic - c * (u * xi).sum(-1)
            r = x - a * x_new
            reference = reference + 0.5 * ((xi + c * w) ** 2).sum(-1) - (r * r).sum(-1) / (2.0 * s * s)
            x = x_new
        terminal = -log_standard_normal(x_start)
        u_end = torch.full((n_paths,), float("nan"), dtype=dtype, device=x.device)
        if terminal_energy:
            evals += 1
            u_end = energy(x) if mode == "kl" else energy(x.detach())
            if mode == "log_variance":
                u_end = u_end.detach()
            terminal = terminal - u_end
    log_w = running + stochastic + reference + terminal
    return Paths(x=x, x0=x_start, log_weight=log_w, running=running, stochastic=stochastic, reference=reference,
                 terminal=terminal, energy=u_end, energy_evals_per_path=evals)


def _energy_grad(energy, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """∇U(x): detached (and cheap) unless ``create_graph`` (reverse-KL paths need d∇U/dx)."""
    if not create_graph:
        return energy.energy_and_grad(x.detach())[1]
    xr = x if x.requires_grad else x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(energy(xr).sum(), xr, create_graph=True)
    return g


def log_variance_loss(log_weight: torch.Tensor) -> torch.Tensor:
    r"""The log-variance divergence of Richter & Berner (2024, "Improved sampling via learned diffusions"):
    the empirical variance (1/n) Σ (log w_i - mean log w)² of the log path weights under the reference paths.
    Shift-invariant, so the unknown log Z never enters; zero iff log w is a.s. constant (the optimal control)."""
    return ((log_weight - log_weight.mean()) ** 2).mean()


def kl_loss(log_weight: torch.Tensor) -> torch.Tensor:
    r"""Reverse KL(P_{X^u} ‖ P_target path) - log Z = E_{X^u}[-log w] (the negative ELBO), on on-policy paths."""
    return -log_weight.mean()
