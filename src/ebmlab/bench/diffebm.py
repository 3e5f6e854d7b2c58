"""``ebmlab bench diffebm``: DiffEBM against MCMC-trained (PCD), DSM and DEEN energies on the five 2-D sets of the
DiffEBM paper's Table 1 ("No MCMC teaching for me: learning energy-based models via diffusion synergy", under
review 2024): 8gaussians_unit, grid, swissroll, checkerboard, 2spirals.

Protocol (the same data, iterations and data batch for every method)
-------------------------------------------------------------------
- Data: per seed k, ``n_train`` exact draws (generator 1000 k + 1) for training, ``n_sinkhorn`` held-out draws
  (1000 k + 2) for evaluation, and a second held-out set (1000 k + 3) for the data-vs-data floor.
- DiffEBM: :class:`ebmlab.diffusion.diffebm.DiffEBM` with its defaults (1×1-convolution energy, Fourier control,
  VP SDE β ∈ [.1, 10] with 50 steps, η = α = .5, Adam) except the learning rate, 3e-3 instead of 1e-3 (chosen in a
  pre-run on seed 0 of grid and 8gaussians_unit, 500 iterations: Sinkhorn of the draws .114 / .038 against .141 on
  grid at 1e-3; the baselines keep their defaults); ``steps`` iterations with a data batch of ``batch_size`` (and as
  many sampler paths per iteration).
- Baselines: :class:`ebmlab.EnergyModel` with its defaults (MLP energy, Adam 1e-3 on a cosine schedule, EMA .999,
  sampler ULA with step .01, ``sample`` = 500 ULA steps from uniform noise on the data's box, standardisation
  "auto"; the EMA decay is min(.999, 1 - 10 / steps) as in ``ebmlab bench objectives``, because the default .999
  would leave e^{-steps/1000} of the average on the initial weights in a short run) and ``objective`` = "pcd"
  (the MCMC-MLE baseline: persistent chains of 20 ULA steps), "dsm" (σ = .1) or "deen" (σ = .1), the same
  ``steps`` and ``batch_size``.  On 8gaussians_unit and grid also ``pcd_5x``: PCD with 5 × ``steps`` iterations,
  about DiffEBM's training wall time (an iteration of DiffEBM simulates ``sde_steps`` steps of the sampler and
  costs several PCD iterations), so that the comparison holds at equal time as well as at equal iterations.
- Metrics (per method and seed):
  * ``sinkhorn``: the paper's metric, between ``n_sinkhorn`` synthesised points (DiffEBM: draws of its trained
    sampler; baselines: ``EnergyModel.sample``, i.e. the MCMC sampler of the learned energy) and the held-out data;
  * ``sinkhorn_energy``: the same with points drawn exactly from the grid-normalised learned density
    exp(-E)/Ẑ on a ``resolution``² grid over ``toy_bounds`` (no sampler error: the quality of the energy itself);
  * the wall time of training and its ratio to PCD's in the same seed (runs alternate per seed).
  Sinkhorn is the debiased divergence S_ε of :func:`ebmlab.metrics.sinkhorn` with ε = .05 computed on x / s, where
  s² is the data set's mean per-coordinate variance (so ε is the same fraction of every set's scale: on ``grid``,
  s ≈ 4.1, a raw ε = .05 needs minutes per evaluation because the nine far-apart clusters of the two samples hold
  different numbers of points; scaled, 1,000 points take about 2 s).
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .._core.errors import DataError, TrainingDivergedError
from ..data import toy, toy_bounds, toy_density, toy_density_names
from ..metrics.grid import grid_log_density
from ..metrics.sinkhorn import sinkhorn
from .objectives import _grid_samples, ema_decay, summarize

DATASETS = ("8gaussians_unit", "grid", "swissroll", "checkerboard", "2spirals")
BASELINES = ("pcd", "dsm", "deen")
METHODS = ("diffebm",) + BASELINES
#: PCD with LONG_FACTOR times the iterations (about DiffEBM's training wall time), on LONG_DATASETS only
LONG_METHOD = "pcd_5x"
LONG_FACTOR = 5
LONG_DATASETS = ("8gaussians_unit", "grid")
SINKHORN_REG = 0.05


def config(quick: bool, full: bool = False) -> Dict[str, Any]:
    """Sizes of the benchmark.  ``quick``: a few minutes on 2 shared cores (1 seed, 100 iterations); default:
    2 seeds, 500 iterations (about 40 min on 2 cores shared by five processes); ``full``: 10 seeds (the paper's
    count), the default's sizes otherwise.  ``diffebm_lr``: DiffEBM's Adam learning rate (module docstring)."""
    if quick:
        return {"datasets": DATASETS, "seeds": (0,), "steps": 100, "batch_size": 128, "sde_steps": 50,
                "diffebm_lr": 3e-3, "n_train": 5000, "n_sinkhorn": 300, "resolution": 100}
    return {"datasets": DATASETS, "seeds": tuple(range(10)) if full else (0, 1), "steps": 500, "batch_size": 128,
            "sde_steps": 50, "diffebm_lr": 3e-3, "n_train": 5000, "n_sinkhorn": 500, "resolution": 150}


def data_scale(name: str) -> float:
    """s = √(mean per-coordinate variance) of the data set, from 20,000 exact draws (fixed generator)."""
    return float(toy(name, 20000, generator=987_654).var(0).mean().sqrt())


def scaled_sinkhorn(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """S_ε(a / s, b / s) with ε = :data:`SINKHORN_REG` (module docstring); NaN when a sample is not finite."""
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        return float("nan")
    return sinkhorn(a.double() / scale, b.double() / scale, reg=SINKHORN_REG, max_samples=None)


def _energy_samples(energy, name: str, resolution: int, n: int, seed: int):
    """Exact draws of the grid-normalised density of ``energy`` and the grid itself (None if not finite)."""
    try:
        grid = grid_log_density(energy, toy_bounds(name), resolution)
    except DataError:
        return None, None
    log_p = grid.log_density.T.contiguous()  # log_p[ix, iy]
    samples = _grid_samples(grid.xs, grid.ys, log_p, n, torch.Generator().manual_seed(50_000 + seed))
    return samples, (grid.xs, grid.ys, log_p)


def _train(method: str, train: torch.Tensor, cfg: Dict[str, Any], seed: int):
    """(draws, energy, wall time, error) of one training run; draws and energy are None if it diverged."""
    n = cfg["n_sinkhorn"]
    t0 = time.perf_counter()
    try:
        if method == "diffebm":
            from ..diffusion.diffebm import DiffEBM

            model = DiffEBM(2, sde_steps=cfg["sde_steps"], lr=cfg["diffebm_lr"]).fit(
                train, steps=cfg["steps"], batch_size=cfg["batch_size"], seed=seed)
            wall = time.perf_counter() - t0
            draws = model.sample(n, generator=torch.Generator().manual_seed(40_000 + seed))
            return draws, model.energy_, wall, None
        from ..estimator import EnergyModel

        steps = cfg["steps"] * (LONG_FACTOR if method == LONG_METHOD else 1)
        objective = "pcd" if method == LONG_METHOD else method
        model = EnergyModel(objective=objective, steps=steps, batch_size=cfg["batch_size"], ema=ema_decay(steps),
                            random_state=seed).fit(train)
        wall = time.perf_counter() - t0
        return model.sample(n, random_state=40_000 + seed), model.energy_, wall, None
    except TrainingDivergedError as err:
        return None, None, time.perf_counter() - t0, str(err)


def _json_safe(value: Any) -> Any:
    """NaN / inf (a diverged run, a std of one seed) as null, so that the file is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _methods(name: str):
    return METHODS + ((LONG_METHOD,) if name in LONG_DATASETS else ())


