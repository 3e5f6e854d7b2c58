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
