"""The training loop: :func:`fit`.

One loop for every objective: it draws minibatches with a seeded generator, calls ``objective(energy, batch,
generator=g)``, steps the optimiser, and owns device placement, progress, CSV logging, periodic evaluation, EMA
weights, atomic checkpoints with exact resume, a NaN/divergence guard, and data parallelism through
``torch.distributed`` (see :mod:`ebmlab.train.distributed`).
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.random import fresh_seed
from .._core.validation import check_data, check_int, check_positive, check_probability
from . import distributed as dist_utils
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    save_checkpoint,
)
from .history import History

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}

Callback = Callable[..., Optional[bool]]


def resolve_device(device: Union[None, str, torch.device]) -> torch.device:
    """``None``/``"auto"`` -> CUDA if available else CPU; otherwise validated ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev


def _make_optimizer(name: str, params: List[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name not in _OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid names are: {', '.join(sorted(_OPTIMIZERS))}")
    return _OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)


class _EMA:
    """Exponential moving average of parameters: θ_ema <- d_t θ_ema + (1 - d_t) θ with the warm-up
    d_t = min(d, (1 + t) / (10 + t)) of TensorFlow's ``ExponentialMovingAverage(num_updates=t)``, so that short runs
    are not dominated by the initial weights."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def copy_to(self, module: torch.nn.Module) -> None:
        sd = module.state_dict()
        sd.update({k: v.clone() for k, v in self.shadow.items()})
        module.load_state_dict(sd)


def fit(
    energy: torch.nn.Module,
    data: torch.Tensor,
    objective,
    *,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    grad_clip: Optional[float] = None,
    lr_schedule: str = "constant",
    ema: Optional[float] = None,
    seed: Optional[int] = 0,
    device: Union[None, str, torch.device] = None,
    progress: bool = False,
    eval_every: Optional[int] = None,
    eval_fn: Optional[Callable[[torch.nn.Module, int], Dict[str, float]]] = None,
    checkpoint_dir: Union[None, str, Path] = None,
    checkpoint_every: Optional[int] = None,
    resume: bool = False,
    log_csv: Union[None, str, Path] = None,
    log_every: int = 1,
    callbacks: Sequence[Callback] = (),
    config: Optional[Dict[str, Any]] = None,
) -> History:
    """Train ``energy`` on ``data`` by minimising ``objective`` with a first-order optimiser.

    Each iteration takes the next ``batch_size`` rows of a random permutation of the data, drawn anew every epoch
    (from a generator seeded with ``seed``, so runs are reproducible and resume exactly), evaluates ``out = objective(energy, batch,
    generator=g)``, back-propagates ``out.loss`` and steps the optimiser over the energy's parameters and the
    objective's own (e.g. NCE's log-normaliser).

    Parameters
    ----------
    energy : Energy
        The model; trained in place.
    data : Tensor[n, ...]
        Training data, rows are samples (validated: finite, at least 2 rows).
    objective : Objective
        Any callable following :mod:`ebmlab.objectives.base`. If it has ``prepare(data)``, it is called once first.
    steps : int
        Total number of iterations (a resumed run continues up to ``steps``).
    batch_size, lr, optimizer, weight_decay : training hyper-parameters (``optimizer`` in adam, adamw, sgd, rmsprop).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` anneals the learning rate as lr · ½(1 + cos(π t / steps)) (Loshchilov & Hutter 2017).
    ema : float, optional
        Keep an exponential moving average of the weights with this decay (e.g. 0.999) and load it into ``energy``
        at the end (the raw weights are saved in checkpoints alongside).
    seed : int, optional
        Seed of the training generator (minibatches, MCMC, noise); in a distributed run, rank r uses ``seed + r``.
        ``None`` draws a fresh seed from the operating system (the global torch RNG is never read or reseeded) and
        records it as ``History.seed`` and in the checkpoints, so the run can be repeated exactly.
    device : str, optional
        ``"auto"`` (default: CUDA if available), ``"cpu"``, ``"cuda"``.
    eval_every, eval_fn : run ``eval_fn(energy, step) -> dict`` every ``eval_every`` iterations (and at the end);
        with ``ema`` the evaluation sees the averaged weights.
    checkpoint_dir, checkpoint_every : write ``checkpoint_dir/checkpoint.safetensors`` atomically every
        ``checkpoint_every`` iterations (default: every 10% of ``steps``) and at the end.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` (weights, optimiser, objective state such as a PCD buffer,
        EMA, generator state): resuming reproduces the uninterrupted run exactly.
    log_csv : path, optional
        Append one CSV row per ``log_every`` iterations (step, loss, time, objective stats).
    callbacks : sequence of callables
        Called as ``cb(step=, loss=, stats=, energy=)`` after every iteration; returning ``True`` stops training.
    config : dict, optional
        JSON-able description stored in checkpoints (used by :class:`ebmlab.EnergyModel` and the CLI to rebuild).

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When the loss or its gradient becomes non-finite; the message names the step, and the last checkpoint
        written (before the divergence) is kept.
    """
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_positive("lr", lr)
    weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
    log_every = check_int("log_every", log_every, minimum=1)
    if grad_clip is not None:
        grad_clip = check_positive("grad_clip", grad_clip)
    if lr_schedule not in ("constant", "cosine"):
        raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if ema is not None:
        ema = check_probability("ema", ema, open_high=True)
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every, minimum=1)
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, minimum=1)
    if resume and checkpoint_dir is None:
        raise ConfigError("resume=True needs checkpoint_dir (the run directory holding checkpoint.safetensors)")
    if not callable(objective):
        raise ConfigError(f"objective must be callable as objective(energy, batch, generator=g), got {objective!r}")
    data = check_data(data, name="training data", ndim=None)

    dev = resolve_device(device)
    distributed = dist_utils.init_from_env(dev)
    rank = dist_utils.rank()
    if dev.type == "cuda" and distributed:
        dev = torch.device("cuda", torch.cuda.current_device())
    energy.to(dev)
    if hasattr(objective, "to"):
        objective.to(dev)
    data = data.to(dev, dtype=next((p.dtype for p in energy.parameters()), data.dtype) if data.is_floating_point() else data.dtype)

    if hasattr(objective, "prepare"):
        objective.prepare(data)
    params = [p for p in energy.parameters() if p.requires_grad]
    extra = [p for p in (objective.parameters() if hasattr(objective, "parameters") else []) if p.requires_grad]
    if not params and not extra:
        raise ConfigError("the energy has no trainable parameters")
    opt = _make_optimizer(optimizer, params + extra, lr, weight_decay)
    dist_utils.broadcast_parameters(params + extra)
    ema_state = _EMA(energy, ema) if ema is not None else None

    if seed is None:
        # A fresh seed from the OS (torch's global generator is neither read nor reseeded), shared by every rank
        # and recorded in the history and the checkpoints, so the run can be reproduced with seed=history.seed.
        seed = dist_utils.broadcast_int(fresh_seed())
    history = History(seed=int(seed))
    gen = torch.Generator(device=dev)
    base_seed = int(seed) + rank
    gen.manual_seed(base_seed)
    idx_gen = torch.Generator(device="cpu")
    idx_gen.manual_seed(base_seed + 7919)

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None and checkpoint_every is None:
        checkpoint_every = max(1, steps // 10)
    n = data.shape[0]
    order: Dict[str, Any] = {"perm": None, "pos": 0}

    def next_indices() -> torch.Tensor:
        parts, need = [], batch_size
        while need > 0:
            if order["perm"] is None or order["pos"] >= n:
                order["perm"], order["pos"] = torch.randperm(n, generator=idx_gen), 0
            take = min(need, n - order["pos"])
            parts.append(order["perm"][order["pos"]:order["pos"] + take])
            order["pos"] += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    start_step = 0
    previous_time = 0.0
    if resume:
        path = ckpt_dir / CHECKPOINT_NAME
        if not path.exists():
            raise DataError(f"cannot resume: no checkpoint at {path}")
        groups, meta = load_checkpoint(path)
        energy.load_state_dict({k: v.to(dev) for k, v in groups.get("energy", {}).items()})
        optimizer_state_from_tensors(opt, {k: v.to(dev) for k, v in groups.get("optim", {}).items()}, meta["optimizer"])
        if hasattr(objective, "load_state_dict"):
            objective.load_state_dict({k: v for k, v in groups.get("objective", {}).items()})
        for k, v in groups.get("objective_params", {}).items():
            extra[int(k)].data.copy_(v.to(dev))
        if ema_state is not None and "ema" in groups:
            ema_state.shadow = {k: v.to(dev) for k, v in groups["ema"].items()}
        rng = groups.get("rng", {})
        if f"gen{rank}" in rng:
            gen.set_state(rng[f"gen{rank}"].to(gen.get_state().device))
            idx_gen.set_state(rng[f"idx{rank}"])
        if f"perm{rank}" in rng:
            order["perm"] = rng[f"perm{rank}"].long()
            order["pos"] = int(meta.get("perm_pos", 0))
        start_step = int(meta["step"])
        if meta.get("seed") is not None:
            history.seed = int(meta["seed"])
        previous_time = float(meta.get("wall_time_total", 0.0))
        h = meta.get("history", {})
        history.steps, history.loss = list(h.get("steps", [])), list(h.get("loss", []))
        history.stats, history.evals = list(h.get("stats", [])), list(h.get("evals", []))
        if start_step >= steps:
            history.wall_time_total = previous_time
            if ema_state is not None:
                ema_state.copy_to(energy)
            return history

    def write_checkpoint(step: int, elapsed: float) -> None:
        if ckpt_dir is None or rank != 0:
            return
        optim_tensors, optim_meta = optimizer_state_to_tensors(opt)
        groups = {
            "energy": dict(energy.state_dict()),
            "optim": optim_tensors,
            "objective": dict(objective.state_dict()) if hasattr(objective, "state_dict") else {},
            "objective_params": {str(i): p.detach() for i, p in enumerate(extra)},
            "rng": {f"gen{rank}": gen.get_state(), f"idx{rank}": idx_gen.get_state()},
        }
        if order["perm"] is not None:
            groups["rng"][f"perm{rank}"] = order["perm"]
        if ema_state is not None:
            groups["ema"] = ema_state.shadow
        meta = {
            "step": step,
            "steps": steps,
            "seed": history.seed,
            "wall_time_total": previous_time + elapsed,
            "perm_pos": order["pos"],
            "optimizer": optim_meta,
            "config": config or {},
            "history": {"steps": history.steps, "loss": history.loss, "stats": history.stats, "evals": history.evals},
        }
        save_checkpoint(ckpt_dir / CHECKPOINT_NAME, groups, meta)

    csv_file = None
    csv_writer = None
    csv_keys: List[str] = []
    if log_csv is not None and rank == 0:
        log_csv = Path(log_csv)
        log_csv.parent.mkdir(parents=True, exist_ok=True)
        csv_file = open(log_csv, "a" if resume and log_csv.exists() else "w", newline="")

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc="train", dynamic_ncols=True, leave=False)

    t0 = time.perf_counter()
    step = start_step
    try:
        for step in range(start_step + 1, steps + 1):
            idx = next_indices().to(dev)
            batch = data[idx]
            out = objective(energy, batch, generator=gen)
            loss = out.loss
            if not torch.isfinite(loss):
                raise TrainingDivergedError(_diverged_message(step, "loss", float(loss.detach()), ckpt_dir, history))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            dist_utils.average_gradients(params + extra)
            if grad_clip is not None:
                gnorm = torch.nn.utils.clip_grad_norm_(params + extra, grad_clip)
            else:
                gnorm = torch.sqrt(sum((p.grad.detach().pow(2).sum() for p in params + extra if p.grad is not None),
                                       torch.zeros((), device=dev)))
            if not torch.isfinite(gnorm):
                raise TrainingDivergedError(_diverged_message(step, "gradient norm", float(gnorm), ckpt_dir, history))
            if lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))
            opt.step()
            if ema_state is not None:
                ema_state.update(energy, step)

            loss_value = dist_utils.all_reduce_mean(float(loss.detach()))
            stats = dict(out.stats)
            stats["grad_norm"] = float(gnorm)
            if step % log_every == 0 or step == steps:
                history.steps.append(step)
                history.loss.append(loss_value)
                history.stats.append(stats)
                if csv_file is not None:
                    row = {"step": step, "loss": loss_value, "time": previous_time + time.perf_counter() - t0, **stats}
                    if csv_writer is None:
                        csv_keys = list(row)
                        csv_writer = csv.DictWriter(csv_file, fieldnames=csv_keys, extrasaction="ignore")
                        if csv_file.tell() == 0:
                            csv_writer.writeheader()
                    csv_writer.writerow(row)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps:
                    bar.set_postfix(loss=f"{loss_value:.4g}")
            if eval_fn is not None and eval_every is not None and (step % eval_every == 0 or step == steps):
                if ema_state is not None:  # evaluate the averaged weights, then put the raw ones back
                    raw = {k: v.detach().clone() for k, v in energy.state_dict().items()}
                    ema_state.copy_to(energy)
                result = dict(eval_fn(energy, step))
                if ema_state is not None:
                    energy.load_state_dict(raw)
                result["step"] = step
                history.evals.append(result)
            if checkpoint_every is not None and (step % checkpoint_every == 0 or step == steps):
                write_checkpoint(step, time.perf_counter() - t0)
            stop = False
            for cb in callbacks:
                stop = bool(cb(step=step, loss=loss_value, stats=stats, energy=energy)) or stop
            if stop:
                history.stopped_early = True
                write_checkpoint(step, time.perf_counter() - t0)
                break
    finally:
        if bar is not None:
            bar.close()
        if csv_file is not None:
            csv_file.close()
    history.wall_time = time.perf_counter() - t0
    history.wall_time_total = previous_time + history.wall_time
    if ema_state is not None:
        ema_state.copy_to(energy)
    return history


def _diverged_message(step: int, what: str, value: float, ckpt_dir: Optional[Path], history: History) -> str:
    where = (f"; the last good checkpoint is kept in {ckpt_dir}" if ckpt_dir is not None and (ckpt_dir / CHECKPOINT_NAME).exists()
             else "")
    return (f"training diverged at step {step}: the {what} is {value}{where}. Try a smaller learning rate or sampler "
            f"step size, gradient clipping (grad_clip), or an energy penalty (energy_reg > 0)")
