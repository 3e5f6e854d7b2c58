"""Energies buildable by name (``"mlp"``, ...) for the CLI and :class:`ebmlab.EnergyModel`.

A factory takes the data dimension as ``dim`` plus its own keyword options.
"""
from __future__ import annotations

import inspect
from typing import Any, List, Optional

from .._core.errors import ConfigError
from .._core.registry import Registry

ENERGIES = Registry("energy")


def energy_options(name: str) -> Optional[List[str]]:
    """The keyword options a registered energy accepts besides ``dim`` (``None`` if it takes ``**kwargs``)."""
    factory = ENERGIES.get(name)
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(factory):
        params = params[1:]  # self
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "dim"]


def build_energy(name: str, dim: int, /, **kwargs: Any):
    """Build a registered energy for ``dim``-dimensional data.

    Options are checked against the factory's signature first, so a bad option is a
    :class:`~ebmlab.ConfigError` naming it and the allowed ones, for every registered energy (``dim``
    itself is not an option: it is the data's number of features).
    """
    allowed = energy_options(name)
    if "dim" in kwargs:
        raise ConfigError(f"energy {name!r}: 'dim' is not an option, it is set from the data's number of features "
                          f"({dim}); allowed options: {', '.join(allowed) if allowed else 'none'}")
    if allowed is not None:
        bad = sorted(set(kwargs) - set(allowed))
        if bad:
            raise ConfigError(f"energy {name!r} has no option {', '.join(repr(b) for b in bad)}; allowed options: "
                              f"{', '.join(allowed) if allowed else 'none'}")
    return ENERGIES.build(name, dim=dim, **kwargs)
