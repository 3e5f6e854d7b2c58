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
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from ._core.errors import ConfigError, DataError
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
    path = Path(spec)
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
        if not resume and (run_dir / "checkpoint.safetensors").exists():
            raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
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
                   data_name: str, seed: int = 1) -> Tuple[Dict[str, Any], torch.Tensor]:
    """Sample the model and compare with held-out data; returns (metrics, samples)."""
    from . import metrics as M
    from .data import toy_density, toy_names

    n = int(cfg.get("n_samples") or test.shape[0])
    n = min(n, test.shape[0])
    t0 = time.perf_counter()
    samples = model.sample(n, random_state=seed).cpu()
    sample_time = time.perf_counter() - t0
    test_n, ref_n = test[:n].to(samples), reference[:n].to(samples)
    out: Dict[str, Any] = {
        "sinkhorn": M.sinkhorn(samples, test_n),
        "sinkhorn_data": M.sinkhorn(ref_n, test_n),
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
        out["decoded_sinkhorn"] = M.sinkhorn(dec_s, dec_t)
        out["decoded_sinkhorn_data"] = M.sinkhorn(dec_r, dec_t)
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
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def train_run(cfg: Dict[str, Any], out: Optional[Path] = None, resume: bool = False) -> Tuple[Path, Dict[str, Any]]:
    """Train the model described by ``cfg`` (see ``ebmlab.cli.DEFAULTS``) and write its run directory."""
    if cfg.get("model_params"):
        raise ConfigError("model_params apply to --model gebm, diffebm, ...; the default EBM is configured by "
                          "energy_params, objective_params and sampler_params")
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
    run_dir = new_run_dir(cfg, out, resume, f"{data_name}-{cfg['objective']}")
    model = _model_from_config(cfg)
    _atomic_write_text(run_dir / "config.yaml", yaml.safe_dump({**cfg, "data": cfg["data"]}, sort_keys=False))
    model.fit(train, checkpoint_dir=run_dir, checkpoint_every=cfg.get("checkpoint_every"), resume=resume,
              log_csv=run_dir / "log.csv", progress=bool(cfg.get("progress", True)) and sys.stderr.isatty())
    model.save(run_dir)
    metrics, samples = evaluate_model(model, test, reference, cfg, data_name)
    metrics["train_seconds"] = model.history_.wall_time_total
    metrics["steps"] = int(cfg["steps"])
    _atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    _write_plots(model, test, samples, run_dir, data_name, cfg, model.history_)
    return run_dir, metrics


def _load_run(run) -> Tuple[Path, Dict[str, Any], EnergyModel]:
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise DataError(f"{run_dir} is not a run directory: {cfg_path.name} is missing")
    cfg = yaml.safe_load(cfg_path.read_text())
    if not (run_dir / MODEL_FILE).exists():
        raise DataError(f"{run_dir} has no trained model ({MODEL_FILE}); finish it with `ebmlab train --out {run_dir} --resume`")
    return run_dir, cfg, EnergyModel.load(run_dir)


def sample_run(run, n: int, out, seed: int = 0, steps: Optional[int] = None) -> Path:
    from .data import save_samples

    _, _, model = _load_run(run)
    x = model.sample(n, random_state=seed, steps=steps).cpu()
    save_samples(out, x)
    return Path(out)


def evaluate_run(run, n_samples: Optional[int] = None, seed: int = 1) -> Dict[str, Any]:
    run_dir, cfg, model = _load_run(run)
    if n_samples is not None:
        cfg["n_samples"] = n_samples
    _, test, reference, data_name = _data_splits(cfg)
    metrics, samples = evaluate_model(model, test, reference, cfg, data_name, seed=seed)
    _atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    _write_plots(model, test, samples, run_dir, data_name, cfg, None)
    return metrics
