"""Random-walk Metropolis (gradient-free)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._core.validation import check_positive, check_probability
from .accept import metropolis_hastings, sanitize_energy, select
from .base import SAMPLERS, Info, Sampler, SamplerState, per_chain
from .initial_state import initial_state


@SAMPLERS.register("rwm")
class RandomWalkMetropolis(Sampler):
    r"""Random-walk Metropolis (Metropolis et al. 1953) with a Gaussian proposal:

    .. math:: y = x + s\,\xi,\ \xi \sim N(0, I), \qquad \log r = U(x) - U(y)

    (the proposal is symmetric, so its densities cancel), accepted per chain with probability
    min(1, r). Gradient-free: ``state.grad`` is ``None`` and each step costs exactly one call of
    ``energy(x)`` (``Info.n_grad_evals`` counts these energy evaluations), plus one at init.

    Parameters
    ----------
    step_size : float
        Proposal standard deviation s > 0 (initial value when adapted).
    target_accept : float
        Target of dual averaging; 0.234 is optimal in high dimension (Roberts, Gelman & Gilks 1997).
    """

    name = "rwm"
    uses_grad = False
    adaptive = True
    per_chain_step_size = True

    def __init__(self, step_size: float = 0.5, target_accept: float = 0.234):
        self.step_size = check_positive("step_size", step_size)
        self.target_accept = check_probability("target_accept", target_accept, open_low=True, open_high=True)

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        return initial_state(energy, x0, self.step_size, with_grad=False)

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        s = state.step_size
        x, u_x = state.x, state.energy
        xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        y = torch.add(x, xi, alpha=s) if not isinstance(s, torch.Tensor) else x + per_chain(s, x) * xi
        with torch.no_grad():
            u_y = energy(y)
        u_y, divergent = sanitize_energy(u_y)  # non-finite -> +inf: rejected
        accepted, rate = metropolis_hastings(u_x - u_y, generator)
        new = SamplerState(
            x=select(accepted, y, x), energy=torch.where(accepted, u_y, u_x), grad=None, step_size=s, extra=state.extra
        )
        return new, Info(acceptance_rate=rate, accepted=accepted, divergent=divergent, step_size=s, n_grad_evals=1)
