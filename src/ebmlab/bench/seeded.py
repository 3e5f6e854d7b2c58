"""Reproducible network initialisation for benchmarks, without touching the global RNG."""
from __future__ import annotations

import math

import torch


def reseed_linear_layers(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Re-draw every ``Linear`` layer of ``module`` from a generator seeded with ``seed``, with PyTorch's default law
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=g) * 2 - 1) * bound)
                layer.bias.copy_((torch.rand(layer.bias.shape, generator=g) * 2 - 1) * bound)
    return module
