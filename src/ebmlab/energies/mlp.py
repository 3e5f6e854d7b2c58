"""Multi-layer perceptron energies."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._core.errors import ConfigError
from .._core.validation import check_int
from .base import Energy
from .registry import ENERGIES

_ACTIVATIONS = {
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def activation_names():
    return sorted(_ACTIVATIONS)


def make_activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; valid names are: {', '.join(activation_names())}")
    return _ACTIVATIONS[name]()


def mlp(dim: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    """``Linear(dim, h1), act, ..., Linear(h_last, 1)`` with validated widths (shared by the MLP energies)."""
    dim = check_int("dim", dim)
    layers = []
    width = dim
    for h in (check_int("hidden width", h) for h in hidden):
        layers += [nn.Linear(width, h), make_activation(activation)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@ENERGIES.register("mlp")
class MLPEnergy(Energy):
    """U(x) = MLP(x), a fully connected network ``dim -> hidden... -> 1``.

    Parameters
    ----------
    dim : int
        Input dimension.
    hidden : sequence of int
        Widths of the hidden layers (default ``(128, 128)``).
    activation : str
        One of ``softplus`` (default; smooth, so scores and Laplacians exist), ``silu``, ``elu``,
        ``gelu``, ``tanh``, ``relu``, ``leaky_relu``.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128), activation: str = "softplus"):
        super().__init__()
        self.net = mlp(dim, hidden, activation)
        self.dim = int(dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).squeeze(-1)

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}
