"""The Metropolis–Hastings accept/reject step shared by every adjusted sampler (RWM, MALA, HMC).

Given a proposal y ~ q(.|x) for a batch of chains, the Metropolis–Hastings rule (Metropolis et al.
1953; Hastings 1970) accepts y with probability

    alpha(x, y) = min(1, exp(log_ratio)),
    log_ratio   = [-U(y) + log q(x|y)] - [-U(x) + log q(y|x)],

decided per chain by a uniform draw from the caller's ``generator``; the chains that accept take
the proposal, the others keep their state (one :func:`torch.where` per tensor, no Python loop).
A NaN ``log_ratio`` is rejected; proposals whose energy is not finite are mapped to U = +inf by
:func:`sanitize_energy` (ratio exp(-inf) = 0), so they are rejected and flagged divergent.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def metropolis_hastings(
    log_ratio: torch.Tensor, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Accept or reject one proposal per chain.

    Parameters
    ----------
    log_ratio : Tensor[chains]
        log of the Metropolis–Hastings ratio pi(y) q(x|y) / (pi(x) q(y|x)).
    generator : torch.Generator, optional
        Source of the uniform draws u ~ U(0, 1); the chain accepts when u < min(1, exp(log_ratio)).

    Returns
    -------
    accepted : Tensor[chains] (bool)
        Whether each chain takes its proposal. NaN ratios are rejected.
    acceptance_rate : Tensor[chains]
        alpha = min(1, exp(log_ratio)) (0 where the ratio is NaN), the quantity that step-size
        adaptation targets (its mean over chains).
    """
    # u < min(1, exp(r))  <=>  log u < r; exp(+inf) -> clamp to 1, NaN -> 0 (rejected)
    acceptance_rate = torch.exp(log_ratio).clamp_(max=1.0).nan_to_num_(nan=0.0)
    u = torch.rand(log_ratio.shape, dtype=log_ratio.dtype, device=log_ratio.device, generator=generator)
    accepted = u < acceptance_rate
    return accepted, acceptance_rate


def select(accepted: torch.Tensor, proposal: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Per-chain choice ``proposal[c] if accepted[c] else current[c]`` (new tensor, inputs untouched).

    ``accepted`` has shape [chains]; the tensors have shape [chains, *event_shape] (or [chains]).
    """
    mask = accepted.reshape(accepted.shape + (1,) * (proposal.ndim - 1))
    return torch.where(mask, proposal, current)


def event_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first (chains): Tensor[chains, *event] -> Tensor[chains]."""
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        return x.sum(dim=1)
    return x.reshape(x.shape[0], -1).sum(dim=1)


_ALWAYS_ACCEPTED: dict = {}


def always_accepted(energy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(acceptance_rate = 1, accepted = True)`` tensors shaped like ``energy`` [chains], for
    samplers without an accept step (ULA, kinetic Langevin).

    The tensors are cached per (shape, dtype, device) and shared between steps, which saves two
    allocations per step in the hot loop: treat them as read-only.
    """
    key = (energy.shape, energy.dtype, energy.device)
    hit = _ALWAYS_ACCEPTED.get(key)
    if hit is None:
        if len(_ALWAYS_ACCEPTED) >= 64:
            _ALWAYS_ACCEPTED.clear()
        hit = (torch.ones_like(energy), torch.ones(energy.shape, dtype=torch.bool, device=energy.device))
        _ALWAYS_ACCEPTED[key] = hit
    return hit


def non_finite(values: torch.Tensor) -> torch.Tensor:
    """``~torch.isfinite(values)`` in two cheap kernels: v - v is 0 for finite v and NaN for ±inf or NaN.

    (``torch.isfinite`` is a composite of four kernels on CPU; this runs on every step.)
    """
    return torch.isnan(values - values)


def sanitize_energy(energy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Map non-finite proposal energies (NaN, ±inf) to +inf and flag them.

    Returns ``(energy_safe, divergent)``: with +inf energy a proposal's Metropolis–Hastings ratio
    is exp(-inf) = 0, so it is rejected without a separate mask (U = -inf, an energy unbounded
    below, is rejected too rather than accepted with probability 1).
    """
    inf = float("inf")
    safe = torch.nan_to_num(energy, nan=inf, posinf=inf, neginf=inf)
    # isposinf, not ``safe == inf``: comparing with a Python float first copies the scalar into a tensor
    return safe, torch.isposinf(safe)
