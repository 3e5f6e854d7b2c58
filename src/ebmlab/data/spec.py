"""Data specifications accepted by ``ebmlab train --data``.

- a built-in 2-D toy set: ``8gaussians``, ``2spirals``, ... (:func:`ebmlab.data.toy_names`);
- ``gray:NAME``: the toy set NAME as 32-bit Gray codes in {0,1}^32 (:func:`ebmlab.data.gray_toy`);
- ``ising:side=S,coupling=B[,field=H][,periodic=true]``: samples of the periodic ``S x S``
  :class:`~ebmlab.energies.IsingLattice` drawn by an exact sampler (:func:`ebmlab.data.ising_dataset`);
- a file: ``.npy``, ``.csv`` or ``.pt`` (:func:`ebmlab.data.load_data`); binary {0,1} files train binary models.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from .._core.errors import ConfigError
from .._core.yamlio import safe_load_yaml

_ISING_KEYS = {"side": int, "coupling": float, "field": float, "periodic": bool, "sweeps": int, "burn_in": int}


def parse_spec(spec: str) -> Tuple[str, str, Dict[str, Any]]:
    """Split ``spec`` into (kind, name, params); kind is ``toy``, ``gray``, ``ising`` or ``file``."""
    from .toy import toy_names

    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"data must be a data set name or a file path, got {spec!r}")
    if spec in toy_names():
        return "toy", spec, {}
    if spec.startswith("gray:"):
        name = spec[5:]
        if name not in toy_names():
            raise ConfigError(f"unknown data set {name!r} in {spec!r}; built-in data sets are: {', '.join(toy_names())}")
        return "gray", name, {}
    if spec.startswith("ising:"):
        params: Dict[str, Any] = {}
        for item in filter(None, spec[6:].split(",")):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in _ISING_KEYS:
                raise ConfigError(f"bad item {item!r} in {spec!r}; expected key=value with keys "
                                  f"{', '.join(_ISING_KEYS)} (e.g. ising:side=8,coupling=0.3)")
            try:
                val = safe_load_yaml(value)
            except yaml.YAMLError:
                val = value
            typ = _ISING_KEYS[key]
            if typ is float and isinstance(val, int) and not isinstance(val, bool):
                val = float(val)
            if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
                raise ConfigError(f"{key} in {spec!r} must be of type {typ.__name__}, got {value!r}")
            params[key] = val
        missing = {"side", "coupling"} - set(params)
        if missing:
            raise ConfigError(f"{spec!r} needs {' and '.join(sorted(missing))} (e.g. ising:side=8,coupling=0.3)")
        return "ising", "ising", params
    if "." in spec.rsplit("/", 1)[-1]:
        return "file", spec, {}
    raise ConfigError(f"unknown data set {spec!r}; built-in data sets are: {', '.join(toy_names())}; "
                      f"or gray:NAME, ising:side=S,coupling=B, or a .npy, .csv or .pt file")


def draw(spec: str, n: int, seed: int) -> torch.Tensor:
    """Draw ``n`` rows of a generated data set (toy, gray or ising spec) with ``seed``."""
    from .gray_code import gray_toy
    from .lattice import ising_dataset
    from .toy import toy

    kind, name, params = parse_spec(spec)
    if kind == "toy":
        return toy(name, n, generator=seed)
    if kind == "gray":
        return gray_toy(name, n, generator=seed)
    if kind == "ising":
        return ising_dataset(params["side"], params["coupling"], n, field=params.get("field", 0.0),
                             periodic=params.get("periodic", True), sweeps=params.get("sweeps", 10),
                             burn_in=params.get("burn_in", 500), generator=seed)
    raise ConfigError(f"{spec!r} is a file, not a generated data set")


def true_energy(spec: str) -> Optional[torch.nn.Module]:
    """The energy that generated ``spec`` when known exactly (ising specs), else None."""
    kind, _, params = parse_spec(spec)
    if kind != "ising":
        return None
    from ..energies.ising import IsingLattice

    return IsingLattice(params["side"], params["coupling"], field=params.get("field", 0.0),
                        periodic=params.get("periodic", True))
