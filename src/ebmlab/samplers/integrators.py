"""Hamiltonian integrators shared by HMC and kinetic (underdamped) Langevin.

Phase space is (x, p) with Hamiltonian H(x, p) = U(x) + K(p), K(p) = ½ pᵀ M⁻¹ p for a diagonal
(or scalar) mass M. The pieces follow the splitting notation of Leimkuhler & Matthews (2013,
"Rational construction of stochastic numerical methods for molecular sampling", AMRX):

- **B** (kick):  p <- p - dt · grad U(x)                            :func:`momentum_update`
- **A** (drift): x <- x + dt · M⁻¹ p                                :func:`position_update`
- **O** (Ornstein–Uhlenbeck, exact): p <- c p + sqrt(1 - c²) M^½ xi, c = exp(-gamma dt)
                                                                     :func:`ou_momentum_update`

:func:`leapfrog` composes B(h/2) A(h) B(h/2) ``n_leapfrog`` times (Störmer–Verlet; Duane et al. 1987, Neal 2011,
"MCMC using Hamiltonian dynamics"): symplectic, time-reversible, energy error O(h²) over a fixed
time. Every function returns new tensors and never modifies its inputs.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .._core.errors import ConfigError
from .accept import event_sum
from .base import per_chain


def resolve_mass(mass, like: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Turn a user mass (None, positive scalar or positive tensor broadcastable to the event shape)
    into ``(inv_mass, sqrt_mass)`` on ``like``'s dtype and device; ``(None, None)`` for M = I."""
    if mass is None:
        return None, None
    m = torch.as_tensor(mass, dtype=like.dtype, device=like.device)
    event_shape = like.shape[1:]
    try:
        ok = torch.broadcast_shapes(m.shape, event_shape) == event_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ConfigError(
            f"mass of shape {tuple(m.shape)} does not broadcast to the event shape {tuple(event_shape)}; "
            "use a scalar or a tensor of the event shape"
        )
    return 1.0 / m, torch.sqrt(m)


def check_mass(mass):
    """Validate a user mass: None, or a finite positive scalar/tensor (ConfigError otherwise)."""
    if mass is None:
        return None
    try:
        m = torch.as_tensor(mass, dtype=torch.float64)
    except Exception:  # noqa: BLE001 - anything unconvertible is a config error
        raise ConfigError(f"mass must be None, a positive number or a positive tensor, got {mass!r}") from None
    if m.numel() == 0 or not bool(torch.isfinite(m).all()) or not bool((m > 0).all()):
        raise ConfigError(f"mass must be finite and > 0 everywhere, got {mass!r}")
    return mass if isinstance(mass, torch.Tensor) else (float(mass) if m.ndim == 0 else m)


def position_update(x: torch.Tensor, p: torch.Tensor, dt, inv_mass: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A step: x + dt · M⁻¹ p (dt a float, or a Tensor[chains] of per-chain step sizes)."""
    if isinstance(dt, torch.Tensor):
        dt = per_chain(dt, x)
        return x + dt * p if inv_mass is None else x + dt * inv_mass * p
    if inv_mass is None:
        return torch.add(x, p, alpha=dt)
    return x + dt * inv_mass * p


def momentum_update(p: torch.Tensor, grad: torch.Tensor, dt) -> torch.Tensor:
    """B step: p - dt · grad U(x) (dt a float, or a Tensor[chains])."""
    if isinstance(dt, torch.Tensor):
        return p - per_chain(dt, p) * grad
    return torch.add(p, grad, alpha=-dt)


def kinetic_energy(p: torch.Tensor, inv_mass: Optional[torch.Tensor] = None) -> torch.Tensor:
    """K(p) = ½ pᵀ M⁻¹ p per chain: Tensor[chains, *event] -> Tensor[chains]."""
    pp = p * p if inv_mass is None else p * p * inv_mass
    return 0.5 * event_sum(pp)


def sample_momentum(
    like: torch.Tensor, sqrt_mass: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """p ~ N(0, M), one row per chain, shaped like ``like``."""
    p = torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)
    return p if sqrt_mass is None else p * sqrt_mass


def ou_momentum_update(
    p: torch.Tensor,
    friction: float,
    dt: float,
    sqrt_mass: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """O step, the exact solution of dp = -gamma p dt + sqrt(2 gamma) M^½ dW over time dt:

    p <- c p + sqrt(1 - c²) M^½ xi,  c = exp(-gamma dt),  xi ~ N(0, I).
    """
    c = math.exp(-friction * dt)
    noise = sample_momentum(p, sqrt_mass, generator)
    return torch.add(p * c, noise, alpha=math.sqrt(max(1.0 - c * c, 0.0)))


def leapfrog(
    energy,
    x: torch.Tensor,
    p: torch.Tensor,
    grad: torch.Tensor,
    step_size,
    n_leapfrog: int,
    inv_mass: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_leapfrog`` leapfrog (Störmer–Verlet) steps of size h for H = U(x) + ½ pᵀ M⁻¹ p:

        p_{1/2} = p_0 - (h/2) grad U(x_0)
        x_1     = x_0 + h M⁻¹ p_{1/2}
        p_1     = p_{1/2} - (h/2) grad U(x_1)

    with consecutive half kicks merged into full kicks (``step_size`` a float, or a Tensor[chains] of per-chain
    step sizes). Costs exactly ``n_leapfrog`` calls of
    ``energy.energy_and_grad`` (the gradient at the start, ``grad``, is given).

    Returns
    -------
    x, p, energy, grad
        End point, end momentum, U and grad U at the end point.
    """
    h = step_size if isinstance(step_size, torch.Tensor) else float(step_size)
    p = momentum_update(p, grad, 0.5 * h)
    u = None
    for i in range(n_leapfrog):
        x = position_update(x, p, h, inv_mass)
        u, grad = energy.energy_and_grad(x)
        p = momentum_update(p, grad, h if i < n_leapfrog - 1 else 0.5 * h)
    return x, p, u, grad
