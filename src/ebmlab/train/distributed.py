"""Data-parallel training and sampling on PyTorch's own distributed engine (``torch.distributed``).

Launch with ``torchrun --nproc_per_node=N -m ebmlab.cli train ...`` (or ``ebmlab train --nproc N``, which starts
torchrun; ``--nnodes``/``--rdzv-endpoint`` for many machines).  Gloo is used on CPU, NCCL on CUDA.

What :func:`ebmlab.fit` does with W processes (ranks r = 0 .. W-1):

- **one global minibatch**: ``batch_size`` is the global batch; every rank draws the same permutation of the data
  (one generator seeded identically on every rank) and takes its contiguous slice of ``batch_size / W`` rows, so the
  rows seen at each step are those of a one-process run with the same seed;
- **gradients averaged** with one ``all_reduce`` before every optimiser step — the arithmetic of
  ``DistributedDataParallel`` without wrapping the energy (samplers keep calling ``energy_and_grad`` on the bare
  module); parameters are broadcast from rank 0 at the start, so every rank holds identical weights;
- **independent random streams**: rank r's generator (MCMC, noise) is seeded with :func:`rank_seed` ``(seed, r)``:
  ``seed`` itself for rank 0 (a one-process run is unchanged) and, for r >= 1, the first 63 bits of numpy's
  ``SeedSequence(seed, spawn_key=(r,))`` (O'Neill's hash-based seed derivation, so streams neither coincide nor
  overlap in practice, unlike ``seed + r`` which collides with the run seeded ``seed + 1``);
- **sharded replay buffers**: an objective that declares ``sharded_state`` (the PCD buffer) holds
  ``buffer_size / W`` of the global ``buffer_size`` chains on each rank; checkpoints store the concatenation, which
  is split again on resume, with any number of ranks that divides ``buffer_size`` and ``batch_size``;
- **metrics on rank 0**: the loss and every objective statistic are averaged over ranks (``all_reduce``);
  rank 0 alone writes logs, plots and checkpoints.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List

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
        if device.type == "cuda" and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def rank_seed(seed: int, r: int) -> int:
    """The seed of rank ``r``'s generator in a run seeded ``seed``: ``seed`` for r = 0, else the first 63 bits of
    ``numpy.random.SeedSequence(seed, spawn_key=(r,)).generate_state(2, uint32)``."""
    if r == 0:
        return int(seed)
    import numpy as np

    words = np.random.SeedSequence(int(seed) % (1 << 128), spawn_key=(int(r),)).generate_state(2, dtype=np.uint32)
    return (int(words[0]) | (int(words[1]) << 32)) & ((1 << 63) - 1)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


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


def broadcast_str(value: str) -> str:
    """Rank 0's string on every process (UTF-8 bytes in a tensor; no pickling)."""
    if not is_distributed():
        return value
    data = torch.tensor(list(value.encode("utf-8")) if rank() == 0 else [], dtype=torch.int32)
    n = broadcast_int(data.numel())
    buf = data if rank() == 0 else torch.zeros(n, dtype=torch.int32)
    dist.broadcast(buf, src=0)
    return bytes(buf.tolist()).decode("utf-8")


def all_reduce_mean(value: float) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / dist.get_world_size()


def all_reduce_mean_dict(values: Dict[str, float]) -> Dict[str, float]:
    """Mean over ranks of every value of ``values`` (the same keys on every rank, as an objective's stats have)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensor ``t`` of every rank, in rank order (same shape on every rank; the
    result is on ``t``'s device).  Byte tensors (generator states) travel as int32."""
    if not is_distributed():
        return t
    src = t.detach().contiguous()
    wire = src.to(torch.int32) if src.dtype in (torch.uint8, torch.bool, torch.int8) else src
    if dist.get_backend() == "nccl":
        wire = wire.cuda()
    parts: List[torch.Tensor] = [torch.empty_like(wire) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, wire)
    return torch.cat(parts).to(device=t.device, dtype=t.dtype)


def destroy() -> None:
    """Leave the process group at the end of a torchrun job (after a barrier, so no rank tears it down while
    another still uses it)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
