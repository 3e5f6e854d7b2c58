"""Bridge from ebmlab's torch-generator convention to the numpy generator used by the ERGM kernels.

The ERGM code runs on numpy (its inner loops are small gather/scatter operations where numpy's per-call
overhead is several times lower than torch's on CPU). Public functions still take ``seed`` and
``generator: torch.Generator | None`` like the rest of ebmlab; a numpy ``Generator`` is derived from them
deterministically. numpy's global RNG is never used.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .._core.errors import ConfigError
from .._core.random import as_generator

__all__ = ["numpy_rng"]


def numpy_rng(seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int ``seed`` or a ``torch.Generator`` (not both).

    With neither, one draw from torch's default generator seeds it: like every torch function called with
    ``generator=None``, the run then follows (and advances, never reseeds) the global torch RNG.
    """
    if seed is not None and generator is not None:
        raise ConfigError("give either seed or generator, not both")
    if seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an int, got {seed!r}")
        return np.random.default_rng(int(seed))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    g = as_generator(generator)
    key = int(torch.randint(0, 2**62, (1,), generator=g).item())
    return np.random.default_rng(key)
