"""``ebmlab bench objectives``: every continuous estimator on the 2-D toy sets, and their known failure modes.

Protocol (identical for every method)
-------------------------------------
- Energy: :class:`~ebmlab.energies.MLPEnergy` 2-128-128-128-1, Softplus (the ED reference uses four
  hidden layers of 128; three keep the CPU budget), weights drawn from a generator seeded per run with
  PyTorch's default law U(±1/√fan_in).
- Training: :func:`ebmlab.train.fit`, Adam lr 1e-3, batch 128, the same number of iterations for every
  method, EMA of the weights with decay min(0.999, 1 - 10/steps) (0.999 as the ED reference; shorter runs use
  a shorter average so that the initial weights do not linger in it), ``n_train`` = 20000 training points.
- Objectives: every registered objective whose default instance is continuous (``obj.continuous`` is
  not False), built with its defaults, ``objectives.build(name)``; the table of hyper-parameters used
  (the objects' ``repr``) is written into the report.
- Evaluation on a ``resolution``² grid over ``toy_bounds(name)``: the grid-normalised density
  p̂(x) = exp(-U(x)) / (Σ_cells exp(-U(c)) ΔA).  Metrics:
  * Sinkhorn (debiased, ε = 0.05, :func:`ebmlab.metrics.sinkhorn`) between ``n_sinkhorn`` model samples
    and ``n_sinkhorn`` held-out data points (1000; quick 300); model samples are drawn exactly from p̂ (a grid cell from the
    categorical law, then uniform inside the cell), so no MCMC error enters.  Beside it the data-vs-data
    floor: the Sinkhorn divergence between two independent held-out data sets of the same size;
  * grid NLL: -mean log p̂(x) over the held-out data;
  * for data sets with an exact density (``toy_density``): the MSE of log p̂ against the exact log p
    over the held-out data points;
  * wall time of training.

Failure modes
-------------
(a) Mixture weights: data from 0.2·N((-4, 0), .5² I) + 0.8·N((4, 0), .5² I).  Score matching only sees
    ∇ log p, which does not depend on the weights of well-separated modes; each method's recovered weight of
    the left mode is the grid mass of the half-plane x1 < 0.  Energy discrepancy sees the weights only
    through contrastive samples that travel from one mode to the other, i.e. when √(2t) is comparable to
    the distance between modes (8 here): the table shows ED at its default t = 1 and at t = 16.
(b) ED stabilisation: w ∈ {0, 1} × m ∈ {1, 4, 32} on the same data at t = 16: recovered weight and Sinkhorn.
    With w = 0 and small m the estimator is unbounded below (the energy of contrastive points is pushed to
    +∞); with w = 1 the loss is the cross-entropy of identifying x among {x, x'_1..x'_m} and its minimiser is
    the data distribution for every m.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.validation import check_int
from ..data import toy, toy_bounds, toy_density, toy_density_names, toy_names
from ..energies import MLPEnergy
from ..energies.analytic import GaussianMixture
from ..metrics.grid import grid_log_density
from ..metrics.sinkhorn import sinkhorn
from ..objectives import OBJECTIVES, EnergyDiscrepancy
from ..train.fit import fit
from .._core.random import init_parameters_

Bounds = Tuple[Tuple[float, float], Tuple[float, float]]

HIDDEN = (128, 128, 128)
LR = 1e-3
BATCH_SIZE = 128
EMA = 0.999
SINKHORN_REG = 0.05

#: failure mode (a): two Gaussians at (±4, 0), std 0.5, weights 0.2 (left) / 0.8 (right)
MIXTURE_MEANS = [[-4.0, 0.0], [4.0, 0.0]]
MIXTURE_STD = 0.5
MIXTURE_WEIGHTS = [0.2, 0.8]
MIXTURE_BOUNDS: Bounds = ((-8.0, 8.0), (-4.0, 4.0))
#: ED's noise variance for the failure modes: √(2t) ≈ 5.7, of the order of the distance (8) between modes
ED_WIDE_T = 16.0


def config(quick: bool) -> Dict[str, Any]:
    """Sizes of the benchmark (``quick``: a few minutes on 2 CPU cores)."""
    if quick:
        return {"steps": 300, "n_train": 5000, "n_eval": 1000, "resolution": 100, "datasets": ["8gaussians_unit", "moons"],
                "seeds": (0,), "failure_steps": 300, "stab_m": (1, 4, 32), "n_sinkhorn": 300}
    return {"steps": 5000, "n_train": 20000, "n_eval": 2000, "resolution": 200, "datasets": None,
            "seeds": (0, 1, 2), "failure_steps": 4000, "stab_m": (1, 4, 32), "n_sinkhorn": 1000}


def continuous_objectives() -> List[str]:
    """Registered objectives whose default instance works on real vectors (``continuous`` is not False)."""
    names = []
    for name in OBJECTIVES.names():
        obj = OBJECTIVES.build(name)
        if getattr(obj, "continuous", True) is not False:
            names.append(name)
    return names


def ema_decay(steps: int) -> float:
    """EMA decay max(0, min(0.999, 1 - 10/steps)): the reference's 0.999, shortened for short runs.

    The average starts at the initial weights, which keep a share decay^steps of it; 1 - 10/steps
    keeps that share below e^-10 and averages over about the last 10% of the iterations.
    """
    return max(0.0, min(EMA, 1.0 - 10.0 / steps))


def _seeded_mlp(seed: int) -> MLPEnergy:
    return init_parameters_(MLPEnergy(2, HIDDEN, activation="softplus"), torch.Generator().manual_seed(10_000 + seed))


def _log_density(energy, x: torch.Tensor, log_z: float) -> torch.Tensor:
    with torch.no_grad():
        return -energy(x.to(next(energy.parameters()).dtype)).double() - log_z


def _grid_samples(xs, ys, log_p, n: int, generator: torch.Generator) -> torch.Tensor:
    """Exact samples of the piecewise-constant grid density: a cell ~ categorical(p̂ ΔA), then uniform in it."""
    probs = torch.softmax(log_p.reshape(-1), 0)
    idx = torch.multinomial(probs, n, replacement=True, generator=generator)
    res = log_p.shape[1]
    ix, iy = idx // res, idx % res
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
    return torch.stack([xs[ix] + jitter[:, 0] * dx, ys[iy] + jitter[:, 1] * dy], 1).float()


def _train(name: str, objective, data: torch.Tensor, steps: int, seed: int) -> Tuple[Any, float, Optional[str]]:
    energy = _seeded_mlp(seed)
    t0 = time.perf_counter()
    try:
        fit(energy, data, objective, steps=steps, batch_size=BATCH_SIZE, lr=LR, ema=ema_decay(steps), seed=seed,
            device="cpu")
        error = None
    except TrainingDivergedError as err:
        error = str(err)
    return energy, time.perf_counter() - t0, error


def _evaluate(energy, test: torch.Tensor, bounds: Bounds, resolution: int, n_eval: int, n_sinkhorn: int, seed: int,
              exact=None) -> Dict[str, Any]:
    try:
        grid = grid_log_density(energy, bounds, resolution)
    except DataError:  # the energy is not finite on the grid: a diverged model, reported as NaN metrics
        return {"sinkhorn": float("nan"), "grid_nll": float("nan"), "log_density_mse": float("nan")}, None
    xs, ys, log_p, log_z = grid.xs, grid.ys, grid.log_density.T.contiguous(), grid.log_z  # log_p[ix, iy]
    g = torch.Generator().manual_seed(50_000 + seed)
    samples = _grid_samples(xs, ys, log_p, n_eval, g)
    lp_test = _log_density(energy, test, log_z)
    out = {
        "sinkhorn": sinkhorn(samples[:n_sinkhorn], test[:n_sinkhorn], reg=SINKHORN_REG, max_samples=None),
        "grid_nll": float(-lp_test.mean()),
    }
    if exact is not None:
        with torch.no_grad():
            lp_true = exact.log_prob(test.double()).double()
        out["log_density_mse"] = float((lp_test - lp_true).pow(2).mean())
    return out, (xs, ys, log_p)


def _main_table(cfg: Dict[str, Any], names: Sequence[str], datasets: Sequence[str], seeds: Sequence[int],
                steps: int, out_dir: Path, progress: bool) -> Dict[str, Any]:
    rows: List[Dict[str, Any]] = []
    floors: Dict[str, List[float]] = {}
    grids: Dict[Tuple[str, str], Any] = {}
    for ds in datasets:
        bounds = toy_bounds(ds)
        exact = toy_density(ds) if ds in toy_density_names() else None
        for seed in seeds:
            train = toy(ds, cfg["n_train"], generator=1000 * seed + 1)
            test = toy(ds, cfg["n_eval"], generator=1000 * seed + 2)
            test2 = toy(ds, cfg["n_eval"], generator=1000 * seed + 3)
            n_s = cfg["n_sinkhorn"]
            floors.setdefault(ds, []).append(sinkhorn(test2[:n_s], test[:n_s], reg=SINKHORN_REG, max_samples=None))
            for name in names:
                energy, wall, error = _train(name, OBJECTIVES.build(name), train, steps, seed)
                metrics, grid = _evaluate(energy, test, bounds, cfg["resolution"], cfg["n_eval"], cfg["n_sinkhorn"], seed, exact)
                row = {"objective": name, "dataset": ds, "seed": seed, "wall_time_s": wall, "diverged": error, **metrics}
                rows.append(row)
                if seed == seeds[0] and grid is not None:
                    grids[(name, ds)] = grid
                if progress:
                    print(json.dumps(row), flush=True)
    _plot_grid(grids, names, datasets, out_dir / "objectives_energies.png")
    return {"rows": rows, "floors": {k: sum(v) / len(v) for k, v in floors.items()},
            "figure": "objectives_energies.png"}


def _mixture(n: int, seed: int) -> torch.Tensor:
    mix = GaussianMixture(MIXTURE_MEANS, MIXTURE_STD, MIXTURE_WEIGHTS)
    return mix.sample(n, generator=torch.Generator().manual_seed(seed)).float()


def _left_mass(log_p: torch.Tensor, xs: torch.Tensor) -> float:
    return float(torch.exp(log_p)[xs < 0].sum() / torch.exp(log_p).sum())


def _failure_weights(cfg: Dict[str, Any], names: Sequence[str], seeds: Sequence[int], steps: int,
                     progress: bool) -> List[Dict[str, Any]]:
    variants = [(name, name, {}) for name in names]
    variants.append((f"ed (t={ED_WIDE_T:g})", "ed", {"t": ED_WIDE_T}))
    rows = []
    for seed in seeds:
        train = _mixture(cfg["n_train"], 1000 * seed + 11)
        test = _mixture(cfg["n_eval"], 1000 * seed + 12)
        for label, name, kwargs in variants:
            energy, wall, error = _train(label, OBJECTIVES.build(name, **kwargs), train, steps, seed)
            metrics, grid = _evaluate(energy, test, MIXTURE_BOUNDS, cfg["resolution"], cfg["n_eval"], cfg["n_sinkhorn"], seed)
            weight = _left_mass(grid[2], grid[0]) if grid is not None else float("nan")
            row = {"method": label, "seed": seed, "left_weight": weight, "true_left_weight": MIXTURE_WEIGHTS[0],
                   "sinkhorn": metrics["sinkhorn"], "wall_time_s": wall, "diverged": error}
            rows.append(row)
            if progress:
                print(json.dumps(row), flush=True)
    return rows


def _failure_stabilisation(cfg: Dict[str, Any], seeds: Sequence[int], steps: int, progress: bool) -> List[Dict[str, Any]]:
    rows = []
    for seed in seeds:
        train = _mixture(cfg["n_train"], 1000 * seed + 11)
        test = _mixture(cfg["n_eval"], 1000 * seed + 12)
        for w in (0.0, 1.0):
            for m in cfg["stab_m"]:
                obj = EnergyDiscrepancy(m=m, w=w, t=ED_WIDE_T)
                energy, wall, error = _train("ed", obj, train, steps, seed)
                metrics, grid = _evaluate(energy, test, MIXTURE_BOUNDS, cfg["resolution"], cfg["n_eval"], cfg["n_sinkhorn"], seed)
                weight = _left_mass(grid[2], grid[0]) if grid is not None else float("nan")
                row = {"w": w, "m": m, "t": ED_WIDE_T, "seed": seed, "left_weight": weight,
                       "sinkhorn": metrics["sinkhorn"], "wall_time_s": wall, "diverged": error}
                rows.append(row)
                if progress:
                    print(json.dumps(row), flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ output
def _plot_grid(grids, names: Sequence[str], datasets: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), len(datasets), figsize=(1.9 * len(datasets) + 1.2, 1.9 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        for j, ds in enumerate(datasets):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (name, ds) in grids:
                xs, ys, log_p = grids[(name, ds)]
                ax.imshow(torch.exp(log_p).T.numpy(), origin="lower", cmap="viridis", aspect="equal",
                          extent=(float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])))
            else:
                ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes)
            if i == 0:
                ax.set_title(ds, fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_failure(rows: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(methods), 3.2))
    for k, meth in enumerate(methods):
        ws = [r["left_weight"] for r in rows if r["method"] == meth]
        ax.scatter([k] * len(ws), ws, color="C0", s=18)
    ax.axhline(MIXTURE_WEIGHTS[0], color="k", ls="--", lw=1, label="true weight 0.2")
    ax.axhspan(MIXTURE_WEIGHTS[0] - 0.05, MIXTURE_WEIGHTS[0] + 0.05, color="k", alpha=0.08)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("recovered weight of the left mode")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    """Mean, sample standard deviation (n − 1) and count of the finite values; ``None`` / NaN / inf (a diverged
    run) are left out.  No finite value: mean and std NaN, n = 0; one value: std NaN."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else float("nan")
    return {"mean": mean, "std": std, "n": len(vals)}


