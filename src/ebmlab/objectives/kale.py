r"""The KALE objective of a generalized energy-based model (Arbel, Zhou & Gretton 2021, "Generalized Energy Based
Models", ICLR).

A GEBM is Q_{B,E}(dx) ∝ exp(−E(x)) B#η(dx): a generator (base) B pushes a latent law η forward and an energy E
reweights it.  Its generalized log-likelihood L(E) = −E_P E(X) − log E_η exp(−E(B(Z))) is bounded below, by
−log u ≥ −c − e^{−c} u + 1 (tight at c = log u), by

.. math::
    \mathcal F(P, Q_B; E + c) = -\mathbb E_P[E(X) + c] - \mathbb E_\eta \exp(-E(B(Z)) - c) + 1,

the KALE with function class {E + c}.  Training alternates

- **energy (and c) steps**: minimise −F + γ · GP, where the gradient penalty GP = mean ‖∇_x E(x̂)‖² at random
  interpolates x̂ = a x + (1 − a) B(z), a ~ U(0, 1) (the penalty of the paper's reference implementation), with c
  a learnable scalar (at the optimum c = log E_η exp(−E(B(Z))));
- **generator steps**: minimise −E_η exp(−E(B_θ(Z)) − c) over θ with E and c fixed.  Its gradient,
  −e^{−c} E_η[exp(−E(B_θ(Z))) (−∇_x E(B_θ(Z)) ∇_θ B_θ(Z))], is the exp(−E)-reweighted pathwise gradient of the
  paper's theorem (∇K(θ) = Z⁻¹ ∫ ∇_x E(B_θ(z)) ∇_θ B_θ(z) e^{−E(B_θ(z))} η(dz), with Z = e^{c} at the optimum):
  samples the energy already favours weigh more, not a plain GAN loss.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from .._core.validation import check_positive


class KALEObjective:
    """The energy and generator losses of a GEBM (module docstring).

    Parameters
    ----------
    gradient_penalty : float
        γ >= 0, weight of the mean squared gradient norm of E at data–sample interpolates.
    """

    def __init__(self, gradient_penalty: float = 0.1):
        self.gradient_penalty = check_positive("gradient_penalty", gradient_penalty, allow_zero=True)

    @staticmethod
    def bound(e_real: torch.Tensor, e_fake: torch.Tensor, log_partition: torch.Tensor) -> torch.Tensor:
        """F(P, Q_B; E + c) from energies on data (``e_real``) and on generator samples (``e_fake``)."""
        return -(e_real + log_partition).mean() - torch.exp(-(e_fake + log_partition)).mean() + 1.0

    def _penalty(self, energy, x: torch.Tensor, fake: torch.Tensor, generator) -> torch.Tensor:
        n = min(x.shape[0], fake.shape[0])
        a = torch.rand((n,) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device, generator=generator)
        xh = (a * x[:n] + (1 - a) * fake[:n]).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(xh).sum(), xh, create_graph=True)
        return g.reshape(n, -1).pow(2).sum(1).mean()

    def energy_loss(self, energy, log_partition: torch.Tensor, x: torch.Tensor, fake: torch.Tensor,
                    generator=None) -> Tuple[torch.Tensor, Dict[str, float]]:
        """−F + γ·GP for one batch of data ``x`` and (detached) generator samples ``fake``."""
        fake = fake.detach()
        bound = self.bound(energy(x), energy(fake), log_partition)
        loss = -bound
        gp = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.gradient_penalty > 0:
            gp = self._penalty(energy, x, fake, generator)
            loss = loss + self.gradient_penalty * gp
        return loss, {"kale_bound": float(bound.detach()), "gradient_penalty": float(gp.detach())}

    @staticmethod
    def generator_loss(energy, log_partition: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """−E_η exp(−E(B_θ(Z)) − c) for samples ``fake`` = B_θ(z) carrying the generator's graph (E, c fixed)."""
        return -torch.exp(-(energy(fake) + log_partition.detach())).mean()
