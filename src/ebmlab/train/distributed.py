"""Data-parallel training on PyTorch's own distributed engine (``torch.distributed``).

Launch with ``torchrun --nproc_per_node=N -m ebmlab.cli train ...`` (or ``--nnodes``/``--rdzv-endpoint`` for many
machines).  Each process draws its own minibatches and MCMC chains (its generator is seeded with ``seed + rank``),
computes the loss on its shard, and the parameter gradients are averaged across processes with ``all_reduce``
before every optimiser step — the same arithmetic as ``DistributedDataParallel``, but without wrapping the energy, so
that samplers can keep calling ``energy_and_grad`` (autograd w.r.t. the inputs only) on the bare module.  Parameters
are broadcast from rank 0 at the start, so every process holds identical weights at every step; rank 0 alone writes
logs, plots and checkpoints.
"""
from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> bool:
    """Initialise the default process group from torchrun's environment variables if they are set.

    Returns True if this process is part of a multi-process job.  Uses NCCL on CUDA devices, Gloo otherwise.
    """
    if env_world_size() <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def broadcast_parameters(params: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values of ``params`` to every process."""
    if not is_distributed():
        return
    for p in params:
        dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Average ``.grad`` of ``params`` over processes (one flattened all-reduce)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every process (the value itself when not distributed)."""
    if not is_distributed():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64)
    dist.broadcast(t, src=0)
    return int(t)


def all_reduce_mean(value: float) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / dist.get_world_size()
