"""Generator networks B(z): the base measure of a generalized EBM.

- :class:`MLPGenerator`: z ∈ R^k -> R^d, a fully connected network with a linear output.
- :class:`ConvGenerator`: z -> single-channel images 8×8 or 28×28 (a linear map to a 2×2 / 7×7 feature map, then
  two stride-2 transposed convolutions, DCGAN-style (Radford et al. 2016), and a sigmoid so pixels lie in [0, 1]).

The energy on images is :class:`ebmlab.energies.ConvEnergy` (the one convolutional energy of the library).

Every class exposes ``config()`` (its constructor arguments, JSON-able) so that :class:`~ebmlab.generators.GEBM`
can save and rebuild it.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from .._core.errors import ConfigError
from .._core.validation import check_int
from ..energies.mlp import make_activation

IMAGE_SIDES = (8, 28)


class MLPGenerator(nn.Module):
    """B(z) = MLP(z): ``latent_dim -> hidden... -> out_dim`` with ``activation`` between layers, linear output."""

    def __init__(self, latent_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128), activation: str = "silu"):
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.out_dim = check_int("out_dim", out_dim)
        self.hidden = tuple(check_int("hidden width", h) for h in hidden)
        self.activation = activation
        layers, width = [], self.latent_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            width = h
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)
        self.event_shape = (self.out_dim,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "out_dim": self.out_dim, "hidden": list(self.hidden),
                "activation": self.activation}


def _check_image_shape(image_shape) -> Tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2] or shape[1] not in IMAGE_SIDES:
        raise ConfigError(f"image_shape must be (1, 8, 8) or (1, 28, 28) (single-channel square images), got {image_shape!r}")
    return shape  # type: ignore[return-value]


class ConvGenerator(nn.Module):
    """z -> Linear -> [C, s/4, s/4] -> ConvT(C, C/2, 4, stride 2) -> ConvT(C/2, 1, 4, stride 2) -> sigmoid,
    for s = 8 or 28 (SiLU between layers)."""

    def __init__(self, latent_dim: int, image_shape=(1, 8, 8), channels: int = 64):
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim)
        self.image_shape = _check_image_shape(image_shape)
        self.channels = check_int("channels", channels, minimum=2)
        side = self.image_shape[1] // 4
        c = self.channels
        self._side = side
        self.fc = nn.Sequential(nn.Linear(self.latent_dim, c * side * side), nn.SiLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c // 2, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )
        self.event_shape = self.image_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).reshape(z.shape[0], self.channels, self._side, self._side)
        return self.deconv(h)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "image_shape": list(self.image_shape), "channels": self.channels}
