"""Metropolis-adjusted Langevin algorithm (MALA)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .._core.validation import check_positive, check_probability
from .accept import event_sum, metropolis_hastings, sanitize_energy, select
from .base import SAMPLERS, Info, Sampler, SamplerState, per_chain
from .initial_state import initial_state


@SAMPLERS.register("mala")
class MALA(Sampler):
    r"""Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996, Bernoulli 2(4)).

    Proposal (one ULA step) and Metropolis–Hastings correction:

    .. math::
        y = x - h \nabla U(x) + \sqrt{2h}\,\xi, \qquad
        \log q(y \mid x) = -\frac{\lVert y - x + h \nabla U(x)\rVert^2}{4h} = -\tfrac12 \lVert \xi \rVert^2,

        \log r = U(x) - U(y) + \log q(x \mid y) - \log q(y \mid x),

    accepted per chain with probability min(1, exp(log r)) (:mod:`ebmlab.samplers.accept`). The
    target exp(-U)/Z is exactly invariant for any h. Cost: exactly one ``energy_and_grad`` per
    step (at the proposal; the current point's energy and gradient are cached), plus one at init.
    Proposals with a non-finite energy are rejected and flagged ``divergent``.

    Parameters
    ----------
    step_size : float
        h > 0 (the initial value when the driver adapts it). ``state.step_size`` may also be a
        Tensor[chains] (one h per chain, ``ebmlab.sample(..., adapt="per_chain")``).
    target_accept : float
        Mean acceptance targeted by dual averaging during burn-in; 0.574 is optimal for MALA in
        high dimension (Roberts & Rosenthal 1998).
    """

    name = "mala"
    uses_grad = True
    adaptive = True
    per_chain_step_size = True

    def __init__(self, step_size: float = 0.1, target_accept: float = 0.574):
        self.step_size = check_positive("step_size", step_size)
        self.target_accept = check_probability("target_accept", target_accept, open_low=True, open_high=True)

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        return initial_state(energy, x0, self.step_size, with_grad=True)

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        h = state.step_size
        x, u_x, g_x = state.x, state.energy, state.grad
        xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        per = isinstance(h, torch.Tensor)  # one step size per chain
        if per:
            hb = per_chain(h, x)
            y = x - hb * g_x + torch.sqrt(2.0 * hb) * xi
        else:
            y = torch.add(x, g_x, alpha=-h).add_(xi, alpha=math.sqrt(2.0 * h))
        u_y, g_y = energy.energy_and_grad(y)
        u_y, divergent = sanitize_energy(u_y)  # non-finite -> +inf: rejected
        # log q(x|y) - log q(y|x) = ½|ξ|² - |h (g_x + g_y) - sqrt(2h) ξ|² / (4h)
        #                         = sqrt(h/2) · s·(ξ - sqrt(h/8) s),  s = g_x + g_y
        # (expanded so that the two O(d) terms never cancel numerically)
        s = g_x + g_y
        if per:
            w = xi - torch.sqrt(hb / 8.0) * s
            log_ratio = (u_x - u_y) + torch.sqrt(0.5 * h) * event_sum(s * w)
        else:
            w = torch.add(xi, s, alpha=-math.sqrt(h / 8.0))
            log_ratio = torch.add(u_x - u_y, event_sum(s * w), alpha=math.sqrt(0.5 * h))
        accepted, rate = metropolis_hastings(log_ratio, generator)
        new = SamplerState(
            x=select(accepted, y, x),
            energy=torch.where(accepted, u_y, u_x),
            grad=select(accepted, g_y, g_x),
            step_size=h,
            extra=state.extra,
        )
        return new, Info(acceptance_rate=rate, accepted=accepted, divergent=divergent, step_size=h, n_grad_evals=1)
