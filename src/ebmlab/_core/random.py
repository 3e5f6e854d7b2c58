"""Random-number helpers. ebmlab never seeds the global RNG: every random function takes a
``torch.Generator`` (or a seed, turned into one here)."""
from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import ConfigError

SeedLike = Union[None, int, torch.Generator]


def as_generator(seed: SeedLike, device: Union[str, torch.device, None] = None) -> Optional[torch.Generator]:
    """Turn ``seed`` into a ``torch.Generator`` on ``device``.

    ``None`` returns ``None`` (torch's default generator is used downstream); an ``int`` makes a
    fresh generator seeded with it; a ``Generator`` is returned as is.
    """
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, a torch.Generator or None, got {seed!r}")
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(seed)
    return g


def randn_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def rand_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def fresh_seed() -> int:
    """A new 63-bit seed from the operating system's entropy (``os.urandom``), for runs given no seed.

    Torch's global generator is neither read nor reseeded; record the
    returned value so the run can be reproduced.
    """
    import os

    return int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1)


@torch.no_grad()
def init_parameters_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Re-initialise every ``Linear`` / convolution layer of ``module`` in place from ``generator``.

    The law is PyTorch's own default (``reset_parameters`` of ``nn.Linear`` and ``nn.ConvNd``: weights
    Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases U(-1/sqrt(fan_in),
    1/sqrt(fan_in))), drawn from an explicit generator instead of the global RNG, so seeded weight
    initialisation never touches ``torch.get_rng_state()``. Other parameters are left as constructed.
    Returns ``module``.
    """
    import math

    layers = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
              torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    for m in module.modules():
        if isinstance(m, layers):
            torch.nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                torch.nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return module
