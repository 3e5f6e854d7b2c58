"""The training loop: :func:`fit`.

One loop for every objective: it draws minibatches with a seeded generator, calls ``objective(energy, batch,
generator=g)``, steps the optimiser, and owns device placement, progress, CSV logging, periodic evaluation, EMA
weights, atomic checkpoints with exact resume, a NaN guard and the divergence watchdog with rollback
(:mod:`ebmlab.train.watchdog`), and data parallelism through ``torch.distributed`` (see
:mod:`ebmlab.train.distributed`).
"""
from __future__ import annotations

import copy
import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.random import fresh_seed
from .._core.validation import (check_data, check_energy, check_energy_accepts, check_int, check_positive,
                                check_probability, check_seed)
from . import distributed as dist_utils
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    save_checkpoint,
)
from .history import History
from .watchdog import Watchdog, resolve_watchdog

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
    watchdog: Union[None, bool, str, Watchdog] = None,
    buffer_mix_every: Optional[int] = None,
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
    batch_size : int
        The global minibatch: in a run over W processes each takes ``batch_size / W`` rows of the same global batch
        (``batch_size`` must be divisible by W; see :mod:`ebmlab.train.distributed`).
    lr, optimizer, weight_decay : training hyper-parameters (``optimizer`` in adam, adamw, sgd, rmsprop).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` anneals the learning rate as lr · ½(1 + cos(π t / steps)) (Loshchilov & Hutter 2017).
    ema : float, optional
        Keep an exponential moving average of the weights with this decay (e.g. 0.999) and load it into ``energy``
        at the end (the raw weights are saved in checkpoints alongside).
    seed : int, optional
        Seed of the training generators (minibatches, MCMC, noise); in a distributed run every rank draws the same
        data order and rank r's MCMC/noise generator is seeded with
        :func:`ebmlab.train.distributed.rank_seed` ``(seed, r)`` (``seed`` itself on rank 0).
        ``None`` draws a fresh seed from the operating system (the global torch RNG is never read or reseeded) and
        records it as ``History.seed`` and in the checkpoints, so the run can be repeated exactly.
    device : str, optional
        ``"auto"`` (default: CUDA if available), ``"cpu"``, ``"cuda"``.
    eval_every, eval_fn : run ``eval_fn(energy, step) -> dict`` every ``eval_every`` iterations (and at the end);
        with ``ema`` the evaluation sees the averaged weights.
    checkpoint_dir, checkpoint_every : write ``checkpoint_dir/checkpoint.safetensors`` atomically every
        ``checkpoint_every`` iterations (default: every 10% of ``steps``) and at the end (rank 0 only).
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` (weights, optimiser, objective state such as a PCD buffer,
        EMA, generator states, data order, watchdog state): resuming reproduces the uninterrupted run exactly; a
        checkpoint may be resumed with another number of processes (then the random streams differ).
    log_csv : path, optional
        One CSV row per ``log_every`` iterations (step, loss, time, objective stats), flushed at every row; on resume
        the rows after the checkpoint's step (written before a crash) are dropped first, so no step appears twice.
    callbacks : sequence of callables
        Called as ``cb(step=, loss=, stats=, energy=)`` after every iteration; returning ``True`` stops training.
    config : dict, optional
        JSON-able description stored in checkpoints (used by :class:`ebmlab.EnergyModel` and the CLI to rebuild).
    watchdog : {None, False, True, "on", "off"} or Watchdog
        Divergence detection with rollback to the last good state and bounded retries
        (:class:`ebmlab.train.watchdog.Watchdog`); off by default in this function, on by default in the CLI. The
        rollback point is a copy of the state kept in memory at every checkpoint step (every 10% of ``steps``
        without ``checkpoint_dir``), the same state that is written to disk.
    buffer_mix_every : int, optional
        In a distributed run, every ``buffer_mix_every`` iterations pool the objective's sharded chains (the PCD
        replay buffer) of all ranks and deal them out again by one random permutation, so no rank's chains stay
        confined to it; off by default (each rank keeps its own chains).

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When the loss or its gradient becomes non-finite (without a watchdog), or when the watchdog has used up its
        retries; the message names the step, and the last good checkpoint is kept.
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
    if buffer_mix_every is not None:
        buffer_mix_every = check_int("buffer_mix_every", buffer_mix_every, minimum=1)
    if resume and checkpoint_dir is None:
        raise ConfigError("resume=True needs checkpoint_dir (the run directory holding checkpoint.safetensors)")
    if not callable(objective):
        raise ConfigError(f"objective must be callable as objective(energy, batch, generator=g), got {objective!r}")
    guard = resolve_watchdog(watchdog)
    data = check_data(data, name="training data", ndim=None)
    check_energy(energy)
    seed = check_seed("seed", seed)

    dev = resolve_device(device)
    distributed = dist_utils.init_from_env(dev)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    if dev.type == "cuda" and distributed:
        dev = torch.device("cuda", torch.cuda.current_device())
    if batch_size % world:
        raise ConfigError(f"batch_size={batch_size} is the global batch and must be divisible by the number of "
                          f"processes ({world})")
    local_batch = batch_size // world
    sharded = tuple(getattr(objective, "sharded_state", ()))
    if sharded and world > 1:
        global_buffer = int(objective.buffer_size)
        if global_buffer % world:
            raise ConfigError(f"buffer_size={global_buffer} is split over {world} processes and must be divisible by it")
        objective.buffer_size = global_buffer // world
    energy.to(dev)
    if hasattr(objective, "to"):
        objective.to(dev)
    data = data.to(dev, dtype=next((p.dtype for p in energy.parameters()), data.dtype) if data.is_floating_point() else data.dtype)
    check_energy_accepts(energy, data, objective)

    if hasattr(objective, "prepare"):
        objective.prepare(data)
    params = [p for p in energy.parameters() if p.requires_grad]
    extra = [p for p in (objective.parameters() if hasattr(objective, "parameters") else []) if p.requires_grad]
    if not params and not extra:
        raise ConfigError("the energy has no trainable parameters")
    opt = _make_optimizer(optimizer, params + extra, lr, weight_decay)
    dist_utils.broadcast_parameters(params + extra)
    ema_state = _EMA(energy, ema) if ema is not None else None
    base_sample_steps = int(objective.steps) if (getattr(objective, "needs_sampler", False)
                                                 and isinstance(getattr(objective, "steps", None), int)) else None

    if seed is None:
        # A fresh seed from the OS (torch's global generator is neither read nor reseeded), shared by every rank
        # and recorded in the history and the checkpoints, so the run can be reproduced with seed=history.seed.
        seed = dist_utils.broadcast_int(fresh_seed())
    history = History(seed=int(seed))
    gen = torch.Generator(device=dev)
    gen.manual_seed(dist_utils.rank_seed(int(seed), rank))
    idx_gen = torch.Generator(device="cpu")  # the data order: the same stream on every rank
    idx_gen.manual_seed(int(seed) + 7919)
    mix_gen = torch.Generator(device="cpu")  # the cross-rank buffer mix: the same stream on every rank
    mix_gen.manual_seed(int(seed) + 104729)

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None and checkpoint_every is None:
        checkpoint_every = max(1, steps // 10)
    # how often a state is recorded (written to ckpt_dir if any; kept in memory as the watchdog's rollback point)
    snapshot_every = checkpoint_every if checkpoint_every is not None else (max(1, steps // 10) if guard else None)
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
        idx = parts[0] if len(parts) == 1 else torch.cat(parts)
        return idx[rank * local_batch:(rank + 1) * local_batch]

    clock = {"previous": 0.0, "t0": time.perf_counter()}

    def capture(step: int) -> Tuple[Dict[str, Dict[str, torch.Tensor]], Dict[str, Any]]:
        """The full training state at the end of iteration ``step`` (copies; a collective call when distributed)."""
        optim_tensors, optim_meta = optimizer_state_to_tensors(opt)
        obj_state = dict(objective.state_dict()) if hasattr(objective, "state_dict") else {}
        if world > 1:
            for key in sharded:
                if key in obj_state:
                    obj_state[key] = dist_utils.all_gather_cat(obj_state[key])
        gen_states = dist_utils.all_gather_cat(gen.get_state().cpu().unsqueeze(0))
        groups = {
            "energy": {k: v.detach().clone() for k, v in energy.state_dict().items()},
            "optim": {k: v.detach().clone() for k, v in optim_tensors.items()},
            "objective": {k: v.detach().clone() for k, v in obj_state.items()},
            "objective_params": {str(i): p.detach().clone() for i, p in enumerate(extra)},
            "rng": {"gen": gen_states.clone(), "idx": idx_gen.get_state(), "mix": mix_gen.get_state()},
        }
        if order["perm"] is not None:
            groups["rng"]["perm"] = order["perm"].clone()
        if ema_state is not None:
            groups["ema"] = {k: v.clone() for k, v in ema_state.shadow.items()}
        meta = {
            "step": step,
            "steps": steps,
            "seed": history.seed,
            "world_size": world,
            "wall_time_total": clock["previous"] + time.perf_counter() - clock["t0"],
            "perm_pos": order["pos"],
            "optimizer": copy.deepcopy(optim_meta),
            "config": config or {},
            "history": copy.deepcopy({"steps": history.steps, "loss": history.loss, "stats": history.stats,
                                      "evals": history.evals}),
        }
        if guard is not None:
            meta["watchdog"] = copy.deepcopy(guard.state_dict())
        return groups, meta

    def restore(groups: Dict[str, Dict[str, torch.Tensor]], meta: Dict[str, Any], *, watchdog_state: bool) -> int:
        """Load a state written by :func:`capture` (this run's or a checkpoint's); returns its step."""
        try:
            energy.load_state_dict({k: v.to(dev) for k, v in groups.get("energy", {}).items()})
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()
            raise DataError(f"the checkpoint's weights do not fit this energy (was it written with another "
                            f"configuration?): {first}") from None
        optimizer_state_from_tensors(opt, {k: v.to(dev) for k, v in groups.get("optim", {}).items()}, meta["optimizer"])
        obj_state = dict(groups.get("objective", {}))
        saved_world = int(meta.get("world_size", 1))
        for key in sharded:
            if key in obj_state and world > 1:
                full = obj_state[key]
                if full.shape[0] % world:
                    raise DataError(f"the checkpoint's {key} holds {full.shape[0]} rows, which {world} processes "
                                    f"cannot share equally")
                m = full.shape[0] // world
                obj_state[key] = full[rank * m:(rank + 1) * m]
        if hasattr(objective, "load_state_dict"):
            objective.load_state_dict({k: v.clone() for k, v in obj_state.items()})
        for k, v in groups.get("objective_params", {}).items():
            extra[int(k)].data.copy_(v.to(dev))
        if ema_state is not None and "ema" in groups:
            ema_state.shadow = {k: v.to(dev).clone() for k, v in groups["ema"].items()}
        rng = groups.get("rng", {})
        gdev = gen.get_state().device
        if "gen" in rng and rank < saved_world:
            gen.set_state(rng["gen"][rank].to(gdev).clone())
        elif f"gen{rank}" in rng:  # checkpoints written before one state per rank was kept
            gen.set_state(rng[f"gen{rank}"].to(gdev))
        else:  # a rank that did not exist when the checkpoint was written starts its own stream
            gen.manual_seed(dist_utils.rank_seed(int(meta.get("seed") or seed), rank))
        idx_state = rng.get("idx", rng.get("idx0"))
        if idx_state is not None:
            idx_gen.set_state(idx_state.clone())
        if "mix" in rng:
            mix_gen.set_state(rng["mix"].clone())
        perm = rng.get("perm", rng.get("perm0"))
        order["perm"] = perm.long().clone() if perm is not None else None
        order["pos"] = int(meta.get("perm_pos", 0))
        h = copy.deepcopy(meta.get("history", {}))
        history.steps, history.loss = list(h.get("steps", [])), list(h.get("loss", []))
        history.stats, history.evals = list(h.get("stats", [])), list(h.get("evals", []))
        if meta.get("seed") is not None:
            history.seed = int(meta["seed"])
        if guard is not None and watchdog_state and "watchdog" in meta:
            guard.load_state_dict(meta["watchdog"])
        if base_sample_steps is not None and guard is not None:
            objective.steps = base_sample_steps * guard.sample_steps_scale
        return int(meta["step"])

    def save(snapshot: Tuple[Dict[str, Dict[str, torch.Tensor]], Dict[str, Any]]) -> None:
        if ckpt_dir is not None and rank == 0:
            save_checkpoint(ckpt_dir / CHECKPOINT_NAME, *snapshot)

    start_step = 0
    if resume:
        path = ckpt_dir / CHECKPOINT_NAME
        if not path.exists():
            raise DataError(f"cannot resume: no checkpoint at {path}")
        groups, meta = load_checkpoint(path)
        start_step = restore(groups, meta, watchdog_state=True)
        clock["previous"] = float(meta.get("wall_time_total", 0.0))
        if start_step >= steps:
            history.wall_time_total = clock["previous"]
            if ema_state is not None:
                ema_state.copy_to(energy)
            return history

    if guard is not None:
        guard.dim = max(1, int(data[0].numel()))
    last_good = capture(start_step) if guard is not None else None

    csv_file = None
    csv_writer = None
    if log_csv is not None and rank == 0:
        log_csv = Path(log_csv)
        log_csv.parent.mkdir(parents=True, exist_ok=True)
        if resume and log_csv.exists():
            _truncate_log(log_csv, start_step)
        csv_file = open(log_csv, "a" if resume and log_csv.exists() else "w", newline="")

    def log_row(row: Dict[str, Any]) -> None:
        nonlocal csv_writer
        if csv_file is None:
            return
        if csv_writer is None:
            keys = list(row) + (["watchdog"] if guard is not None and "watchdog" not in row else [])
            if csv_file.tell() > 0:  # appending after a resume: keep the header already there
                with open(log_csv, newline="") as f:
                    keys = next(csv.reader(f), keys) or keys
            csv_writer = csv.DictWriter(csv_file, fieldnames=keys, extrasaction="ignore", restval="")
            if csv_file.tell() == 0:
                csv_writer.writeheader()
        csv_writer.writerow(row)
        csv_file.flush()

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc="train", dynamic_ncols=True, leave=False)

    clock["t0"] = time.perf_counter()
    step = start_step
    try:
        while step < steps:
            step += 1
            idx = next_indices().to(dev)
            batch = data[idx]
            out = objective(energy, batch, generator=gen)
            loss = out.loss
            loss_value = dist_utils.all_reduce_mean(float(loss.detach()))
            stats = dict(out.stats)
            reason = None
            if not math.isfinite(loss_value):
                reason, what, value = f"the loss is {loss_value}", "loss", loss_value
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                dist_utils.average_gradients(params + extra)
                if grad_clip is not None:
                    gnorm = torch.nn.utils.clip_grad_norm_(params + extra, grad_clip)
                else:
                    gnorm = torch.sqrt(sum((p.grad.detach().pow(2).sum() for p in params + extra if p.grad is not None),
                                           torch.zeros((), device=dev)))
                stats["grad_norm"] = float(gnorm)
                stats = dist_utils.all_reduce_mean_dict(stats)
                if not math.isfinite(stats["grad_norm"]):
                    reason, what, value = f"the gradient norm is {stats['grad_norm']}", "gradient norm", stats["grad_norm"]
                elif guard is not None:
                    reason = guard.check(step, loss_value, stats)
                    what, value = "loss", loss_value
            if reason is not None:
                if guard is None:
                    raise TrainingDivergedError(_diverged_message(step, what, value, ckpt_dir, history))
                if not guard.can_retry():
                    raise TrainingDivergedError(
                        f"training diverged at step {step} ({reason}) and the watchdog has used its "
                        f"{guard.max_retries} retries ({guard.report()})"
                        + (f"; the last good checkpoint (step {last_good[1]['step']}) is kept in {ckpt_dir}"
                           if ckpt_dir is not None and (ckpt_dir / CHECKPOINT_NAME).exists() else "")
                        + ". Try a smaller learning rate or sampler step size, gradient clipping (grad_clip), or an "
                          "energy penalty (energy_reg > 0)")
                to_step = restore(*last_good, watchdog_state=False)
                event = guard.record_rollback(step, to_step, reason, lr * guard.lr_scale,
                                              objective.steps if base_sample_steps is not None else None)
                if base_sample_steps is not None:
                    objective.steps = base_sample_steps * guard.sample_steps_scale
                message = (f"watchdog: step {step}: {reason}; rolled back to step {to_step}, retry "
                           f"{event['retry']}/{guard.max_retries} with lr {event['lr']:.3g}"
                           + (f" and {objective.steps} sampler steps" if base_sample_steps is not None else ""))
                if rank == 0:
                    print(message, file=sys.stderr, flush=True)
                log_row({"step": step, "loss": loss_value, "time": clock["previous"] + time.perf_counter() - clock["t0"],
                         **stats, "watchdog": message})
                last_good = capture(to_step)
                save(last_good)
                if bar is not None:
                    bar.n = to_step
                    bar.refresh()
                step = to_step
                continue
            scale = guard.lr_scale if guard is not None else 1.0
            for group in opt.param_groups:
                group["lr"] = lr * scale * (0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))
                                            if lr_schedule == "cosine" else 1.0)
            opt.step()
            if ema_state is not None:
                ema_state.update(energy, step)
            if buffer_mix_every is not None and world > 1 and step % buffer_mix_every == 0:
                _mix_sharded_state(objective, sharded, mix_gen, rank, world)

            if step % log_every == 0 or step == steps:
                history.steps.append(step)
                history.loss.append(loss_value)
                history.stats.append(stats)
                log_row({"step": step, "loss": loss_value, "time": clock["previous"] + time.perf_counter() - clock["t0"],
                         **stats})
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
            stop = False
            for cb in callbacks:
                stop = bool(cb(step=step, loss=loss_value, stats=stats, energy=energy)) or stop
            if stop:
                history.stopped_early = True
            if stop or (snapshot_every is not None and (step % snapshot_every == 0 or step == steps)):
                # with a watchdog a state is recorded (and written) only if every iteration since the last good one
                # passed its checks, so the checkpoint never holds a diverged state
                if guard is None or guard.good_now():
                    snapshot = capture(step)
                    save(snapshot)
                    if guard is not None:
                        last_good = snapshot
                        guard.mark_good()
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
        if csv_file is not None:
            csv_file.close()
    history.wall_time = time.perf_counter() - clock["t0"]
    history.wall_time_total = clock["previous"] + history.wall_time
    if ema_state is not None:
        ema_state.copy_to(energy)
    return history


