"""Conventions for discrete (binary) states in ebmlab, stated once.

States
    Every discrete energy (Ising, ERGM, binary networks) works on **float tensors with values in
    {0, 1}** of shape ``[batch, n_sites]``.  Lattices are flattened row-major: site ``(r, c)`` of a
    ``side x side`` lattice is column ``r * side + c``.  Float (not bool/int) so that the same tensor
    can be fed to autograd (Gibbs-with-gradients differentiates the energy's continuous
    relaxation) and to neural energies.

Spins
    Ising models are usually written in spins s in {-1, +1}.  The map is

        s = 2 x - 1,        x = (s + 1) / 2,

    so x = 1 is spin up.  :func:`to_spins` and :func:`from_spins` implement it.

Flips
    ``flip_i(x)`` sets x_i <- 1 - x_i (spin s_i <- -s_i).  A discrete energy may provide

        delta(x)_i = U(flip_i(x)) - U(x)      for every site i, shape [batch, n_sites],

    the energy change used by Gibbs samplers, pseudo-likelihood and locally balanced proposals.
    ``site_delta(x, idx)`` (optional, ebmlab's Ising energies have it) returns the same quantity
    only for one site per row, ``idx`` of shape [batch], in O(degree) instead of O(n).
"""
from __future__ import annotations

import torch

from .._core.errors import ConfigError, DataError

__all__ = ["to_spins", "from_spins", "flip", "check_binary", "check_discrete_state"]


def to_spins(x: torch.Tensor) -> torch.Tensor:
    """Map {0,1} states to spins: s = 2x - 1 (differentiable, so it also maps the relaxation)."""
    return 2.0 * x - 1.0


def from_spins(s: torch.Tensor) -> torch.Tensor:
    """Map spins in {-1,+1} to {0,1} states: x = (s + 1) / 2."""
    return 0.5 * (s + 1.0)


def flip(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Return a copy of ``x`` [batch, n] with site ``idx[b]`` of row ``b`` flipped (x -> 1 - x)."""
    rows = torch.arange(x.shape[0], device=x.device)
    out = x.clone()
    out[rows, idx] = 1.0 - x[rows, idx]
    return out


def check_binary(x: torch.Tensor, n_sites: int, *, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a float tensor of shape [batch, n_sites] with values in {0, 1}.

    Raises
    ------
    DataError
        If the shape is wrong, the dtype is not floating point, or a value is not 0 or 1.
    """
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{name} must be a torch.Tensor of shape [batch, {n_sites}], got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != n_sites:
        raise DataError(f"{name} must have shape [batch, {n_sites}] ({{0,1}} states), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor with values in {{0,1}}, got dtype {x.dtype}")
    if not ((x == 0) | (x == 1)).all():
        raise DataError(f"{name} must contain only 0 and 1 (spins s = 2x - 1); convert spins with from_spins")
    return x


def check_discrete_state(energy, x0: torch.Tensor, who: str) -> torch.Tensor:
    """Check a discrete sampler's start: ``energy.discrete`` is True and ``x0`` is a {0,1} float tensor
    of shape [chains, n_sites] (``n_sites`` = ``energy.n_sites`` when the energy has it).

    ``who`` names the sampler in the messages.  Returns ``x0``.

    Raises
    ------
    ConfigError
        If the energy is continuous.
    DataError
        If ``x0`` is not a 2-D {0,1} float tensor of the energy's width (:func:`check_binary`).
    """
    if not getattr(energy, "discrete", False):
        raise ConfigError(
            f"{who} samples discrete energies on {{0,1}}^n (energy.discrete = True); "
            f"{type(energy).__name__} is continuous, use a continuous sampler (mala, hmc, ...)"
        )
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2:
        shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise DataError(f"x0 must be a [chains, n_sites] tensor of {{0,1}} floats, got {shape}")
    n = getattr(energy, "n_sites", x0.shape[1])
    return check_binary(x0, n, name="x0")
