"""``ebmlab bench ising``: learning discrete models with every discrete estimator.

Part 1 — **lattice Ising coupling recovery** (the set-up of Grathwohl et al. 2021, "Oops I took a
gradient: scalable sampling for discrete distributions", ICML 2021): data are ``n_data`` samples of a periodic ``side x side``
:class:`~ebmlab.energies.IsingLattice` in Grathwohl et al.'s parametrisation log p(x) = xᵀJx + bᵀx on {-1,+1}
with J = σA, σ = .25: every neighbouring pair appears twice in xᵀJx, so the per-bond coupling (the standard β of
``IsingLattice``) is 2σ = .5, above the critical ln(1 + √2)/2 = .4407 (Onsager 1944); the learned and true
matrices are compared in ``Ising``'s convention (U = -Σ_{i<j} J_ij s_i s_j, so J_ij = 2σ A_ij),
drawn by :func:`ebmlab.data.ising_dataset` (an exact checkerboard + Swendsen–Wang sampler).  A full
learnable :class:`~ebmlab.energies.Ising` (J: n x n, symmetric by construction, zero diagonal; the
field is fixed at its true value 0, as in the reference set-up) is fitted from J = 0 by every
estimator with Adam (batch 100, lr .001, no L1 penalty by default), and the RMSE over the n² entries of J between the learned
and the true matrix is logged (as log-RMSE) against iterations and training wall time (evaluation
time excluded).  The learning rate: ``pcd.py`` of Grathwohl et al. has the argparse default .01, but their
lattice scripts (``train_ising_potts.sh``) run lr .001 (and optionally an L1 penalty ``l1 * sum |J_ij|``,
``ising_config()["l1"]``); at lr .01 Adam's per-coordinate steps make the ~n²/2 couplings that should stay 0
random-walk at the +-.01 level, which puts a floor on the RMSE above what the estimators reach at .001.
Estimators:

- ``pseudo_likelihood`` (Besag 1975);
- ``pcd_gibbs``: PCD, buffer 100, 1 random-scan Gibbs sweep (n single-site updates) per iteration;
- ``pcd_gwg``: PCD, buffer 100, 100 Gibbs-with-gradients steps (one proposed flip each) per iteration;
- ``ed_bernoulli`` (flip_prob .1), ``ed_neighbourhood``, ``ed_pooling`` (2 x 2 blocks of the lattice):
  energy discrepancy with M = 32, w = 1 (Schröder et al. 2024 defaults).  Pooling ED does not identify J
  (see :class:`~ebmlab.objectives.discrete_perturbations.PoolingPerturbation`): its RMSE is not expected
  to go to zero.

Part 2 — **2-D densities as 32-bit Gray codes** (discrete-ED / EB-GFN protocol): a toy set is quantised
(:mod:`ebmlab.data.gray_code`, box [-4, 4)², 16 bits per coordinate), a
:class:`~ebmlab.energies.BinaryMLPEnergy` (minus log Bernoulli(data mean)) is trained by each estimator
(Adam, lr 2e-3 in the reference; grad clip 5, batch 128), samples are drawn from the learned model with
Gibbs-with-gradients chains started from the base Bernoulli, decoded to the plane and compared with held-out
data by the unbiased MMD² (:func:`ebmlab.metrics.mmd`: Gaussian kernel, median-heuristic bandwidth; it can
be slightly negative, and the table gives the data-vs-data value beside it); heat maps of the decoded samples.

Outputs in ``out_dir``: ``ising.json``, ``ising.md``, ``ising_rmse.png`` (two panels),
``ising_gray_heatmaps.png``, and the sampler-throughput table of
:func:`ebmlab.bench.ising_samplers.run_ising_sampler_bench` (``ising_samplers.md`` / ``.json``).
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

from .._core.validation import check_int
from ..data.gray_code import decode_gray, gray_toy
from ..data.lattice import ising_dataset
from ..energies.binary_mlp import BinaryMLPEnergy
from ..energies.ising import Ising, IsingLattice
from ..energies.product_bernoulli import BernoulliNoise, bernoulli_base_probs
from ..metrics.mmd import mmd
from ..objectives.contrastive_divergence import PersistentCD
from ..objectives.discrete_perturbations import (
    BernoulliPerturbation,
    NeighbourhoodPerturbation,
    PoolingPerturbation,
)
from ..objectives.energy_discrepancy import EnergyDiscrepancy
from ..objectives.nce import NoiseContrastiveEstimation
from ..objectives.pseudo_likelihood import PseudoLikelihood
from ..samplers.gibbs import Gibbs
from ..samplers.gibbs_with_gradients import GibbsWithGradients
from ..samplers.driver import sample
from .._core.random import init_parameters_
from .timing import allocator_env

__all__ = ["run_ising_bench", "ising_config", "gray_config"]


# ----------------------------------------------------------------------------------------- configs
def ising_config(quick: bool) -> Dict[str, Any]:
    """Hyper-parameters of part 1 (full: the GWG set-up; quick: a 10 x 10 lattice, fewer iterations).

    Measured CPU cost per iteration at 25 x 25 (one thread): pseudo-likelihood .007 s, PCD-Gibbs .54 s,
    PCD-GWG .37 s, each ED variant .13 s, i.e. about 45 CPU minutes for the full 2000 iterations.
    """
    return {
        "side": 10 if quick else 25,
        "sigma": 0.25,
        "coupling": 0.5,  # = 2 sigma: per-bond coupling of log p = x^T (sigma A) x
        "n_data": 2000,
        "data_sweeps": 5 if quick else 10,
        "data_burn_in": 200 if quick else 1000,
        "iterations": 400 if quick else 2000,
        "eval_every": 25 if quick else 100,
        "batch_size": 100,
        "lr": 0.001,
        "l1": 0.0,
        "buffer_size": 100,
        "gwg_steps": 100,
        "gibbs_sweeps": 1,
        "ed_m": 32,
        "ed_w": 1.0,
        "bernoulli_flip_prob": 0.1,
        "pooling_window": 2,
    }


def gray_config(quick: bool) -> Dict[str, Any]:
    """Hyper-parameters of part 2 (full: about .3 CPU s per iteration for all seven estimators together
    with the 256-256-256 network, i.e. ~15 CPU minutes per data set, plus sampling)."""
    return {
        "datasets": ["8gaussians"] if quick else ["8gaussians", "2spirals"],
        "n_train": 5000 if quick else 50000,
        "n_test": 1000 if quick else 2000,
        "hidden": [128, 128] if quick else [256, 256, 256],
        "iterations": 200 if quick else 3000,
        "batch_size": 128,
        "lr": 2e-3,
        "grad_clip": 5.0,
        "pcd_buffer": 1000,
        "pcd_gibbs_sweeps": 1,
        "pcd_gwg_steps": 32,
        "ed_m": 32,
        "sample_chains": 1000 if quick else 2000,
        "sample_steps": 200 if quick else 1000,
    }


# ---------------------------------------------------------------------------------- part 1: Ising
def _ising_objectives(cfg: Dict[str, Any]) -> Dict[str, Callable[[], Any]]:
    side = cfg["side"]
    return {
        "pseudo_likelihood": lambda: PseudoLikelihood(),
        "pcd_gibbs": lambda: PersistentCD(sampler=Gibbs(), steps=cfg["gibbs_sweeps"], buffer_size=cfg["buffer_size"],
                                          reinit_prob=0.0, init="bernoulli"),
        "pcd_gwg": lambda: PersistentCD(sampler=GibbsWithGradients(), steps=cfg["gwg_steps"],
                                        buffer_size=cfg["buffer_size"], reinit_prob=0.0, init="bernoulli"),
        "ed_bernoulli": lambda: EnergyDiscrepancy(BernoulliPerturbation(cfg["bernoulli_flip_prob"]), m=cfg["ed_m"], w=cfg["ed_w"]),
        "ed_neighbourhood": lambda: EnergyDiscrepancy(NeighbourhoodPerturbation(), m=cfg["ed_m"], w=cfg["ed_w"]),
        "ed_pooling": lambda: EnergyDiscrepancy(PoolingPerturbation(cfg["pooling_window"], shape=(side, side)),
                                                m=cfg["ed_m"], w=cfg["ed_w"]),
    }


def _train_ising(objective, data: torch.Tensor, J_true: torch.Tensor, cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    n = data.shape[1]
    model = Ising(torch.zeros(n, n), torch.zeros(n), learnable=True)
    model.bias.requires_grad_(False)  # the field is known (zero), as in the reference set-up
    opt = torch.optim.Adam([model.weight], lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed)
    its: List[int] = []
    secs: List[float] = []
    log_rmse: List[float] = []
    elapsed = 0.0

    def evaluate(it: int) -> None:
        with torch.no_grad():
            rmse = float(((model.J - J_true) ** 2).mean().sqrt())
        its.append(it)
        secs.append(elapsed)
        log_rmse.append(math.log(rmse))

    evaluate(0)
    for it in range(1, cfg["iterations"] + 1):
        t0 = time.perf_counter()
        idx = torch.randint(0, data.shape[0], (cfg["batch_size"],), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = objective(model, data[idx], generator=g).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at iteration {it}")
        if cfg["l1"] > 0:
            loss = loss + cfg["l1"] * model.J.abs().sum()
        loss.backward()
        opt.step()
        elapsed += time.perf_counter() - t0
        if it % cfg["eval_every"] == 0 or it == cfg["iterations"]:
            evaluate(it)
    return {"iterations": its, "seconds": secs, "log_rmse": log_rmse,
            "final_rmse": math.exp(log_rmse[-1]), "seconds_per_iteration": elapsed / cfg["iterations"]}


def _ising_part(cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    side, coupling = cfg["side"], cfg["coupling"]
    t0 = time.perf_counter()
    data = ising_dataset(side, coupling, cfg["n_data"], sweeps=cfg["data_sweeps"], burn_in=cfg["data_burn_in"],
                         seed=seed, dtype=torch.float32)
    data_seconds = time.perf_counter() - t0
    J_true = IsingLattice(side, coupling).J.to(torch.float32)
    s = 2 * data - 1
    nn_corr = float((s * IsingLattice(side, coupling).neighbour_sum(s)).mean() / 4)
    results = {}
    for k, (name, make) in enumerate(_ising_objectives(cfg).items()):
        results[name] = _train_ising(make(), data, J_true, cfg, seed + 1 + k)
    return {"config": cfg, "data_seconds": data_seconds, "data_nn_correlation": nn_corr,
            "rmse_of_zero_model": float((J_true ** 2).mean().sqrt()), "results": results}


# ----------------------------------------------------------------------------- part 2: Gray codes
def _gray_objectives(cfg: Dict[str, Any], train: torch.Tensor) -> Dict[str, Callable[[], Any]]:
    return {
        "pseudo_likelihood": lambda: PseudoLikelihood(),
        "pcd_gibbs": lambda: PersistentCD(sampler=Gibbs(), steps=cfg["pcd_gibbs_sweeps"], buffer_size=cfg["pcd_buffer"],
                                          reinit_prob=0.0, init="bernoulli"),
        "pcd_gwg": lambda: PersistentCD(sampler=GibbsWithGradients(), steps=cfg["pcd_gwg_steps"],
                                        buffer_size=cfg["pcd_buffer"], reinit_prob=0.0, init="bernoulli"),
        "nce": lambda: NoiseContrastiveEstimation(noise=BernoulliNoise.from_data(train), noise_ratio=1.0),
        "ed_bernoulli": lambda: EnergyDiscrepancy(BernoulliPerturbation(0.1), m=cfg["ed_m"], w=1.0),
        "ed_neighbourhood": lambda: EnergyDiscrepancy(NeighbourhoodPerturbation(), m=cfg["ed_m"], w=1.0),
        "ed_pooling": lambda: EnergyDiscrepancy(PoolingPerturbation(2), m=cfg["ed_m"], w=1.0),
    }


def _sample_binary(energy, base_probs: torch.Tensor, cfg: Dict[str, Any], generator: torch.Generator) -> torch.Tensor:
    x = (torch.rand((cfg["sample_chains"], base_probs.shape[0]), generator=generator) < base_probs).float()
    last, _ = sample(energy, GibbsWithGradients(), x, cfg["sample_steps"], keep="last", warn=False, generator=generator)
    return last.detach()


def _gray_part(cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {"config": cfg, "datasets": {}}
    for di, name in enumerate(cfg["datasets"]):
        train = gray_toy(name, cfg["n_train"], generator=seed + 100 * di)
        test = gray_toy(name, cfg["n_test"], generator=seed + 100 * di + 1)
        test_pts = decode_gray(test)
        base = bernoulli_base_probs(train)
        g_floor = torch.Generator().manual_seed(seed + 7)
        floor = mmd(decode_gray(gray_toy(name, cfg["n_test"], generator=g_floor)), test_pts)
        rows: Dict[str, Any] = {}
        samples: Dict[str, torch.Tensor] = {}
        for k, (oname, make) in enumerate(_gray_objectives(cfg, train).items()):
            gen = torch.Generator().manual_seed(seed + 1000 * (di + 1) + k)
            energy = init_parameters_(BinaryMLPEnergy(train.shape[1], hidden=cfg["hidden"], base_probs=base), torch.Generator().manual_seed(seed + k))
            objective = make()
            params = list(energy.parameters()) + list(objective.parameters())
            opt = torch.optim.Adam(params, lr=cfg["lr"])
            t0 = time.perf_counter()
            for _ in range(cfg["iterations"]):
                batch = train[torch.randint(0, train.shape[0], (cfg["batch_size"],), generator=gen)]
                opt.zero_grad(set_to_none=True)
                loss = objective(energy, batch, generator=gen).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{oname} on {name}: non-finite loss")
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
                opt.step()
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            xs = _sample_binary(energy, base, cfg, gen)
            sample_s = time.perf_counter() - t0
            pts = decode_gray(xs)
            samples[oname] = pts
            rows[oname] = {"mmd": mmd(pts[: cfg["n_test"]], test_pts), "train_seconds": train_s,
                           "sample_seconds": sample_s}
        out["datasets"][name] = {"mmd_data_floor": floor, "results": rows,
                                 "_samples": samples, "_data": test_pts}
    return out


# ------------------------------------------------------------------------------------------ output
def _plot_ising(part: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in part["results"].items():
        axes[0].plot(r["iterations"], r["log_rmse"], label=name)
        axes[1].plot(r["seconds"], r["log_rmse"], label=name)
    for ax, xl in zip(axes, ("iteration", "training wall time (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("log RMSE(J)")
        ax.grid(alpha=0.3)
    cfg = part["config"]
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cfg['side']}x{cfg['side']} periodic Ising, sigma {cfg.get('sigma')} (per-bond coupling {cfg['coupling']}), {cfg['n_data']} samples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_gray(part: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(part["datasets"])
    methods = list(next(iter(part["datasets"].values()))["results"])
    cols = 1 + len(methods)
    fig, axes = plt.subplots(len(names), cols, figsize=(2.2 * cols, 2.3 * len(names)), squeeze=False)
    for i, dname in enumerate(names):
        d = part["datasets"][dname]
        panels = [("data", d["_data"])] + [(m, d["_samples"][m]) for m in methods]
        for j, (title, pts) in enumerate(panels):
            ax = axes[i, j]
            ax.hist2d(pts[:, 0].numpy(), pts[:, 1].numpy(), bins=80, range=[[-4, 4], [-4, 4]], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(dname, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(result: Dict[str, Any]) -> str:
    p1 = result["ising"]
    c = p1["config"]
    lines = [
        "# ebmlab bench ising",
        "",
        f"## Lattice Ising coupling recovery ({c['side']}x{c['side']} periodic, sigma {c.get('sigma')} (per-bond coupling {c['coupling']}), "
        f"{c['n_data']} samples, {c['iterations']} iterations, Adam lr {c['lr']}, batch {c['batch_size']}, L1 {c['l1']})",
        "",
        f"Data: `ising_dataset` ({p1['data_seconds']:.1f} s), nearest-neighbour correlation {p1['data_nn_correlation']:.3f}. "
        f"RMSE of the untrained model (J = 0): {p1['rmse_of_zero_model']:.4f} (log {math.log(p1['rmse_of_zero_model']):.2f}).",
        "",
        "| estimator | final RMSE(J) | final log-RMSE | s / iteration | training time (s) |",
        "|---|---|---|---|---|",
    ]
    for name, r in p1["results"].items():
        lines.append(f"| {name} | {r['final_rmse']:.4f} | {r['log_rmse'][-1]:.2f} | {r['seconds_per_iteration']:.4f} | "
                     f"{r['seconds'][-1]:.1f} |")
    lines += ["", "Pooling ED does not identify J (it is consistent only for p(x | pooled x)); see the "
              "PoolingPerturbation docstring.", ""]
    p2 = result["gray"]
    g = p2["config"]
    lines += [f"## 2-D densities as 32-bit Gray codes (BinaryMLP {g['hidden']}, {g['iterations']} iterations, "
              f"{g['sample_chains']} GWG chains x {g['sample_steps']} steps for sampling)", "",
              "| data set | estimator | MMD² (decoded samples vs held-out data) | data-vs-data floor | train (s) | sample (s) |",
              "|---|---|---|---|---|---|"]
    for dname, d in p2["datasets"].items():
        for m, r in d["results"].items():
            lines.append(f"| {dname} | {m} | {r['mmd']:.4f} | {d['mmd_data_floor']:.4f} | {r['train_seconds']:.1f} | "
                         f"{r['sample_seconds']:.1f} |")
    sb = result.get("sampler_throughput")
    lines.append("")
    if isinstance(sb, dict) and "error" not in sb and result.get("_sampler_markdown"):
        lines.append(result["_sampler_markdown"])  # from run_ising_sampler_bench (also in ising_samplers.md)
    else:
        why = sb.get("error") if isinstance(sb, dict) and "error" in sb else "see ising_samplers.md"
        lines += ["## Sampler throughput", "", f"Not embedded: {why}"]
    lines += ["", f"Total time {result['seconds']:.0f} s on {result['machine']['platform']}, "
              f"{result['machine']['threads']} torch thread(s); allocator pinned: {result['machine']['allocator']['pinned']}.", ""]
    return "\n".join(lines)


def run_ising_bench(out_dir, quick: bool = False, seed: int = 0, samplers: bool = True) -> Dict[str, Any]:
    """Run ``ebmlab bench ising`` and write its tables and figures into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    quick : bool
        A few minutes on 2 cores: 10 x 10 lattice, 300 iterations; one Gray-code data set, a smaller network.
    seed : int
        Seed of data generation, initialisation and training.
    samplers : bool
        Also run :func:`ebmlab.bench.ising_samplers.run_ising_sampler_bench` (sampler throughput).

    Returns
    -------
    dict
        The content of ``ising.json``.
    """
    seed = check_int("seed", seed, minimum=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    result: Dict[str, Any] = {
        "quick": bool(quick),
        "seed": seed,
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "allocator": allocator_env()},
    }
    result["ising"] = _ising_part(ising_config(quick), seed)
    _plot_ising(result["ising"], out / "ising_rmse.png")
    gray = _gray_part(gray_config(quick), seed)
    _plot_gray(gray, out / "ising_gray_heatmaps.png")
    for d in gray["datasets"].values():
        d.pop("_samples")
        d.pop("_data")
    result["gray"] = gray
    if samplers:
        try:
            from .ising_samplers import run_ising_sampler_bench
        except ImportError as err:  # pragma: no cover - the other bench is optional
            result["sampler_throughput"] = {"error": f"ising_samplers bench not importable: {err}"}
        else:
            result["sampler_throughput"] = run_ising_sampler_bench(out, quick=quick)
            md = out / "ising_samplers.md"
            if md.exists():  # embedded in ising.md, one heading level down
                result["_sampler_markdown"] = "\n".join(
                    ("#" + ln if ln.startswith("#") else ln) for ln in md.read_text().splitlines())
    else:
        result["sampler_throughput"] = {"error": "skipped (samplers=False)"}
    result["seconds"] = time.perf_counter() - t_start
    (out / "ising.md").write_text(_markdown(result))
    result.pop("_sampler_markdown", None)
    (out / "ising.json").write_text(json.dumps(result, indent=2, default=float))
    return result