def _num(x: Optional[float], digits: int = 3) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt(s: Dict[str, Any], digits: int = 3) -> str:
    if s["n"] == 0:
        return "diverged"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def run_diffebm_bench(out: Path, quick: bool = False, full: bool = False, *, sizes: Optional[Dict[str, Any]] = None,
                      progress: bool = True) -> Dict[str, Any]:
    """Run the benchmark (module docstring) and write ``diffebm.json``, ``diffebm.md`` and ``diffebm.png`` (rows:
    data sets; columns: held-out data | synthesised samples per method | learned density per method | the true
    density where it is known).  ``sizes`` overrides keys of :func:`config` (tests use tiny runs)."""
    import sys

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = dict(config(quick, full))
    for key, value in (sizes or {}).items():
        if key not in cfg:
            raise KeyError(f"unknown size {key!r}; allowed: {', '.join(cfg)}")
        cfg[key] = value
    rows: List[Dict[str, Any]] = []
    panels: Dict[str, Dict[str, Any]] = {}
    t_start = time.perf_counter()
    for name in cfg["datasets"]:
        scale = data_scale(name)
        for seed in cfg["seeds"]:
            train = toy(name, cfg["n_train"], generator=1000 * seed + 1)
            test = toy(name, cfg["n_sinkhorn"], generator=1000 * seed + 2)
            floor = scaled_sinkhorn(toy(name, cfg["n_sinkhorn"], generator=1000 * seed + 3), test, scale)
            methods = _methods(name)
            order = methods if seed % 2 == 0 else methods[::-1]
            for method in order:
                draws, energy, wall, error = _train(method, train, cfg, seed)
                row = {"dataset": name, "method": method, "seed": seed, "wall_time_s": wall, "diverged": error,
                       "sinkhorn": float("nan"), "sinkhorn_energy": float("nan"), "floor": floor}
                grid = None
                if draws is not None:
                    row["sinkhorn"] = scaled_sinkhorn(draws, test, scale)
                    exact, grid = _energy_samples(energy, name, cfg["resolution"], cfg["n_sinkhorn"], seed)
                    if exact is not None:
                        row["sinkhorn_energy"] = scaled_sinkhorn(exact, test, scale)
                rows.append(row)
                if seed == cfg["seeds"][0]:
                    panels.setdefault(name, {"data": test})[method] = (draws, grid)
                if progress:
                    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}),
                          file=sys.stderr, flush=True)
    for r in rows:  # wall-time ratio to PCD on the same data set and seed
        pcd = [q["wall_time_s"] for q in rows if q["dataset"] == r["dataset"] and q["seed"] == r["seed"]
               and q["method"] == "pcd"]
        r["wall_ratio_to_pcd"] = r["wall_time_s"] / pcd[0] if pcd and pcd[0] > 0 else float("nan")
    summary = {name: {m: {key: summarize([r[key] for r in rows if r["dataset"] == name and r["method"] == m])
                          for key in ("sinkhorn", "sinkhorn_energy", "wall_time_s", "wall_ratio_to_pcd")}
                      | {"diverged": sum(1 for r in rows if r["dataset"] == name and r["method"] == m
                                         and r["diverged"])}
                      for m in _methods(name)}
               for name in cfg["datasets"]}
    floors = {name: summarize([r["floor"] for r in rows if r["dataset"] == name and r["method"] == "pcd"])
              for name in cfg["datasets"]}
    verdict = {}
    for name in ("grid", "8gaussians_unit"):
        if name in summary:
            d, p = summary[name]["diffebm"]["sinkhorn"]["mean"], summary[name]["pcd"]["sinkhorn"]["mean"]
            q = summary[name][LONG_METHOD]["sinkhorn"]["mean"] if LONG_METHOD in summary[name] else float("nan")
            verdict[name] = {"diffebm": d, "pcd": p, LONG_METHOD: q,
                             "diffebm_at_most_pcd": bool(math.isfinite(d) and math.isfinite(p) and d <= p),
                             f"diffebm_at_most_{LONG_METHOD}": bool(math.isfinite(d) and math.isfinite(q) and d <= q)}
    result = {"suite": "diffebm", "quick": quick, "full": full,
              "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
              "sinkhorn": {"reg": SINKHORN_REG, "scales": {n: data_scale(n) for n in cfg["datasets"]}},
              "rows": rows, "summary": summary, "floors": floors, "verdict": verdict,
              "total_wall_time_s": time.perf_counter() - t_start,
              "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
                          "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                          "torch": torch.__version__}}
    files = [out / "diffebm.json", out / "diffebm.md", out / "diffebm.png"]
    files[0].write_text(json.dumps(_json_safe(result), indent=2, allow_nan=False))
    files[1].write_text(_markdown(result))
    _plot(panels, cfg["datasets"], files[2])
    result["files"] = [str(p) for p in files]
    return result


def _markdown(result: Dict[str, Any]) -> str:
    cfg, summary, floors = result["config"], result["summary"], result["floors"]
    names = cfg["datasets"]
    head = "| method | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    lines = ["# ebmlab bench diffebm", "",
             f"Seeds {cfg['seeds']}, {cfg['steps']} iterations and data batch {cfg['batch_size']} for every method, "
             f"{cfg['n_train']} training points, {cfg['n_sinkhorn']} points per Sinkhorn evaluation; DiffEBM with "
             f"{cfg['sde_steps']} SDE steps and Adam lr {cfg['diffebm_lr']:g}; PCD, DSM, DEEN with the defaults of "
             f"`ebmlab.EnergyModel` (EMA decay min(.999, 1 − 10/iterations)); {LONG_METHOD}: PCD with "
             f"{LONG_FACTOR}× the iterations. Sinkhorn: debiased, ε = {result['sinkhorn']['reg']} on x / s "
             "(s² = the set's mean per-coordinate variance); mean ± std over seeds. Load average at the end: "
             f"{', '.join(f'{v:.1f}' for v in result['machine']['load_average'])} on {result['machine']['cpus']} "
             f"CPUs; total {result['total_wall_time_s'] / 60:.1f} min.", "",
             "## Sinkhorn of synthesised samples to held-out data (the paper's Table 1)", "",
             "DiffEBM: its sampler's draws; baselines: 500 ULA steps (step .01) of the learned energy from uniform "
             "noise (`EnergyModel.sample`).", "", head, sep]
    for m in METHODS + (LONG_METHOD,):
        lines.append(f"| {m} | " + " | ".join(_fmt(summary[n][m]["sinkhorn"]) if m in summary[n] else "—"
                                              for n in names) + " |")
    lines.append("| data vs data (floor) | " + " | ".join(_fmt(floors[n]) for n in names) + " |")
    lines += ["", "## Sinkhorn of exact draws of the grid-normalised learned density", "", head, sep]
    for m in METHODS + (LONG_METHOD,):
        lines.append(f"| {m} | " + " | ".join(_fmt(summary[n][m]["sinkhorn_energy"]) if m in summary[n] else "—"
                                              for n in names) + " |")
    lines += ["", "## Training wall time, s (ratio to PCD in the same seed)", "", head, sep]
    for m in METHODS + (LONG_METHOD,):
        lines.append(f"| {m} | " + " | ".join(
            f"{_num(summary[n][m]['wall_time_s']['mean'], 1)} ({_num(summary[n][m]['wall_ratio_to_pcd']['mean'], 2)}×)"
            if m in summary[n] else "—" for n in names) + " |")
    div = [f"{m} on {n}: {summary[n][m]['diverged']}" for n in names for m in summary[n] if summary[n][m]["diverged"]]
    lines += ["", "Diverged runs (counted in no mean): " + (", ".join(div) if div else "none") + ".", ""]
    for n, v in result["verdict"].items():
        lines.append(f"- {n}: DiffEBM {_num(v['diffebm'])} vs PCD {_num(v['pcd'])} (equal iterations) → DiffEBM ≤ "
                     f"PCD: {'yes' if v['diffebm_at_most_pcd'] else 'no'}; vs PCD with {LONG_FACTOR}× iterations "
                     f"{_num(v[LONG_METHOD])} → {'yes' if v[f'diffebm_at_most_{LONG_METHOD}'] else 'no'}")
    lines += ["", "Figure: `diffebm.png` (rows: data sets; columns: data | samples per method | learned density per "
              "method | true density where known).", ""]
    return "\n".join(lines)


