"""Energies buildable by name (``"mlp"``, ...) for the CLI and :class:`ebmlab.EnergyModel`.

A factory takes the data dimension as ``dim`` plus its own keyword options.
"""
from __future__ import annotations

from typing import Any

from .._core.registry import Registry

ENERGIES = Registry("energy")


def build_energy(name: str, dim: int, **kwargs: Any):
    """Build a registered energy for ``dim``-dimensional data."""
    return ENERGIES.build(name, dim=dim, **kwargs)
