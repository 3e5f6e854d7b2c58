"""``ebmlab train --model gebm``: train a :class:`~ebmlab.generators.GEBM` and write its run directory.

The run directory holds ``config.yaml``, ``gebm.safetensors`` (weights + configuration), ``log.csv`` (KALE bound,
losses and c per generator update), ``metrics.json`` and ``panel.png``: held-out data | generator samples B(z),
z ~ η | latent MCMC at β = 1 | latent MCMC at β = 100 (temperature 0.01, the paper's low temperature).

Metrics: Sinkhorn divergence (:func:`ebmlab.metrics.sinkhorn`) and KALE(data ‖ samples) (:func:`ebmlab.metrics.kale`)
of each kind of sample to held-out data, with the data-vs-data floor; on digits also
:func:`ebmlab.metrics.frechet_digits`.

Data: a toy name (``--data checkerboard``) or an image set (``--data digits``, ``--data mnist``).  The
``model_params`` this model reads: latent_dim, n_energy_steps, final_energy_steps, gradient_penalty, generator_lr, energy_params,
generator_params, sampler, temperature (the temperature of the β = 1 column is always 1; ``temperature`` is the
model's default for ``ebmlab`` users of the saved model).
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import yaml

from .._core.errors import ConfigError

#: keys of ``model_params`` that --model gebm accepts (GEBM constructor options)
MODEL_PARAMS = ("latent_dim", "n_energy_steps", "final_energy_steps", "final_energy_schedule", "final_batch_size",
                "gradient_penalty", "generator_lr", "energy_params",
                "generator_params", "sampler", "temperature", "sample_init")
#: the cfg keys --model gebm reads
USED_KEYS = {"model", "model_params", "data", "n_train", "n_test", "steps", "batch_size", "lr", "seed",
             "n_samples", "sample_steps", "name", "device", "checkpoint_every"}
LOW_TEMPERATURE = 0.01  # beta = 100


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_gebm_data(spec: str, n_train: int, n_test: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(train, test, reference, is_image): an image set's fixed train split and its test split halved into test and
    reference (data-vs-data floor), or three independent draws of a toy set."""
    from ..data import IMAGE_SETS, load_images, toy_names
    from ..data.spec import draw, parse_spec

    if spec in IMAGE_SETS:
        xtr, _ = load_images(spec, "train")
        xte, _ = load_images(spec, "test")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(xte.shape[0], generator=g)
        half = xte.shape[0] // 2
        return xtr, xte[perm[:half]], xte[perm[half:2 * half]], True
    kind, _, _ = parse_spec(spec)
    if kind != "toy":
        raise ConfigError(f"--model gebm trains on a toy data set ({', '.join(toy_names())}) or an image set "
                          f"({', '.join(IMAGE_SETS)}); got --data {spec!r}")
    return draw(spec, n_train, seed), draw(spec, n_test, seed + 1), draw(spec, n_test, seed + 2), False


def evaluate_gebm(model, test: torch.Tensor, reference: torch.Tensor, is_image: bool, n: int, sample_steps: int,
                  seed: int = 1) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """Sample the generator and the latent posterior at β = 1 and β = 100 and compare each with held-out data."""
    from ..metrics import kale, sinkhorn

    n = min(n, test.shape[0])
    draws: Dict[str, torch.Tensor] = {}
    times: Dict[str, float] = {}
    t0 = time.perf_counter()
    draws["generator"] = model.sample_generator(n, random_state=seed)
    times["generator"] = time.perf_counter() - t0
    accept: Dict[str, float] = {}
    for key, temp in (("latent_beta1", 1.0), ("latent_beta100", LOW_TEMPERATURE)):
        t0 = time.perf_counter()
        draws[key] = model.sample(n, temperature=temp, steps=sample_steps, random_state=seed)
        times[key] = time.perf_counter() - t0
        accept[key] = model.last_sample_info_.acceptance_rate
    test_n, ref_n = test[:n], reference[:n]
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    out: Dict[str, Any] = {"n_samples": n, "sample_steps": sample_steps,
                           "sinkhorn_data": sinkhorn(flat(ref_n), flat(test_n)),
                           "kale_data": kale(flat(test_n), flat(ref_n))}
    for key, x in draws.items():
        finite = bool(torch.isfinite(x).all())
        out[f"{key}_finite"] = finite
        if not finite:
            continue
        out[f"sinkhorn_{key}"] = sinkhorn(flat(x), flat(test_n))
        out[f"kale_{key}"] = kale(flat(test_n), flat(x))
        out[f"seconds_{key}"] = times[key]
        if key in accept:
            out[f"acceptance_{key}"] = accept[key]
    if is_image and tuple(test.shape[1:]) == (1, 8, 8):
        from ..metrics import frechet_digits

        out["frechet_digits_data"] = frechet_digits(ref_n, test_n)
        for key, x in draws.items():
            if out[f"{key}_finite"]:
                out[f"frechet_digits_{key}"] = frechet_digits(x.clamp(0, 1), test_n)
    return out, draws


