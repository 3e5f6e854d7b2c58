r"""Conditional energies U(x | c) and binding a context to them.

A conditional energy takes ``forward(x, context=c)`` with one context row per row of x, and defines
p(x | c) ∝ exp(−U(x | c)) for each c (the normaliser Z(c) may depend on c). The objectives that accept
``context=`` (energy discrepancy, NCE, denoising score matching) pass it through unchanged, perturbing or
contrasting x only. :class:`BoundContext` fixes one context row per chain and turns the conditional energy into an
ordinary :class:`~ebmlab.energies.base.Energy` on x, so every sampler of :mod:`ebmlab.samplers` runs on it
unchanged — e.g. a posterior energy U(θ | x_o) for a batch of observations, one observation per chain.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int
from .base import Energy
from .mlp import mlp


def _context_rows(context: Optional[torch.Tensor], n: int, dim: int, like: torch.Tensor, who: str) -> torch.Tensor:
    if context is None:
        raise ConfigError(f"{who} is a conditional energy: call it as energy(x, context=c) with c of shape [batch, {dim}] "
                          f"(or bind a context with BoundContext)")
    c = torch.as_tensor(context).to(dtype=like.dtype, device=like.device)
    if c.ndim == 1:
        c = c.expand(n, -1)
    if c.ndim != 2 or c.shape[1] != dim or c.shape[0] != n:
        raise DataError(f"{who}: context must have shape [{n}, {dim}] (one row per row of x) or [{dim}], got {tuple(c.shape)}")
    return c


class ConditionalMLPEnergy(Energy):
    """U(x | c) = MLP([x, c]), a fully connected network ``dim + context_dim -> hidden... -> 1``.

    Parameters
    ----------
    dim : int
        Dimension of x (rows are flattened).
    context_dim : int
        Dimension of the context c.
    hidden : sequence of int
        Hidden widths (default ``(128, 128)``).
    activation : str
        As :class:`~ebmlab.energies.mlp.MLPEnergy` (default ``"silu"``: smooth, so samplers get continuous gradients).
    """

    def __init__(self, dim: int, context_dim: int, hidden: Sequence[int] = (128, 128), activation: str = "silu"):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.context_dim = check_int("context_dim", context_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.net = mlp(self.dim + self.context_dim, self.hidden, activation)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        n = x.shape[0]
        c = _context_rows(context, n, self.context_dim, x, type(self).__name__)
        return self.net(torch.cat([x.reshape(n, -1), c], -1)).squeeze(-1)

    def config(self) -> dict:
        return {"dim": self.dim, "context_dim": self.context_dim, "hidden": list(self.hidden), "activation": self.activation}


class BoundContext(Energy):
    """U(x) = energy(x, context=c_rows): a conditional energy with a fixed context per row (an :class:`Energy` on x).

    Parameters
    ----------
    energy : conditional energy
        Called as ``energy(x, context=...)``.
    context : Tensor[chains, context_dim] or Tensor[context_dim]
        One row per chain (the row count of every x passed later), or one row shared by all.
    """

    def __init__(self, energy: torch.nn.Module, context: torch.Tensor):
        super().__init__()
        self.energy = energy
        if not isinstance(context, torch.Tensor) or context.ndim not in (1, 2):
            raise DataError(f"context must be a Tensor [chains, context_dim] or [context_dim], got {getattr(context, 'shape', context)!r}")
        self.register_buffer("context", context.detach(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.context.to(dtype=x.dtype, device=x.device)
        if c.ndim == 1:
            c = c.expand(x.shape[0], -1)
        if c.shape[0] != x.shape[0]:
            raise DataError(f"BoundContext holds {c.shape[0]} context rows but got a batch of {x.shape[0]} rows")
        return self.energy(x, context=c)
