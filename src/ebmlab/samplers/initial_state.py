"""Building the first :class:`SamplerState` of the continuous samplers from user input ``x0``."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from .._core.errors import DataError
from .base import SamplerState


def check_positions(x0: Any, name: str = "x0") -> torch.Tensor:
    """Validate initial positions: a floating-point tensor of shape [chains, *event_shape] with finite values."""
    if not isinstance(x0, torch.Tensor):
        raise DataError(f"{name} must be a torch.Tensor of shape [chains, *event_shape], got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor (float32 or float64), got dtype {x0.dtype}")
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise DataError(f"{name} must have shape [chains, *event_shape] with chains >= 1, got shape {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise DataError(f"{name} contains non-finite values (NaN or inf)")
    return x0


def initial_state(
    energy, x0: Any, step_size: float, *, with_grad: bool, extra: Optional[Dict[str, Any]] = None
) -> SamplerState:
    """Evaluate U (and grad U if ``with_grad``) once at ``x0`` and cache them in a new state.

    ``x0`` is detached (never modified); the energy must return one finite value per chain.
    """
    x = check_positions(x0).detach()
    with torch.no_grad():
        if with_grad:
            u, g = energy.energy_and_grad(x)
        else:
            u, g = energy(x), None
    if u.shape != x.shape[:1]:
        raise DataError(
            f"energy returned shape {tuple(u.shape)} for {x.shape[0]} chains; forward(x) must return Tensor[batch]"
        )
    if not bool(torch.isfinite(u).all()):
        raise DataError("the energy is not finite at some initial positions x0; start the chains where U(x0) is finite")
    return SamplerState(x=x, energy=u.detach(), grad=g, step_size=float(step_size), extra=extra or {})
