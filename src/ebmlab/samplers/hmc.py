"""Hamiltonian Monte Carlo with a fixed number of leapfrog steps."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._core.validation import check_int, check_positive, check_probability
from .accept import metropolis_hastings, non_finite, select
from .base import SAMPLERS, Info, Sampler, SamplerState
from .initial_state import initial_state
from .integrators import check_mass, kinetic_energy, leapfrog, resolve_mass, sample_momentum


@SAMPLERS.register("hmc")
class HMC(Sampler):
    r"""Hamiltonian Monte Carlo (Duane, Kennedy, Pendleton & Roweth 1987; Neal 2011, "MCMC using
    Hamiltonian dynamics", Handbook of MCMC ch. 5).

    Each step draws p ~ N(0, M), runs ``n_leapfrog`` leapfrog steps of size h
    (:func:`ebmlab.samplers.integrators.leapfrog`) on H(x, p) = U(x) + ½ pᵀ M⁻¹ p, and accepts the
    end point per chain with probability

    .. math:: \min\bigl(1, \exp(H(x, p) - H(x', p'))\bigr).

    A chain whose energy error H(x', p') - H(x, p) exceeds ``divergence_threshold`` or is not
    finite is rejected and flagged ``divergent``. Cost: exactly ``n_leapfrog`` calls of
    ``energy_and_grad`` per step (the gradient at the current point is cached), plus one at init.

    Parameters
    ----------
    step_size : float
        Leapfrog step h > 0 (initial value when adapted).
    n_leapfrog : int
        Leapfrog steps per trajectory, >= 1.
    mass : None, float or Tensor
        Diagonal mass matrix M (scalar or a positive tensor broadcastable to the event shape);
        ``None`` means M = I.
    target_accept : float
        Target of dual averaging (0.8, as in Stan; Betancourt et al. argue for 0.6–0.9).
    divergence_threshold : float
        Energy error above which a trajectory counts as divergent (1000, as in Stan).
    """

    name = "hmc"
    uses_grad = True
    adaptive = True
    per_chain_step_size = True

    def __init__(
        self,
        step_size: float = 0.1,
        n_leapfrog: int = 5,
        mass=None,
        target_accept: float = 0.8,
        divergence_threshold: float = 1000.0,
    ):
        self.step_size = check_positive("step_size", step_size)
        self.n_leapfrog = check_int("n_leapfrog", n_leapfrog, minimum=1)
        self.mass = check_mass(mass)
        self.target_accept = check_probability("target_accept", target_accept, open_low=True, open_high=True)
        self.divergence_threshold = check_positive("divergence_threshold", divergence_threshold)

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        state = initial_state(energy, x0, self.step_size, with_grad=True)
        inv_mass, sqrt_mass = resolve_mass(self.mass, state.x)
        return state.replace(extra={"inv_mass": inv_mass, "sqrt_mass": sqrt_mass})

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        h = state.step_size
        inv_mass, sqrt_mass = state.extra.get("inv_mass"), state.extra.get("sqrt_mass")
        x, u_x, g_x = state.x, state.energy, state.grad
        p = sample_momentum(x, sqrt_mass, generator)
        h0 = u_x + kinetic_energy(p, inv_mass)
        y, q, u_y, g_y = leapfrog(energy, x, p, g_x, h, self.n_leapfrog, inv_mass)
        h1 = u_y + kinetic_energy(q, inv_mass)
        error = h1 - h0
        divergent = non_finite(error) | (error > self.divergence_threshold)
        accepted, rate = metropolis_hastings(-error, generator)
        accepted = accepted & ~divergent
        new = SamplerState(
            x=select(accepted, y, x),
            energy=torch.where(accepted, u_y, u_x),
            grad=select(accepted, g_y, g_x),
            step_size=h,
            extra=state.extra,
        )
        info = Info(acceptance_rate=rate, accepted=accepted, divergent=divergent, step_size=h, n_grad_evals=self.n_leapfrog)
        return new, info
