"""Small convolutional networks for images ``[n, C, H, W]``: an energy U(x) and a classifier f(x) -> logits.

Both share one trunk (two 3×3 convolutions, a stride-2 convolution, a fully connected layer), with a smooth
activation (SiLU by default) so that grad_x U exists everywhere and gradient-based samplers (ULA, MALA, HMC) and
score-based objectives work on them like on any other :class:`~ebmlab.energies.Energy`.

A classifier is an energy-based model in two ways (Grathwohl et al. 2020, "Your classifier is secretly an energy
based model and you should treat it like one", ICLR): with logits f(x),

    U(x) = -logsumexp_y f(x)[y]          (the marginal,  p(x) ∝ Σ_y exp f(x)[y]),
    U(x | y) = -f(x)[y]                  (class-conditional, p(x | y) ∝ exp f(x)[y]),

and p(y | x) = softmax(f(x))[y] is unchanged by the shift of f that the marginal leaves free.
:class:`ClassifierEnergy` and :class:`ClassConditionalEnergy` expose these two energies of a classifier.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int
from .base import Energy
from .mlp import make_activation


def _check_shape(image_shape: Sequence[int]) -> Tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"image_shape must be (channels, height, width), got {image_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"image_shape must be three positive ints (channels, height, width), got {image_shape!r}")
    if shape[1] < 4 or shape[2] < 4:
        raise ConfigError(f"image_shape needs height and width >= 4 for the stride-2 convolution, got {shape}")
    return shape


def conv_trunk(image_shape: Sequence[int], channels: int, hidden: int, out: int, activation: str) -> nn.Sequential:
    """``Conv3x3(C, c) → act → Conv3x3(c, 2c, stride 2) → act → Conv3x3(2c, 2c) → act → flatten →
    Linear(2c·⌈H/2⌉·⌈W/2⌉, hidden) → act → Linear(hidden, out)``."""
    c_in, h, w = _check_shape(image_shape)
    c = check_int("channels", channels)
    hidden = check_int("hidden", hidden)
    out = check_int("out", out)
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c, 3, padding=1), make_activation(activation),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), make_activation(activation),
        nn.Conv2d(2 * c, 2 * c, 3, padding=1), make_activation(activation),
        nn.Flatten(),
        nn.Linear(2 * c * h2 * w2, hidden), make_activation(activation),
        nn.Linear(hidden, out),
    )


def _as_images(x: torch.Tensor, shape: Tuple[int, int, int], who: str) -> torch.Tensor:
    """Accept ``[n, C, H, W]`` or flattened ``[n, C·H·W]`` rows."""
    if x.ndim == 2 and x.shape[1] == math.prod(shape):
        return x.reshape(x.shape[0], *shape)
    if x.ndim == 4 and tuple(x.shape[1:]) == shape:
        return x
    raise DataError(f"{who} expects images of shape [n, {shape[0]}, {shape[1]}, {shape[2]}] (or [n, {math.prod(shape)}]), "
                    f"got {tuple(x.shape)}")


class ConvEnergy(Energy):
    """U(x) = CNN(x) ∈ ℝ for images: :func:`conv_trunk` with one output.

    Not in the by-name energy registry (``ebmlab.energies.ENERGIES``): that registry builds energies from a number of
    features ``dim`` and its contract test runs every entry on 2-D points, which a convolution over images cannot
    take; construct it directly.

    Parameters
    ----------
    image_shape : (int, int, int)
        (C, H, W), e.g. (1, 8, 8) for digits (H, W >= 4).
    channels : int
        Width c of the first convolution (default 32; the others have 2c).
    hidden : int
        Width of the fully connected layer (default 128).
    activation : str
        ``silu`` (default), ``softplus``, ``elu``, ... (see :func:`ebmlab.energies.activation_names`).

    Inputs may be ``[n, C, H, W]`` or flattened ``[n, C·H·W]``.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), channels: int = 32, hidden: int = 128,
                 activation: str = "silu"):
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        self.net = conv_trunk(self.image_shape, channels, hidden, 1, activation)
        self.channels, self.hidden, self.activation = int(channels), int(hidden), activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_as_images(x, self.image_shape, "ConvEnergy")).squeeze(-1)

    def config(self) -> dict:
        return {"image_shape": list(self.image_shape), "channels": self.channels, "hidden": self.hidden,
                "activation": self.activation}


class ConvClassifier(nn.Module):
    """Logits f(x) ∈ ℝ^K of images ``[n, C, H, W]``: :func:`conv_trunk` with K outputs.

    Parameters
    ----------
    image_shape : (int, int, int)
        (C, H, W), e.g. (1, 8, 8) for digits.
    n_classes : int
        K >= 2.
    channels, hidden, activation :
        As :class:`ConvEnergy`.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), n_classes: int = 10, channels: int = 32,
                 hidden: int = 128, activation: str = "silu"):
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.net = conv_trunk(self.image_shape, channels, hidden, self.n_classes, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_as_images(x, self.image_shape, "ConvClassifier"))


class ClassifierEnergy(Energy):
    """The marginal energy of a classifier, U(x) = -logsumexp_y f(x)[y] (Grathwohl et al. 2020, eq. 5)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.classifier(x), dim=-1)


class ClassConditionalEnergy(Energy):
    """U(x | y) = -f(x)[y] for a fixed label per row: chain i targets p(x | y_i) ∝ exp f(x)[y_i].

    Parameters
    ----------
    classifier : nn.Module
        Gives logits ``[n, K]``.
    labels : Tensor[n] (int64)
        One label per chain; the batch evaluated must have exactly these n rows.
    """

    def __init__(self, classifier: nn.Module, labels: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.labels = labels.long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.labels.shape[0]:
            raise DataError(f"ClassConditionalEnergy holds {self.labels.shape[0]} labels, got a batch of {x.shape[0]}")
        return -self.classifier(x).gather(1, self.labels.to(x.device)[:, None]).squeeze(1)


class ScaledEnergy(Energy):
    """U(x) / T: the tempered law p(x)^{1/T}.  With ULA at step h = σ²/2 on U / T, T = σ² / (2α), a step is
    x' = x - α ∇U(x) + σ ξ, the "SGLD" of Grathwohl et al. (2020) and Du & Mordatch (2019) (α = 1, σ = 0.01)."""

    def __init__(self, energy: nn.Module, temperature: float):
        super().__init__()
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ConfigError(f"temperature must be finite and > 0, got {temperature!r}")
        self.energy = energy
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x) / self.temperature
