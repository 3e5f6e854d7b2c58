"""Run directories: what ``ebmlab train | sample | evaluate`` do, as functions.

A run directory holds ``config.yaml`` (the resolved configuration), ``checkpoint.safetensors`` (training state,
written atomically, for ``--resume``), ``model.safetensors`` (final weights + configuration), ``log.csv`` (loss and
statistics per iteration), ``metrics.json``, ``samples.png``, ``energy.png`` (2-D data) and ``loss.png``.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from ._core.errors import ConfigError, DataError, TrainingDivergedError
from ._core.fsutil import atomic_write_text, check_writable_dir, remove_stale_tmp
from ._core.random import as_generator
from .estimator import MODEL_FILE, EnergyModel



def _data_splits(cfg: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(train, test, reference, name); ``reference`` is an independent draw of the data of the test set's size,
    for the data-vs-data floor of the two-sample metrics (see :mod:`ebmlab.data.spec` for the accepted specs)."""
    from .data import load_data
    from .data.spec import draw, parse_spec

    spec, seed = cfg["data"], int(cfg["seed"])
    kind, name, _ = parse_spec(spec)
    if kind != "file":
        n_train, n_test = int(cfg["n_train"]), int(cfg["n_test"])
        if n_train < 2 or n_test < 2:
            raise ConfigError(f"n_train and n_test must be >= 2, got {n_train} and {n_test}")
        label = {"toy": name, "gray": f"gray-{name}", "ising": "ising"}[kind]
        return draw(spec, n_train, seed), draw(spec, n_test, seed + 1), draw(spec, n_test, seed + 2), label
    path = Path(spec).expanduser()
    x = load_data(path)
    if x.shape[0] < 10:
        raise DataError(f"{path} has {x.shape[0]} rows; at least 10 are needed to hold out a test set")
    g = as_generator(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_hold = max(4, x.shape[0] // 5)
    hold = x[perm[:n_hold]]
    half = n_hold // 2
    return x[perm[n_hold:]], hold[:half], hold[half:2 * half], path.stem


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _bounds(x: torch.Tensor, name: str):
    from .data import toy_bounds, toy_names

    if name in toy_names():
        return toy_bounds(name)
    lo, hi = x.min(0).values, x.max(0).values
    m = 0.1 * (hi - lo)
    return ((float(lo[0] - m[0]), float(hi[0] + m[0])), (float(lo[1] - m[1]), float(hi[1] + m[1])))


def _unique_run_dir(name: str) -> Path:
    from .cli import check_run_name

    check_run_name(name)
    base = Path("runs") / name
    if not base.exists():
        return base
    k = 2
    while (Path("runs") / f"{name}-{k}").exists():
        k += 1
    return Path("runs") / f"{name}-{k}"


def reject_unused_keys(cfg: Dict[str, Any], model: str, used) -> None:
    """Refuse configuration keys that ``--model model`` does not read but that were set away from their defaults
    (``ebmlab.cli.DEFAULTS``), so that no option is ignored silently.  ``used`` is the set of keys the model reads."""
    from .cli import DEFAULTS

    ignored = sorted(k for k, v in cfg.items()
                     if k not in used and k not in ("model", "out") and k in DEFAULTS and v != DEFAULTS[k])
    if ignored:
        raise ConfigError(f"--model {model} does not use {', '.join(ignored)}; the keys it reads are: "
                          f"{', '.join(sorted(set(used) - {'model'}))}")


def new_run_dir(cfg: Dict[str, Any], out: Optional[Path], resume: bool, default_name: str) -> Path:
    """The run directory of a training run: ``out`` if given (refusing to overwrite a finished or started run
    unless ``resume``), else ``runs/<name>`` with ``name = cfg['name'] or default_name`` made unique; created."""
    name = cfg.get("name") or default_name
    if out is None:
        run_dir = _unique_run_dir(str(name))
    else:
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"--out {run_dir} is a file; give a directory for the run")
        if not resume and (run_dir / "checkpoint.safetensors").exists():
            raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    check_writable_dir(run_dir, "run directory")
    stale = remove_stale_tmp(run_dir)
    if stale:
        print(f"note: removed {len(stale)} unfinished temporary file(s) left by an interrupted write in {run_dir}: "
              f"{', '.join(stale)}", file=sys.stderr)
    return run_dir


def model_config_keys() -> Tuple[str, ...]:
    """The configuration keys that are :class:`EnergyModel` parameters: its constructor's, with the facade's
    ``random_state`` spelled ``seed`` as everywhere else in the command (one list, read from the constructor)."""
    return tuple("seed" if k == "random_state" else k for k in EnergyModel.parameter_names())


def _model_from_config(cfg: Dict[str, Any]) -> EnergyModel:
    params = {k: cfg[k] for k in model_config_keys() if k in cfg}
    params["random_state"] = params.pop("seed", None)
    return EnergyModel(**params)


def evaluate_model(model: EnergyModel, test: torch.Tensor, reference: torch.Tensor, cfg: Dict[str, Any],
                   data_name: str, seed: int = 1, progress: str = "off") -> Tuple[Dict[str, Any], torch.Tensor]:
    """Sample the model and compare with held-out data; returns (metrics, samples).

    ``cfg["n_samples"]`` samples (1 ... number of test points; more is refused, never capped).  ``progress="lines"``
    prints one line per ~10 % of the sampling and one per later phase on stderr.  A diverged model (non-finite or
    exploded samples) gets ``metrics["diverged"]`` = the reason."""
    from . import metrics as M
    from .data import toy_density, toy_names

    n = _check_n_samples(cfg.get("n_samples"), test.shape[0], "n_samples")
    t0 = time.perf_counter()
    callbacks = []
    if progress == "lines":
        print(f"evaluate: drawing {n} samples with {int(model.sample_steps)} sampler steps", file=sys.stderr, flush=True)
        lines = _ProgressLines("evaluate: sampling", int(model.sample_steps))
        callbacks.append(lambda step, **_: lines(step + 1))
    samples = model.sample(n, random_state=seed, callbacks=callbacks).cpu()
    sample_time = time.perf_counter() - t0
    problem = _explosion(samples, torch.cat([test, reference]), bool(model.discrete_))
    if problem:
        # no two-sample metrics: they would only measure how far the chains flew (Sinkhorn of 1e16, ...)
        out_bad: Dict[str, Any] = {"diverged": problem, "n_samples": n, "sample_steps": int(model.sample_steps),
                                   "sample_seconds": sample_time, "samples_finite": bool(torch.isfinite(samples).all())}
        return out_bad, samples
    if progress == "lines":
        print("evaluate: computing metrics (sinkhorn, mmd, energy distance, NLL)", file=sys.stderr, flush=True)
    test_n, ref_n = test[:n].to(samples), reference[:n].to(samples)

    from .metrics.sinkhorn import MAX_SAMPLES as SINKHORN_MAX_SAMPLES

    def sinkhorn(a, b):
        # The run's Sinkhorn is documented as that of random subsets of M.sinkhorn's default max_samples rows
        # (recorded below as sinkhorn_max_samples); the metric's warning about the subsampling is expected here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"sinkhorn: x has \d+ rows", category=RuntimeWarning)
            return M.sinkhorn(a, b)

    out: Dict[str, Any] = {
        "sinkhorn": sinkhorn(samples, test_n),
        "sinkhorn_data": sinkhorn(ref_n, test_n),
        "sinkhorn_max_samples": SINKHORN_MAX_SAMPLES,
        "mmd": M.mmd(samples, test_n),
        "mmd_data": M.mmd(ref_n, test_n),
        "energy_distance": M.energy_distance(samples, test_n),
        "energy_distance_data": M.energy_distance(ref_n, test_n),
        "n_samples": n,
        "sample_steps": int(model.sample_steps),
        "sample_seconds": sample_time,
    }
    info = getattr(model, "last_sample_info_", None)
    if info is not None and hasattr(info, "acceptance_rate"):
        out["sample_acceptance"] = float(info.acceptance_rate) if not torch.is_tensor(info.acceptance_rate) else float(info.acceptance_rate.mean())
    finite = bool(torch.isfinite(samples).all())
    out["samples_finite"] = finite
    if model.n_features_in_ == 2 and not model.discrete_:
        bounds = _bounds(torch.cat([test, reference]), data_name)
        res = int(cfg.get("resolution", 200))
        out["grid_nll"] = M.grid_nll(model.energy_, test.to(next(model.energy_.parameters())), bounds=bounds, resolution=res)
        if data_name in toy_names():
            try:
                true = toy_density(data_name)
            except ConfigError:
                true = None
            if true is not None:
                out["nll_true_density"] = float(-true.log_prob(test.double().cpu()).mean()) if hasattr(true, "log_prob") else None
    if model.discrete_ and model.n_features_in_ <= 20:
        out["nll"] = float(-model.log_prob(test).mean())
    if data_name.startswith("gray-"):
        from .data.gray_code import decode_gray

        dec_s, dec_t, dec_r = decode_gray(samples), decode_gray(test_n), decode_gray(ref_n)
        out["decoded_sinkhorn"] = sinkhorn(dec_s, dec_t)
        out["decoded_sinkhorn_data"] = sinkhorn(dec_r, dec_t)
        out["decoded_mmd"] = M.mmd(dec_s, dec_t)
        out["decoded_mmd_data"] = M.mmd(dec_r, dec_t)
    if data_name == "ising" and hasattr(model.energy_, "J"):
        from .data.spec import true_energy

        truth = true_energy(cfg["data"])
        if truth is not None and truth.J.shape == model.energy_.J.shape:
            J = model.energy_.J.detach().cpu().double()
            J = 0.5 * (J + J.T)
            out["coupling_rmse"] = float((J - truth.J.double()).pow(2).mean().sqrt())
            out["coupling_rmse_zero_model"] = float(truth.J.double().pow(2).mean().sqrt())
    return out, samples


def _write_plots(model: EnergyModel, test: torch.Tensor, samples: torch.Tensor, run_dir: Path, data_name: str,
                 cfg: Dict[str, Any], history) -> None:
    from .report.plots import plot_energy, plot_loss, plot_samples

    if history is not None and history.steps:
        plot_loss(history.steps, history.loss, run_dir / "loss.png", title=f"{cfg['objective']} loss")
    if data_name.startswith("gray-"):
        from .data.gray_code import decode_gray

        test, samples = decode_gray(test), decode_gray(samples)
        bounds = ((-4.0, 4.0), (-4.0, 4.0))
        title = f"{data_name}: {cfg['objective']} / {cfg['energy']} (decoded), {cfg['steps']} iterations"
        plot_samples(test, samples, run_dir / "samples.png", bounds, title=title)
        return
    if model.n_features_in_ != 2 or model.discrete_:
        return
    bounds = _bounds(test, data_name)
    title = f"{data_name}: {cfg['objective']} / {cfg['energy']}, {cfg['steps']} iterations"
    plot_samples(test, samples, run_dir / "samples.png", bounds, title=title)
    plot_energy(model.energy_, test, run_dir / "energy.png", bounds, resolution=int(cfg.get("resolution", 200)), title=title)


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


class _ProgressLines:
    """Progress for logs (stderr not a terminal): one line per ~10 % of ``total`` steps,
    ``train: 40% (step 1600/4000) loss 0.123 | 25 s elapsed, ~38 s left``."""

    def __init__(self, label: str, total: int, start: int = 0, every: float = 0.1):
        self.label, self.total, self.every = label, max(1, int(total)), every
        self.t0 = time.perf_counter()
        self.start = int(start)
        self.first: Optional[Tuple[int, float]] = None
        self.next_mark = self._mark_after(self.start)

    def _mark_after(self, step: int) -> int:
        k = int(step / (self.total * self.every)) + 1
        return max(step + 1, int(round(k * self.total * self.every)))

    def __call__(self, step: int, loss: Optional[float] = None, **_: Any) -> bool:
        now = time.perf_counter()
        if self.first is None:
            self.first = (step, now)
        if step >= self.next_mark or step == self.total:
            elapsed = now - self.t0
            first_step, first_time = self.first
            rate = (now - first_time) / (step - first_step) if step > first_step else elapsed / max(step - self.start, 1)
            left = rate * (self.total - step)
            extra = f" loss {loss:.4g}" if loss is not None else ""
            print(f"{self.label}: {100 * step // self.total:3d}% (step {step}/{self.total}){extra} | "
                  f"{elapsed:.0f} s elapsed, ~{left:.0f} s left", file=sys.stderr, flush=True)
            self.next_mark = self._mark_after(step)
        return False


def _progress_mode(cfg: Dict[str, Any]) -> str:
    """``"bar"`` (tqdm, stderr is a terminal), ``"lines"`` (one line per ~10 %, e.g. in a log file) or ``"off"``."""
    if not cfg.get("progress", True):
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


class _DeferredInterrupt:
    """Ctrl-C during training: the first one finishes the current step, writes a checkpoint (fit stops when a
    callback returns True) and ends with a hint to resume; a second one stops at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread() and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: saving a checkpoint after this step (press Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def __call__(self, **_: Any) -> bool:
        return self.requested

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _model_mismatch(saved: Dict[str, Any], cfg: Dict[str, Any]) -> Optional[str]:
    """The first model-defining setting in which a saved model/checkpoint configuration (``meta["model"]``)
    differs from the run's ``cfg``, as ``"key: saved ... vs config ..."``; None when they agree."""
    for key in ("energy", "energy_params", "objective", "objective_params", "sampler", "sampler_params",
                "standardize"):
        if key in saved and key in cfg:
            a, b = saved[key], cfg[key]
            if key.endswith("_params"):
                a, b = a or {}, b or {}
            if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
                return f"{key} is {a!r} there but {b!r} in config.yaml"
    return None


def _check_resume(run_dir: Path, cfg: Dict[str, Any]) -> int:
    """Before resuming: the checkpoint exists, is readable and was written by this configuration; returns its step."""
    from .train.checkpoint import CHECKPOINT_NAME, read_checkpoint_meta

    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise DataError(f"cannot resume: no checkpoint at {path} (the run stopped before its first checkpoint; "
                        f"start it again without --resume)")
    meta = read_checkpoint_meta(path)
    saved = (meta.get("config") or {}).get("model") or {}
    problem = _model_mismatch(saved, cfg)
    if problem:
        raise DataError(f"cannot resume: {path} belongs to another configuration ({problem}); resume a run with "
                        f"its own checkpoint, or start a new run with another --out")
    return int(meta.get("step", 0))


def _explosion(samples: torch.Tensor, data: torch.Tensor, discrete: bool) -> Optional[str]:
    """Why the samples show a diverged model, or None: non-finite values, or more than 1 % of the samples further
    than 10 data ranges outside the data's bounding box (a learned density cannot put mass there)."""
    flat = samples.reshape(samples.shape[0], -1)
    bad = int((~torch.isfinite(flat)).any(1).sum())
    if bad:
        return f"{bad} of {flat.shape[0]} samples are NaN or infinite"
    if discrete:
        return None
    d = data.reshape(data.shape[0], -1).to(flat)
    lo, hi = d.min(0).values, d.max(0).values
    span = (hi - lo).clamp_min(1e-12)
    far = ((flat < lo - 10 * span) | (flat > hi + 10 * span)).any(1).double().mean().item()
    if far > 0.01:
        return (f"{far:.0%} of the samples lie more than 10 data ranges outside the data "
                f"(largest |value| {flat.abs().max().item():.3g}, data within [{lo.min().item():.3g}, {hi.max().item():.3g}])")
    return None


def train_run(cfg: Dict[str, Any], out: Optional[Path] = None, resume: bool = False) -> Tuple[Path, Dict[str, Any]]:
    """Train the model described by ``cfg`` (see ``ebmlab.cli.DEFAULTS``) and write its run directory.

    Crash safety: ``config.yaml`` is (re)written only once the first training step has succeeded, every file is
    written atomically (:mod:`ebmlab._core.fsutil`), a resumed run first checks that the checkpoint belongs to this
    configuration (:func:`ebmlab.fit` trims ``log.csv`` to the checkpoint's step).  A model whose samples are non-finite or exploded
    is not saved as ``model.safetensors`` (the run is not finished): :class:`TrainingDivergedError`.
    """
    import shutil

    from .data.spec import parse_spec

    if cfg.get("model_params"):
        raise ConfigError("model_params apply to --model gebm, diffebm, ...; the default EBM is configured by "
                          "energy_params, objective_params and sampler_params")
    cfg = dict(cfg)
    if parse_spec(cfg["data"])[0] == "file":  # stored absolute: `evaluate` works from any directory
        cfg["data"] = str(Path(cfg["data"]).expanduser().resolve())
    train, test, reference, data_name = _data_splits(cfg)
    from .energies.registry import ENERGIES
    from .samplers.base import SAMPLERS

    energy_discrete = bool(getattr(ENERGIES.get(cfg["energy"]), "discrete", False))
    if _is_binary(train) and not energy_discrete:
        raise ConfigError(f"the data {cfg['data']!r} is binary ({{0,1}}); train a discrete model, e.g. "
                          f"--energy ising (or binary_mlp) --sampler gibbs (or gwg)")
    if energy_discrete and not getattr(SAMPLERS.get(cfg["sampler"]), "discrete", False):
        discrete = [n for n in SAMPLERS.names() if getattr(SAMPLERS.get(n), "discrete", False)]
        raise ConfigError(f"energy {cfg['energy']!r} is discrete; choose a discrete sampler: {', '.join(discrete)}")
    _check_n_samples(cfg.get("n_samples"), test.shape[0], "n_samples")
    if isinstance(cfg.get("batch_size"), int) and cfg["batch_size"] > train.shape[0]:
        raise ConfigError(f"batch_size={cfg['batch_size']} exceeds the {train.shape[0]} training rows; allowed: "
                          f"1..{train.shape[0]}")
    model = _model_from_config(cfg)
    model._validate()  # bad options fail before the run directory is touched
    created = not (Path(out).exists() if out is not None else False)
    from .train import distributed as dist_utils

    if dist_utils.env_world_size() > 1:  # under torchrun: one run directory, chosen and written by rank 0
        from .train.fit import resolve_device

        dist_utils.init_from_env(resolve_device(cfg.get("device")))
    rank = dist_utils.rank()
    run_dir = new_run_dir(cfg, out, resume, f"{data_name}-{cfg['objective']}") if rank == 0 else None
    run_dir = Path(dist_utils.broadcast_str(str(run_dir) if rank == 0 else ""))
    created = (created or out is None) and rank == 0
    log = run_dir / "log.csv"
    if resume and rank == 0:
        _check_resume(run_dir, cfg)  # (fit trims log.csv to the checkpoint's step)
    config_text = yaml.safe_dump(cfg, sort_keys=False)
    written = {"config": False}

    def write_config(**_: Any) -> bool:
        if not written["config"] and rank == 0:
            _atomic_write_text(run_dir / "config.yaml", config_text)
            written["config"] = True
        return False

    mode = _progress_mode(cfg)
    callbacks = [write_config]
    if mode == "lines":
        start = 0
        if resume:
            from .train.checkpoint import CHECKPOINT_NAME, read_checkpoint_meta

            start = int(read_checkpoint_meta(run_dir / CHECKPOINT_NAME).get("step", 0))
        callbacks.append(_ProgressLines("train", int(cfg["steps"]), start=start))
    try:
        with _DeferredInterrupt() as interrupt:
            callbacks.append(interrupt)
            model.fit(train, checkpoint_dir=run_dir, checkpoint_every=cfg.get("checkpoint_every"), resume=resume,
                      log_csv=log, progress=mode == "bar", callbacks=callbacks, watchdog=cfg.get("watchdog", True))
    except BaseException:
        if created and not written["config"]:  # nothing usable was made: leave no half-made run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    write_config()
    if rank != 0:  # the other processes of a distributed run: rank 0 evaluates and writes the results
        return run_dir, {}
    if interrupt.requested:
        step = model.history_.steps[-1] if model.history_.steps else 0
        raise KeyboardInterrupt(f"checkpoint saved at step {step} in {run_dir}; continue with: "
                                f"ebmlab train --out {run_dir} --resume")
    try:
        metrics, samples = evaluate_model(model, test, reference, cfg, data_name, progress=mode)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"during the evaluation; training is complete in {run_dir}'s checkpoint: "
                                f"ebmlab train --out {run_dir} --resume evaluates it") from None
    metrics["train_seconds"] = model.history_.wall_time_total
    metrics["steps"] = int(cfg["steps"])
    problem = metrics.get("diverged")
    metrics["status"] = "diverged" if problem else "finished"
    _atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    if problem:
        raise TrainingDivergedError(
            f"training diverged: the model's samples are not usable: {problem}; the run in {run_dir} is not marked "
            f"finished (no new {MODEL_FILE}; metrics.json says status: diverged). Try a smaller sampler step_size "
            f"or lr, grad_clip, or more sampler steps")
    model.save(run_dir)
    if mode == "lines":
        print("evaluate: writing plots", file=sys.stderr, flush=True)
    _write_plots(model, test, samples, run_dir, data_name, cfg, model.history_)
    return run_dir, metrics


