"""The sampler contract (BlackJAX's shape, in torch).

A sampler is a small kernel with explicit state::

    state = sampler.init(energy, x0)                      # SamplerState: x, energy, grad (cached)
    state, info = sampler.step(energy, state, generator=g)

Chains are batched on dim 0. ``step`` is pure: it never modifies ``state`` or its tensors in
place, so a caller may keep old states.  Hyper-parameters (step size, number of leapfrog steps)
live in the sampler; the current step size also lives in the state so that adaptation
(:mod:`ebmlab.samplers.adaptation`) can change it without touching the sampler.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

import torch

from .._core.registry import Registry

#: name -> sampler class; ``samplers.build("mala", step_size=0.1)``.
SAMPLERS = Registry("sampler")


@dataclass(frozen=True)
class SamplerState:
    """State of a batch of chains.

    Attributes
    ----------
    x : Tensor[chains, *event_shape]
        Current positions.
    energy : Tensor[chains]
        U(x), cached.
    grad : Tensor[chains, *event_shape] or None
        grad_x U(x), cached (``None`` for gradient-free samplers).
    step_size : float or Tensor[chains]
        Current step size (changed by adaptation during burn-in); one per chain for samplers with
        ``per_chain_step_size``.
    extra : dict
        Sampler-specific state (momentum of kinetic Langevin, buffers of discrete samplers...).
    """

    x: torch.Tensor
    energy: torch.Tensor
    grad: Optional[torch.Tensor] = None
    step_size: float = 0.0
    extra: Dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "SamplerState":
        return replace(self, **changes)


@dataclass(frozen=True)
class Info:
    """What one step did.

    Attributes
    ----------
    acceptance_rate : Tensor[chains]
        Metropolis–Hastings acceptance probability min(1, ratio) of the proposal (1 for
        samplers without an accept step). Its mean is what step-size adaptation targets.
    accepted : Tensor[chains] (bool)
        Whether each chain moved.
    divergent : Tensor[chains] (bool)
        Non-finite energy or an energy error above the divergence threshold (HMC).
    step_size : float
        Step size used.
    n_grad_evals : int
        Energy(-and-gradient) evaluations spent by this step (per batch of chains).
    """

    acceptance_rate: torch.Tensor
    accepted: torch.Tensor
    divergent: torch.Tensor
    step_size: float
    n_grad_evals: int


class Sampler:
    """Base class: subclasses implement :meth:`init` and :meth:`step`.

    Class attributes
    ----------------
    name : str
        Registry name.
    uses_grad : bool
        Whether the sampler needs grad_x U.
    adaptive : bool
        Whether the step size can be tuned toward a target acceptance (MALA, HMC, RWM).
    per_chain_step_size : bool
        Whether ``state.step_size`` may be a Tensor[chains] (one step size per chain, for
        ``ebmlab.sample(..., adapt="per_chain")``).
    """

    name: str = ""
    uses_grad: bool = True
    adaptive: bool = False
    per_chain_step_size: bool = False
    step_size: float = 0.0
    target_accept: Optional[float] = None

    def init(self, energy, x0: torch.Tensor) -> SamplerState:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement init(energy, x0)")

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement step(energy, state, generator)")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def per_chain(step_size, like: torch.Tensor):
    """A step size ready to multiply Tensor[chains, *event]: a float as is, a Tensor[chains] reshaped to
    [chains, 1, ..., 1]."""
    if isinstance(step_size, torch.Tensor):
        return step_size.reshape(step_size.shape + (1,) * (like.ndim - 1))
    return step_size


def build(name: str, **kwargs: Any) -> Sampler:
    """Build a registered sampler by name (``"rwm"``, ``"ula"``, ``"mala"``, ``"hmc"``, ...)."""
    return SAMPLERS.build(name, **kwargs)


def available() -> list:
    """Names of the registered samplers."""
    return SAMPLERS.names()
