"""The :class:`Energy` contract.

An energy is a ``torch.nn.Module`` whose ``forward(x)`` returns U(x), one value per row of the
batch (lower energy = more probable): p(x) = exp(-U(x)) / Z.  Everything else — the score
-grad_x U, the fused energy-and-gradient used by samplers — comes from autograd and may be
overridden by analytic energies for speed.  Subclassing with only ``forward`` is enough for
every sampler and objective in ebmlab.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn


class Energy(nn.Module):
    """Base class of all energies U(x); p(x) ∝ exp(-U(x)).

    Subclasses implement ``forward(x) -> Tensor[batch]``. Optional overrides:

    - ``energy_and_grad(x)`` — analytic (U(x), grad_x U(x)) without autograd;
    - ``log_normalizer()`` — log Z when it is known in closed form;
    - ``sample(n, generator=)`` — exact sampling (analytic targets);
    - ``delta(x)`` — for discrete energies on {0,1}: U(flip_i(x)) - U(x) for every site i.
    """

    #: True for energies defined on {0,1}-valued tensors (Ising, ERGM, binary nets).
    discrete: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x) -> Tensor[batch]")

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(U(x), grad_x U(x))``, both detached, from one forward and one backward pass."""
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            u = self(xr)
            (g,) = torch.autograd.grad(u.sum(), xr)
        return u.detach(), g

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x U(x) (detached)."""
        return self.energy_and_grad(x)[1]

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The score -grad_x U(x) = grad_x log p(x) (detached)."""
        return -self.energy_and_grad(x)[1]

    def log_normalizer(self) -> Optional[torch.Tensor]:
        """log Z if known in closed form, else ``None``."""
        return None


class FunctionEnergy(Energy):
    """Wrap a plain function ``fn(x) -> Tensor[batch]`` as an :class:`Energy`."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