def _mix_sharded_state(objective, keys: Sequence[str], generator: torch.Generator, rank: int, world: int) -> None:
    """Pool the sharded chains of every rank and deal them out again by one permutation (the same on every rank)."""
    state = dict(objective.state_dict())
    for key in keys:
        if key not in state:
            continue
        full = dist_utils.all_gather_cat(state[key])
        perm = torch.randperm(full.shape[0], generator=generator)
        m = full.shape[0] // world
        state[key] = full[perm[rank * m:(rank + 1) * m].to(full.device)]
    objective.load_state_dict(state)


def _truncate_log(path: Path, step: int) -> None:
    """Drop the rows of ``path`` after ``step`` (written after the checkpoint a run resumes from), atomically."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    try:
        col = header.index("step")
    except ValueError:
        return
    event = header.index("watchdog") if "watchdog" in header else None
    kept = [r for r in body if r and r[col].strip().isdigit()
            and (int(r[col]) <= step or (event is not None and len(r) > event and r[event]))]
    if len(kept) == len(body):
        return
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(kept)
    os.replace(tmp, path)


def _diverged_message(step: int, what: str, value: float, ckpt_dir: Optional[Path], history: History) -> str:
    where = (f"; the last good checkpoint is kept in {ckpt_dir}" if ckpt_dir is not None and (ckpt_dir / CHECKPOINT_NAME).exists()
             else "")
    return (f"training diverged at step {step}: the {what} is {value}{where}. Try a smaller learning rate or sampler "
            f"step size, gradient clipping (grad_clip), or an energy penalty (energy_reg > 0)")
