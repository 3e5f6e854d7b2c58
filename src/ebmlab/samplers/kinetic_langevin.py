"""Kinetic (underdamped) Langevin dynamics with the BAOAB splitting."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._core.validation import check_positive
from .accept import always_accepted, non_finite
from .base import SAMPLERS, Info, Sampler, SamplerState
from .initial_state import initial_state
from .integrators import check_mass, momentum_update, ou_momentum_update, position_update, resolve_mass


@SAMPLERS.register("kinetic_langevin")
@SAMPLERS.register("underdamped")
class KineticLangevin(Sampler):
    r"""Unadjusted kinetic (underdamped) Langevin dynamics

    .. math:: dX = M^{-1} P\,dt, \qquad dP = -\nabla U(X)\,dt - \gamma P\,dt + \sqrt{2\gamma}\, M^{1/2} dW,

    whose invariant law is exp(-U(x) - ½ pᵀM⁻¹p), discretised by the BAOAB splitting of
    Leimkuhler & Matthews (2013, AMRX; "Robust and efficient configurational molecular sampling
    via Langevin dynamics", J. Chem. Phys. 138): one step of size h is

        B(h/2): p -= (h/2) ∇U(x);  A(h/2): x += (h/2) M⁻¹p;
        O(h):   p  = c p + sqrt(1 - c²) M^½ ξ,  c = exp(-γh);
        A(h/2): x += (h/2) M⁻¹p;   B(h/2): p -= (h/2) ∇U(x).

    The momentum lives in ``state.extra["momentum"]`` and starts at zero (:meth:`init` takes no
    generator; the O step refreshes it at rate γ, so a burn-in of a few 1/(γh) steps forgets it).

    Bias (there is no Metropolis correction): the position marginal of BAOAB's invariant law is
    O(h²)-accurate for smooth U (Leimkuhler & Matthews 2013). For a Gaussian U = ½ (x-μ)ᵀP(x-μ)
    (and M = I) BAOAB's position marginal is *exactly* N(μ, P⁻¹) for every friction and every
    stable h < 2/sqrt(λ_max(P)); only the momentum variance is biased (1 - h²λ/4 along each
    eigenvector). ``tests/test_samplers_continuous.py`` checks this against the stationary
    covariance of the linear BAOAB recursion.

    Cost: exactly one ``energy_and_grad`` per step (the gradient at x is cached), plus one at init.

    Parameters
    ----------
    step_size : float
        h > 0.
    friction : float
        γ > 0 (1/time). Large γ approaches overdamped Langevin; small γ gives long momentum memory.
    mass : None, float or Tensor
        Diagonal mass M (scalar or a positive tensor broadcastable to the event shape); None = I.
    """

    name = "kinetic_langevin"
    uses_grad = True
    adaptive = False

    def __init__(self, step_size: float = 0.05, friction: float = 1.0, mass=None):
        self.step_size = check_positive("step_size", step_size)
        self.friction = check_positive("friction", friction)
        self.mass = check_mass(mass)

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        state = initial_state(energy, x0, self.step_size, with_grad=True)
        inv_mass, sqrt_mass = resolve_mass(self.mass, state.x)
        extra = {"momentum": torch.zeros_like(state.x), "inv_mass": inv_mass, "sqrt_mass": sqrt_mass}
        return state.replace(extra=extra)

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        h = state.step_size
        extra = state.extra
        inv_mass, sqrt_mass = extra["inv_mass"], extra["sqrt_mass"]
        p = momentum_update(extra["momentum"], state.grad, 0.5 * h)  # B
        x = position_update(state.x, p, 0.5 * h, inv_mass)  # A
        p = ou_momentum_update(p, self.friction, h, sqrt_mass, generator)  # O
        x = position_update(x, p, 0.5 * h, inv_mass)  # A
        u, g = energy.energy_and_grad(x)
        p = momentum_update(p, g, 0.5 * h)  # B
        ones, true = always_accepted(u)
        info = Info(acceptance_rate=ones, accepted=true, divergent=non_finite(u), step_size=h, n_grad_evals=1)
        new_extra = {"momentum": p, "inv_mass": inv_mass, "sqrt_mass": sqrt_mass}
        return SamplerState(x=x, energy=u, grad=g, step_size=h, extra=new_extra), info