def _plot(panels: Dict[str, Dict[str, Any]], names: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["data"] + [f"{m} samples" for m in METHODS] + [f"{m} density" for m in METHODS] + ["true density"]
    fig, axes = plt.subplots(len(names), len(cols), figsize=(1.6 * len(cols), 1.65 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        (x0, x1), (y0, y1) = toy_bounds(name)
        p = panels.get(name, {})
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(col, fontsize=7)
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
            method = col.split(" ")[0]
            if col == "data" and "data" in p:
                x = p["data"].numpy()
                ax.hist2d(x[:, 0], x[:, 1], bins=50, range=[[x0, x1], [y0, y1]], cmap="viridis")
            elif col.endswith("samples") and method in p:
                draws = p[method][0]
                if draws is None:
                    ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes, fontsize=7)
                else:
                    x = draws.detach().numpy()
                    ax.hist2d(x[:, 0], x[:, 1], bins=50, range=[[x0, x1], [y0, y1]], cmap="viridis")
            elif col.endswith("density") and col != "true density" and method in p:
                grid = p[method][1]
                if grid is None:
                    ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes, fontsize=7)
                else:
                    xs, ys, log_p = grid
                    ax.imshow(torch.exp(log_p).T.numpy(), origin="lower", cmap="viridis", aspect="equal",
                              extent=(float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])))
            elif col == "true density":
                if name in toy_density_names():
                    g = grid_log_density(toy_density(name), toy_bounds(name), 150)
                    ax.imshow(torch.exp(g.log_density).numpy(), origin="lower", cmap="viridis",
                              aspect="equal", extent=(float(g.xs[0]), float(g.xs[-1]), float(g.ys[0]),
                                                      float(g.ys[-1])))
                else:
                    ax.text(0.5, 0.5, "not known", ha="center", va="center", transform=ax.transAxes, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
