"""Unadjusted Langevin algorithm (ULA)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .._core.validation import check_positive
from .accept import always_accepted, non_finite
from .base import SAMPLERS, Info, Sampler, SamplerState
from .initial_state import initial_state


@SAMPLERS.register("ula")
class ULA(Sampler):
    r"""Unadjusted Langevin algorithm: the Euler–Maruyama discretisation of the Langevin diffusion
    dX = -grad U(X) dt + sqrt(2) dW (Roberts & Tweedie 1996; Parisi 1981):

    .. math:: x' = x - h \nabla U(x) + \sqrt{2h}\, \xi, \qquad \xi \sim N(0, I).

    There is no accept step, so the chain's stationary law is biased by O(h). For a Gaussian
    U(x) = ½ (x-μ)ᵀ P (x-μ) it is exactly N(μ, Σ_h) with, for each eigenvalue λ of P, variance
    2h / (1 - (1 - hλ)²) = 1 / (λ (1 - hλ/2)) along its eigenvector (stable for h < 2/λ_max).

    Cost: exactly one ``energy.energy_and_grad`` call per step (the gradient at the current point
    is cached in the state), plus one at :meth:`init`.

    Parameters
    ----------
    step_size : float
        h > 0.
    """

    name = "ula"
    uses_grad = True
    adaptive = False

    def __init__(self, step_size: float = 0.01):
        self.step_size = check_positive("step_size", step_size)

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        return initial_state(energy, x0, self.step_size, with_grad=True)

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        h = state.step_size
        x = state.x
        xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        x_new = torch.add(x, state.grad, alpha=-h).add_(xi, alpha=math.sqrt(2.0 * h))
        u, g = energy.energy_and_grad(x_new)
        ones, true = always_accepted(u)
        info = Info(
            acceptance_rate=ones,
            accepted=true,
            divergent=non_finite(u),
            step_size=h,
            n_grad_evals=1,
        )
        return SamplerState(x=x_new, energy=u, grad=g, step_size=h, extra=state.extra), info
