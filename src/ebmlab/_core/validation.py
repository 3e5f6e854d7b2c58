"""Small argument checks that raise :class:`ConfigError` / :class:`DataError` with clear messages."""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable, Optional

import torch

from .errors import ConfigError, DataError


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is a finite number > 0 (or >= 0), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (Real, torch.Tensor)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {rel}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """Return ``int(value)`` if it is an integer in [minimum, maximum], else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name} must be an integer >= {minimum}{hi}, got {value!r}")
    return v


def check_probability(name: str, value: Any, *, open_low: bool = False, open_high: bool = False) -> float:
    """Return ``float(value)`` if it lies in [0, 1] (bounds optionally open), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (Real, torch.Tensor)):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    v = float(value)
    lo_ok = v > 0 if open_low else v >= 0
    hi_ok = v < 1 if open_high else v <= 1
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise ConfigError(f"{name} must be in {lo}0, 1{hi}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_data(x: Any, *, name: str = "data", ndim: Optional[int] = 2, min_rows: int = 2) -> torch.Tensor:
    """Validate a data array: convert to a float tensor, check dimensionality, rows and finiteness."""
    try:
        t = torch.as_tensor(x)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is a data error
        raise DataError(f"{name} could not be converted to a tensor: {err}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise DataError(f"{name} must be numeric, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if ndim is not None and t.ndim != ndim:
        raise DataError(f"{name} must be a {ndim}-D array (rows = samples), got shape {tuple(t.shape)}")
    if t.ndim == 0 or t.shape[0] < min_rows:
        raise DataError(f"{name} must have at least {min_rows} rows, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise DataError(f"{name} contains {bad} non-finite values (NaN or inf); clean it first")
    return t


def check_seed(name: str, value: Any, *, allow_none: bool = True) -> Optional[int]:
    """Return ``int(value)`` for an integer seed >= 0 (or None when allowed), else raise ConfigError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 0:
        allowed = "None or an integer >= 0" if allow_none else "an integer >= 0"
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_energy(energy: Any, name: str = "energy") -> Any:
    """An energy must be a ``torch.nn.Module`` (an :class:`ebmlab.energies.Energy`): it is moved to a device,
    its parameters are trained and checkpointed."""
    if not isinstance(energy, torch.nn.Module):
        raise ConfigError(f"{name} must be a torch.nn.Module such as an ebmlab.energies.Energy (e.g. "
                          f"ebmlab.energies.MLPEnergy(dim)), got {type(energy).__name__}; wrap a plain function in an "
                          f"Energy subclass whose forward returns U(x)")
    return energy


def check_energy_accepts(energy: torch.nn.Module, data: torch.Tensor, objective: Any = None,
                         name: str = "training data") -> None:
    """Shape checks before training, so that a mismatch is one DataError naming both shapes instead of an error from
    deep inside the network ("mat1 and mat2 shapes cannot be multiplied"): rows must not be scalars (1-D data), and
    for the library's own objectives (which pass data rows to the energy unchanged) a row must have the energy's
    ``dim`` features.  Objectives defined elsewhere may pack rows differently (e.g. image + label) and are trusted."""
    if data.ndim == 1:
        raise DataError(f"{name} must have shape (n_samples, n_features, ...), got 1-D shape {tuple(data.shape)}; "
                        f"for one feature use x[:, None]")
    dim = getattr(energy, "dim", None)
    own = objective is not None and type(objective).__module__.startswith("ebmlab.objectives")
    if own and isinstance(dim, int) and not isinstance(dim, bool) and data.ndim == 2 and data.shape[1] != dim:
        raise DataError(f"{name} has {data.shape[1]} features per row but the energy {type(energy).__name__} was "
                        f"built for dim={dim}; build it with dim={data.shape[1]} or select the matching columns")
