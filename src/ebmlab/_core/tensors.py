"""Turning a user's numeric option (a number, a nested list, an array, a tensor) into a checked float tensor."""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import torch

from .errors import ConfigError

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_float_tensor(name: str, value: Any, *, dtype: Optional[torch.dtype] = None,
                    shape: Optional[Tuple[int, ...]] = None,
                    device: Union[None, str, torch.device] = None) -> torch.Tensor:
    """``value`` as a new, detached, finite floating-point tensor, or :class:`ConfigError` naming ``name``.

    - ``dtype``: the result's dtype; None keeps a floating tensor's own dtype and gives integers,
      lists and arrays the default dtype (as ``torch.as_tensor`` does for floats).
    - ``shape``: if given, the required shape.
    - ``device``: if given, the result's device; None keeps a tensor's device (CPU otherwise).

    Booleans and complex numbers are rejected (not real-valued options), so are NaN and ±inf.
    The result never shares memory with ``value``.
    """
    try:
        if torch.is_tensor(value):
            t = value.detach()
        elif dtype is not None:
            t = torch.as_tensor(value, dtype=dtype)
        else:
            t = torch.as_tensor(value)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is a config error
        raise ConfigError(f"{name} could not be converted to a tensor: {err}") from None
    if not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):
        raise ConfigError(f"{name} must be real-valued, got dtype {t.dtype}")
    target = dtype if dtype is not None else (t.dtype if t.is_floating_point() else torch.get_default_dtype())
    t = t.to(dtype=target, device=device if device is not None else t.device)
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ConfigError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{name} must be finite, got {int((~torch.isfinite(t)).sum())} non-finite entries")
    return t.clone()