def _check_n_samples(n: Any, available: int, label: str) -> int:
    from ._core.validation import check_int

    n = check_int(label, n, minimum=1)
    if n > available:
        raise ConfigError(f"{label}={n} exceeds the {available} held-out test points the samples are compared with; "
                          f"allowed: 1..{available} (or train with a larger n_test)")
    return n


def _load_run(run) -> Tuple[Path, Dict[str, Any], EnergyModel]:
    from .cli import read_yaml_mapping
    from .data.spec import parse_spec

    run_dir = Path(run)
    if not run_dir.exists():
        raise DataError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is a file; give a run directory (written by `ebmlab train`)")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise DataError(f"{run_dir} is not a run directory: {cfg_path.name} is missing")
    saved = read_yaml_mapping(cfg_path, "run configuration")
    from .cli import DEFAULTS

    cfg = {**DEFAULTS, "standardize": False, **saved}
    if not isinstance(cfg.get("data"), str):
        raise DataError(f"{cfg_path}: data must be a data set name or a file path, got {cfg.get('data')!r}")
    if parse_spec(cfg["data"])[0] == "file" and not Path(cfg["data"]).is_absolute() and not Path(cfg["data"]).exists():
        raise DataError(f"the run's data file {cfg['data']!r} is stored as a relative path (by an older ebmlab) and "
                        f"does not exist from {Path.cwd()}; run from the directory it was trained in, or write its "
                        f"absolute path as data: in {cfg_path}")
    if not (run_dir / MODEL_FILE).exists():
        raise DataError(f"{run_dir} has no trained model ({MODEL_FILE}); finish it with `ebmlab train --out {run_dir} --resume`")
    from .train.checkpoint import read_checkpoint_meta

    problem = _model_mismatch(read_checkpoint_meta(run_dir / MODEL_FILE).get("model") or {}, cfg)
    if problem:
        raise DataError(f"{run_dir / MODEL_FILE} does not belong to this run: {problem}; copy the model file of "
                        f"this run back, or retrain it")
    return run_dir, cfg, EnergyModel.load(run_dir)