def write_panel(path: Path, test: torch.Tensor, draws: Dict[str, torch.Tensor], is_image: bool, title: str,
                bounds=None) -> Path:
    """data | generator | latent MCMC β = 1 | latent MCMC β = 100: 2-D histograms or image grids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = [("held-out data", test), ("generator B(z), z ~ η", draws["generator"]),
            ("latent MCMC, β = 1", draws["latent_beta1"]), ("latent MCMC, β = 100", draws["latent_beta100"])]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, (name, x) in zip(axes, cols):
        x = x.detach().cpu()
        if is_image:
            k = 8
            imgs = x[: k * k, 0].numpy()
            side = imgs.shape[-1]
            grid = np.zeros((k * (side + 1), k * (side + 1)))
            for i, im in enumerate(imgs):
                r, c = divmod(i, k)
                grid[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = im
            ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
        else:
            a = x.numpy()
            rng = bounds if bounds is not None else [[float(a[:, 0].min()), float(a[:, 0].max())],
                                                      [float(a[:, 1].min()), float(a[:, 1].max())]]
            ax.hist2d(a[:, 0], a[:, 1], bins=100, range=rng, cmap="viridis", density=True)
            ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def train_gebm_run(cfg: Dict[str, Any], out: Optional[Path] = None, resume: bool = False) -> Tuple[Path, Dict[str, Any]]:
    """Train a GEBM as ``cfg`` says (keys of ``ebmlab.cli.DEFAULTS``; module docstring) and write its run directory."""
    from ..data import toy_bounds, toy_names
    from ..run import new_run_dir, reject_unused_keys
    from .gebm import GEBM

    reject_unused_keys(cfg, "gebm", USED_KEYS)
    if resume:
        raise ConfigError("--model gebm does not resume runs (training is short); start a new run")
    if cfg.get("checkpoint_every") is not None:
        raise ConfigError("--model gebm writes no intermediate checkpoints; drop checkpoint_every")
    params = dict(cfg.get("model_params") or {})
    unknown = sorted(set(params) - set(MODEL_PARAMS))
    if unknown:
        raise ConfigError(f"unknown model_params {unknown} for --model gebm; allowed: {', '.join(MODEL_PARAMS)}")
    seed = int(cfg["seed"])
    train, test, reference, is_image = load_gebm_data(cfg["data"], int(cfg["n_train"]), int(cfg["n_test"]), seed)
    run_dir = new_run_dir(cfg, out, resume, f"{cfg['data']}-gebm")
    _atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    device = cfg.get("device", "auto")
    model = GEBM(steps=int(cfg["steps"]), batch_size=int(cfg["batch_size"]), lr=float(cfg["lr"]),
                 sample_steps=int(cfg["sample_steps"]), random_state=seed,
                 device="cpu" if device == "auto" and not torch.cuda.is_available() else device, **params)
    rows = []
    model.fit(train, callbacks=[lambda step, model, stats: rows.append({"step": step, **stats})])
    model.save(run_dir)
    with open(run_dir / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    metrics, draws = evaluate_gebm(model, test, reference, is_image, int(cfg["n_samples"]), int(cfg["sample_steps"]))
    metrics["train_seconds"] = model.history_["wall_time_total"]
    metrics["steps"] = int(cfg["steps"])
    metrics["final_kale_bound"] = model.history_["kale_bound"][-1]
    _atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    bounds = None
    if not is_image and cfg["data"] in toy_names():
        b = toy_bounds(cfg["data"])
        bounds = [list(b[0]), list(b[1])]
    write_panel(run_dir / "panel.png", test, draws, is_image, f"GEBM on {cfg['data']}, {cfg['steps']} generator "
                f"updates", bounds=bounds)
    return run_dir, metrics