def _mean_std(values: Sequence[float]) -> str:
    s = summarize(values)
    if s["n"] == 0:
        return "nan"
    if s["n"] == 1:
        return f"{s['mean']:.4g}"
    return f"{s['mean']:.4g} ± {s['std']:.2g}"


def _markdown(result: Dict[str, Any]) -> str:
    lines = ["# ebmlab bench objectives", "",
             f"Protocol: MLP 2-{'-'.join(map(str, HIDDEN))}-1 Softplus, Adam lr {LR}, batch {BATCH_SIZE}, "
             f"EMA decay {ema_decay(result['config']['steps']):.4g} (failure modes {ema_decay(result['config']['failure_steps']):.4g}), "
             f"{result['config']['steps']} iterations for every method, seeds {list(result['config']['seeds'])}; "
             f"values are mean ± std over seeds. Sinkhorn: debiased, ε = {SINKHORN_REG}, model samples drawn exactly "
             f"from the grid-normalised density ({result['config']['resolution']}² grid).", "",
             "## Hyper-parameters (defaults of each registered objective)", "", "| objective | configuration |", "|---|---|"]
    for name, rep in result["hyper_parameters"].items():
        lines.append(f"| {name} | `{' '.join(rep.split())}` |")
    main = result.get("main")
    if main:
        datasets = list(dict.fromkeys(r["dataset"] for r in main["rows"]))
        names = list(dict.fromkeys(r["objective"] for r in main["rows"]))
        for metric, title in (("sinkhorn", "Sinkhorn to held-out data (floor = data vs data)"),
                              ("grid_nll", "Grid NLL of held-out data"),
                              ("log_density_mse", "MSE of log-density vs the exact one (held-out points)"),
                              ("wall_time_s", "Training wall time (s)")):
            cols = [d for d in datasets if any(metric in r for r in main["rows"] if r["dataset"] == d)]
            if not cols:
                continue
            lines += ["", f"## {title}", "", "| objective | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            if metric == "sinkhorn":
                lines.append("| *floor* | " + " | ".join(f"{main['floors'][d]:.4g}" for d in cols) + " |")
            for name in names:
                cells = [_mean_std([r.get(metric) for r in main["rows"] if r["objective"] == name and r["dataset"] == d])
                         for d in cols]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        diverged = [f"{r['objective']}/{r['dataset']}/seed {r['seed']}" for r in main["rows"] if r["diverged"]]
        lines += ["", f"Diverged runs: {', '.join(diverged) if diverged else 'none'}.", "",
                  f"Figure: `{main['figure']}` (rows methods, columns data sets, first seed)."]
    fw = result.get("failure_weights")
    if fw:
        lines += ["", "## Failure mode (a): mixture weights (true left weight 0.2; modes at (±4, 0), std 0.5)", "",
                  "| method | recovered left weight | per seed | Sinkhorn |", "|---|---|---|---|"]
        for meth in dict.fromkeys(r["method"] for r in fw):
            rs = [r for r in fw if r["method"] == meth]
            lines.append(f"| {meth} | {_mean_std([r['left_weight'] for r in rs])} | "
                         + ", ".join(f"{r['left_weight']:.3f}" for r in rs)
                         + f" | {_mean_std([r['sinkhorn'] for r in rs])} |")
        lines += ["", "Figure: `failure_weights.png`."]
    fs = result.get("failure_stabilisation")
    if fs:
        lines += ["", f"## Failure mode (b): ED stabilisation (t = {ED_WIDE_T:g})", "",
                  "| w | m | recovered left weight | per seed | Sinkhorn | diverged |", "|---|---|---|---|---|---|"]
        for w in dict.fromkeys(r["w"] for r in fs):
            for m in dict.fromkeys(r["m"] for r in fs):
                rs = [r for r in fs if r["w"] == w and r["m"] == m]
                lines.append(f"| {w:g} | {m} | {_mean_std([r['left_weight'] for r in rs])} | "
                             + ", ".join(f"{r['left_weight']:.3f}" for r in rs)
                             + f" | {_mean_std([r['sinkhorn'] for r in rs])} | {sum(bool(r['diverged']) for r in rs)} |")
    return "\n".join(lines) + "\n"


def run_objective_bench(out_dir, quick: bool = False, seeds: Optional[Sequence[int]] = None, steps: Optional[int] = None,
                        objectives: Optional[Sequence[str]] = None, datasets: Optional[Sequence[str]] = None,
                        *, main: bool = True, failure_modes: Any = True, failure_steps: Optional[int] = None,
                        sizes: Optional[Dict[str, int]] = None, progress: bool = False) -> Dict[str, Any]:
    """Train every continuous objective on the 2-D toy sets and measure their known failure modes.

    Parameters
    ----------
    out_dir : path
        Output folder: ``objectives.json``, ``objectives.md``, ``objectives_energies.png`` and
        ``failure_weights.png``.
    quick : bool
        A few minutes on 2 cores: 2 data sets (8gaussians_unit, moons), 1 seed, 300 iterations.
    seeds : sequence of int, optional
        Default (0, 1, 2) (quick: (0,)).
    steps : int, optional
        Iterations per run (default 5000; quick 300).
    objectives : sequence of str, optional
        Default: every registered continuous objective (:func:`continuous_objectives`).
    datasets : sequence of str, optional
        Default: every name of :func:`ebmlab.data.toy_names`.
    main : bool
        Run the main table.
    failure_modes : bool or sequence of {"weights", "stabilisation"}
        Failure-mode tables to run: True = both, False = none, or a subset (e.g. to run them in
        separate processes).
    failure_steps : int, optional
        Iterations for the failure-mode runs (default 4000; quick 300).
    sizes : dict, optional
        Overrides of ``n_train``, ``n_eval``, ``n_sinkhorn``, ``resolution`` (e.g. tiny runs in tests).
    progress : bool
        Print one JSON line per finished run.

    Returns
    -------
    dict
        The JSON written to ``objectives.json``.
    """
    cfg = config(quick)
    for key, value in (sizes or {}).items():
        if key not in ("n_train", "n_eval", "n_sinkhorn", "resolution"):
            raise ConfigError(f"sizes may set n_train, n_eval, n_sinkhorn, resolution; got {key!r}")
        cfg[key] = check_int(key, value, minimum=2)
    if cfg["n_sinkhorn"] > cfg["n_eval"]:
        raise ConfigError(f"n_sinkhorn ({cfg['n_sinkhorn']}) must not exceed n_eval ({cfg['n_eval']})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = tuple(cfg["seeds"] if seeds is None else seeds)
    if not seeds:
        raise ConfigError("seeds must contain at least one seed")
    steps = check_int("steps", cfg["steps"] if steps is None else steps)
    failure_steps = check_int("failure_steps", cfg["failure_steps"] if failure_steps is None else failure_steps)
    available = continuous_objectives()
    names = list(available if objectives is None else objectives)
    for name in names:
        if name not in available:
            raise ConfigError(f"unknown continuous objective {name!r}; valid names are: {', '.join(available)}")
    valid_ds = toy_names()
    ds_list = list((cfg["datasets"] or valid_ds) if datasets is None else datasets)
    for ds in ds_list:
        if ds not in valid_ds:
            raise ConfigError(f"unknown data set {ds!r}; valid names are: {', '.join(valid_ds)}")
    cfg = dict(cfg, steps=steps, failure_steps=failure_steps, seeds=list(seeds), datasets=ds_list)

    result: Dict[str, Any] = {
        "config": cfg,
        "hyper_parameters": {name: repr(OBJECTIVES.build(name)) for name in names},
        "torch_threads": torch.get_num_threads(),
    }
    result["hyper_parameters"][f"ed (t={ED_WIDE_T:g})"] = repr(OBJECTIVES.build("ed", t=ED_WIDE_T))
    t0 = time.perf_counter()
    if main and names and ds_list:
        result["main"] = _main_table(cfg, names, ds_list, seeds, steps, out, progress)
    parts = ("weights", "stabilisation") if failure_modes is True else (() if failure_modes is False else tuple(failure_modes))
    for part in parts:
        if part not in ("weights", "stabilisation"):
            raise ConfigError(f"failure_modes must be True, False or a subset of ('weights', 'stabilisation'), got {part!r}")
    if "weights" in parts:
        result["failure_weights"] = _failure_weights(cfg, names, seeds, failure_steps, progress)
        _plot_failure(result["failure_weights"], out / "failure_weights.png")
    if "stabilisation" in parts:
        result["failure_stabilisation"] = _failure_stabilisation(cfg, seeds, failure_steps, progress)
    result["total_wall_time_s"] = time.perf_counter() - t0
    (out / "objectives.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "objectives.md").write_text(_markdown(result))
    return result