def sample_run(run, n: int, out, seed: int = 0, steps: Optional[int] = None, distributed: bool = False) -> Path:
    """Draw ``n`` samples of a finished run into ``out``; ``distributed=True`` (under torchrun) splits the chains over
    the processes and rank 0 writes the gathered samples."""
    from ._core.validation import check_int
    from .data import save_samples

    check_int("n", n, minimum=1)
    if steps is not None:
        check_int("steps", steps, minimum=1)
    _, _, model = _load_run(run)
    x = model.sample(n, random_state=seed, steps=steps, distributed=distributed).cpu()
    if distributed and int(os.environ.get("RANK", "0")) != 0:
        return Path(out)
    bad = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(1).sum())
    if bad:
        raise TrainingDivergedError(f"sampling diverged: {bad} of {n} samples are NaN or infinite; nothing was "
                                    f"written to {out}. Try fewer --steps or a smaller sampler step size")
    save_samples(out, x)
    return Path(out)


def evaluate_run(run, n_samples: Optional[int] = None, seed: int = 1, progress: str = "auto") -> Dict[str, Any]:
    """Recompute the metrics of a finished run (``n_samples`` model samples, at most the held-out test points);
    ``metrics.json`` keeps the fields it had (training time, steps) and gets the new values."""
    run_dir, cfg, model = _load_run(run)
    _, test, reference, data_name = _data_splits(cfg)
    cfg["n_samples"] = _check_n_samples(n_samples if n_samples is not None else cfg.get("n_samples"),
                                        test.shape[0], "--n" if n_samples is not None else "n_samples")
    mode = _progress_mode(cfg) if progress == "auto" else progress
    metrics, samples = evaluate_model(model, test, reference, cfg, data_name, seed=seed, progress=mode)
    metrics["status"] = "diverged" if metrics.get("diverged") else "finished"
    old: Dict[str, Any] = {}
    path = run_dir / "metrics.json"
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            old = loaded if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            old = {}
    old.pop("diverged", None)
    merged = {**old, **metrics}
    _atomic_write_text(path, json.dumps(merged, indent=2))
    _write_plots(model, test, samples, run_dir, data_name, cfg, None)
    return merged
