r"""``ebmlab bench diffusion-samplers``: learned diffusion samplers against MCMC and AIS at equal energy evaluations.

Targets with a known log Z (:mod:`ebmlab.energies.targets`, each shifted by a known offset so that log Z ≠ 0):
Neal's funnel (10-D), the 9-mode ``grid`` mixture (2-D), the 40-mode mixture (2-D, means on [-40, 40]²) and the
5-D many-well (32 modes).  For each target:

1. a :class:`~ebmlab.diffusion.DiffusionSampler` is trained with the log-variance loss (Richter & Berner 2024,
   "Improved sampling via learned diffusions") and evaluated on ``n_eval`` fresh paths (10,000 in the full run):
   log Ẑ - log Z ± its standard error, the Kish ESS of the path weights, mode weights of the importance-weighted
   draws;
2. its total cost E = (training paths + evaluation paths) × (energy evaluations per path) is the budget given to
   every baseline:
   - MALA, HMC (5 leapfrog steps) and kinetic Langevin, ``n_chains`` chains from N(0, I) through the one chain
     runner :func:`ebmlab.samplers.sample` (MALA/HMC: step size adapted by dual averaging during the first half,
     the final states are the draws), E / n_chains gradient evaluations per chain (n_chains ≥ 1,000 and large
     enough that no chain runs more than 10,000 gradient evaluations); MCMC gives no log Z;
   - annealed importance sampling (:func:`ebmlab.metrics.ais_log_z`, geometric path from N(0, I), one MALA step
     per temperature) with ``n_ais`` chains and as many temperatures as E allows.

Columns: log Z error ± SE, ESS, maximum mode-weight error max_k |ŵ_k - 1/M| and the number of modes whose estimated
weight is below half their true weight ("missed"; grid, 40-mode, many-well), the x₁ standard deviation of the draws
(funnel; exact 3), the debiased Sinkhorn divergence (:func:`ebmlab.metrics.sinkhorn`, ε = 1, 1,000 points) to
exact draws on ``grid`` with its exact-vs-exact floor, energy evaluations and wall time.  Sinkhorn is computed
on ``grid`` only: at the default ε = .05 one exact-vs-exact evaluation on 1,000 ``grid`` points took 354 s, at
ε = 1 6.7 s, and on the 40-mode target (diameter ~110) it did not finish in 190 s at ε = 1, so mode weights are its
metric there.  Writes ``diffusion_samplers.md``, ``diffusion_samplers.json`` and ``diffusion_samplers.png``
(first two coordinates of 1,000 draws per method) into ``out``.
"""
from __future__ import annotations

import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

METHODS = ("diffusion", "mala", "hmc", "kinetic_langevin", "ais")
HMC_LEAPFROG = 5
SINKHORN_REG = 1.0


def _targets(quick: bool) -> List[Dict[str, Any]]:
    """Per-target settings: the sampler's options and training budget, the baselines' fixed step sizes."""
    from ..energies.targets import Funnel, ManyWell, gmm40_target, grid_target

    def steps(full: int, q: int) -> int:
        return q if quick else full

    lerp = {"score_interpolation": True, "score_clip": 10.0}
    return [
        # funnel: beta_max = 20, so ∫β = 10.05 and the noising chain keeps a = e^{-5} ≈ .007 of x at t = 1 (the
        # default 10 keeps a ≈ .08, leaving the funnel's wide end, x_i ~ e^{x₁/2} up to ~50, visible against the
        # N(0, I) prior).  Measured log Ẑ - log Z with this fit: -.23 ± .08 (ESS 167) against -.34 ± .02 at 10 and
        # -.48 ± .04 at 40; 100 SDE steps gave -.04 ± .25 but ESS 16 (a few paths carry the estimate) at twice
        # the cost.  Not converged: the draws' x₁ std is 1.9 (exact 3).
        {"name": "funnel-10d", "energy": Funnel(), "dim": 10, "modes": None,
         "sampler": {"sde_steps": 50, "beta_max": 20.0, **lerp},
         "fit": {"steps": steps(2000, 100), "batch_size": steps(512, 256), "lr": 3e-3, "grad_clip": 1.0},
         "kl_step": 0.05, "ais_step": 0.02},
        {"name": "grid", "energy": grid_target(), "dim": 2, "modes": 9,
         "sampler": {"sde_steps": 50},
         "fit": {"steps": steps(400, 100), "batch_size": 256, "lr": 3e-3},
         "kl_step": 0.05, "ais_step": 0.05},
        {"name": "40-mode", "energy": gmm40_target(), "dim": 2, "modes": 40,
         "sampler": {"sde_steps": 50, "prior_std": 15.0, **lerp},
         "fit": {"steps": steps(400, 100), "batch_size": 256, "lr": 3e-3, "grad_clip": 1.0},
         "kl_step": 0.1, "ais_step": 0.1},
        {"name": "many-well-5d", "energy": ManyWell(), "dim": 5, "modes": 32,
         "sampler": {"sde_steps": 50, **lerp},
         "fit": {"steps": steps(400, 100), "batch_size": 256, "lr": 3e-3, "grad_clip": 1.0},
         "kl_step": 0.01, "ais_step": 0.01},
    ]


def _sizes(quick: bool):
    """(evaluation paths, minimum number of MCMC chains, AIS chains, maximum gradient evaluations per MCMC chain:
    a larger budget runs more chains)."""
    return (2000, 200, 1000, 3000) if quick else (10000, 1000, 10000, 10000)


def _mode_weights(energy, x: torch.Tensor, weights: Optional[torch.Tensor], n_modes: int) -> torch.Tensor:
    """Estimated mode weights: (weighted) fractions of the draws nearest each mode."""
    idx = energy.assign_modes(x)
    w = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64) if weights is None else weights.double()
    return torch.zeros(n_modes, dtype=torch.float64).index_add_(0, idx, w)


def _resample(x: torch.Tensor, log_w: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.multinomial(torch.softmax(log_w.double(), 0), n, replacement=True, generator=gen)
    return x[idx]


def _metrics(cfg, x: torch.Tensor, log_w: Optional[torch.Tensor], exact: Optional[torch.Tensor],
             gen: torch.Generator) -> Dict[str, Any]:
    """Mode-weight error / x₁ std / Sinkhorn of draws ``x`` (weighted by ``log_w`` when given)."""
    from ..metrics.sinkhorn import sinkhorn

    out: Dict[str, Any] = {}
    weights = None if log_w is None else torch.softmax(log_w.double(), 0)
    if cfg["modes"] is not None:
        m = cfg["modes"]
        mw = _mode_weights(cfg["energy"], x, weights, m)
        out["max_mode_error"] = float((mw - 1.0 / m).abs().max())
        out["modes_missed"] = int((mw < 0.5 / m).sum())
    pts = x if log_w is None else _resample(x, log_w, min(1000, x.shape[0]), gen)
    pts = pts[:1000]
    if cfg["name"] == "funnel-10d":
        out["x1_std"] = float(pts[:, 0].double().std())
    if exact is not None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["sinkhorn"] = sinkhorn(pts, exact[: pts.shape[0]], reg=SINKHORN_REG, tol=1e-3)
        out["sinkhorn_seconds"] = time.perf_counter() - t0
    out["points"] = pts[:1000, :2].float().tolist()
    return out


def _run_target(cfg: Dict[str, Any], quick: bool, seed: int = 0) -> Dict[str, Any]:
    from ..diffusion import DiffusionSampler, effective_sample_size_from_log_weights, log_z_from_log_weights
    from ..metrics.ais import ais_log_z
    from ..samplers import HMC, MALA, KineticLangevin, sample

    energy, dim = cfg["energy"], cfg["dim"]
    true_log_z = float(energy.log_normalizer())
    n_eval, n_chains, n_ais, max_chain_steps = _sizes(quick)
    gen = torch.Generator().manual_seed(seed + 1)
    exact = energy.sample(1000, generator=torch.Generator().manual_seed(seed + 2)) if cfg["name"] == "grid" else None
    rows: Dict[str, Dict[str, Any]] = {}

    # 1. the learned diffusion sampler
    t0 = time.perf_counter()
    ds = DiffusionSampler(energy, dim, **cfg["sampler"]).fit(seed=seed, **cfg["fit"])
    x, lw = ds.paths(n_eval, generator=torch.Generator().manual_seed(seed + 3))
    wall = time.perf_counter() - t0
    budget = ds.fit_info_["energy_evals"] + n_eval * ds._evals_per_path()
    lz, se = log_z_from_log_weights(lw)
    rows["diffusion"] = {"log_z_error": lz - true_log_z, "log_z_se": se,
                         "ess": effective_sample_size_from_log_weights(lw), "n_weights": n_eval,
                         "elbo_gap": float(lw.mean()) - true_log_z, "energy_evals": budget, "wall_time": wall,
                         "fit_wall_time": ds.fit_info_["wall_time"], "final_loss": ds.history_["loss"][-1],
                         **_metrics(cfg, x, lw, exact, gen)}

    # 2. MCMC from N(0, I) at the same number of energy(-gradient) evaluations
    n_chains = max(n_chains, -(-budget // max_chain_steps))  # at most max_chain_steps gradients per chain
    x0 = torch.randn(n_chains, dim, generator=gen, dtype=torch.float64)
    per_chain = budget // n_chains
    for name, kernel, cost in (("mala", MALA(step_size=0.1), 1),
                               ("hmc", HMC(step_size=0.1, n_leapfrog=HMC_LEAPFROG), HMC_LEAPFROG),
                               ("kinetic_langevin", KineticLangevin(step_size=cfg["kl_step"]), 1)):
        total = max(2, per_chain // cost)
        adapt = name != "kinetic_langevin"
        burn = total // 2 if adapt else 0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xs, info = sample(energy, kernel, x0.clone(), total - burn, burn_in=burn, generator=gen,
                              adapt=adapt, keep="last", warn=False)
        rows[name] = {"energy_evals": info.n_grad_evals * n_chains, "wall_time": time.perf_counter() - t0,
                      "n_chains": n_chains, "steps_per_chain": total,
                      "acceptance_rate": info.acceptance_rate, "step_size": info.step_size,
                      "finite": bool(torch.isfinite(xs).all()), **_metrics(cfg, xs.double(), None, exact, gen)}

    # 3. AIS at the same number of evaluations (1 energy + 1 MALA gradient per temperature and chain, + init)
    n_temp = max(2, budget // (n_ais * 3))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ais_log_z(energy, dim, n_samples=n_ais, n_temperatures=n_temp, step_size=cfg["ais_step"], generator=gen)
    rows["ais"] = {"log_z_error": res.log_z - true_log_z, "log_z_se": res.standard_error, "ess": res.ess,
                   "n_weights": n_ais, "energy_evals": res.energy_evals * n_ais, "wall_time": time.perf_counter() - t0,
                   "n_temperatures": n_temp, "acceptance_rate": res.acceptance_rate,
                   **_metrics(cfg, res.samples, res.log_weights, exact, gen)}
    result = {"target": cfg["name"], "dim": dim, "log_z": true_log_z, "modes": cfg["modes"],
              "sampler_options": cfg["sampler"], "fit": cfg["fit"], "n_eval": n_eval, "n_chains": n_chains,
              "budget": budget, "rows": rows}
    if exact is not None:
        other = energy.sample(1000, generator=torch.Generator().manual_seed(seed + 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            from ..metrics.sinkhorn import sinkhorn

            result["sinkhorn_floor"] = sinkhorn(other, exact, reg=SINKHORN_REG, tol=1e-3)
    result["exact_points"] = energy.sample(1000, generator=torch.Generator().manual_seed(seed + 5))[:, :2].tolist()
    return result


def _fmt(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def _markdown(res: Dict[str, Any]) -> str:
    lines = ["# ebmlab bench diffusion-samplers", "",
             f"{'quick' if res['quick'] else 'full'} run; torch {res['torch']}, {res['platform']}; load average "
             f"at start {res['load_start']}, at end {res['load_end']} (2 shared cores: wall times are inflated).",
             "Every baseline gets the diffusion sampler's total energy-evaluation budget (training + evaluation);",
             "MCMC chains (MALA, HMC, kinetic Langevin) start from N(0, I); AIS uses a geometric path from N(0, I).", ""]
    for t in res["targets"]:
        lines += [f"## {t['target']} (dim {t['dim']}, log Z = {t['log_z']:.4f}; budget {t['budget']:,} energy "
                  f"evaluations)", ""]
        head = "| method | log Ẑ − log Z ± SE | ESS | "
        if t["modes"]:
            head += f"max mode-weight error (1/M = {1 / t['modes']:.4f}) | modes missed / {t['modes']} | "
        if t["target"] == "funnel-10d":
            head += "x₁ std (exact 3) | "
        if "sinkhorn_floor" in t:
            head += f"Sinkhorn ε=1 (floor {t['sinkhorn_floor']:.3f}) | "
        head += "energy evals | wall s |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for m in METHODS:
            r = t["rows"][m]
            lz = (f"{r['log_z_error']:+.3f} ± {r['log_z_se']:.3f}" if "log_z_error" in r else "—")
            ess = f"{r['ess']:,.0f} / {r['n_weights']:,}" if "ess" in r else "—"
            row = f"| {m} | {lz} | {ess} | "
            if t["modes"]:
                row += f"{r['max_mode_error']:.4f} | {r['modes_missed']} | "
            if t["target"] == "funnel-10d":
                row += f"{r['x1_std']:.2f} | "
            if "sinkhorn_floor" in t:
                row += f"{r['sinkhorn']:.3f} | "
            row += f"{r['energy_evals']:,} | {r['wall_time']:.0f} |"
            lines.append(row)
        lines.append("")
    lines += ["Figure: `diffusion_samplers.png` (first two coordinates of 1,000 draws per method; diffusion and AIS",
              "draws resampled by their importance weights, MCMC the final states of the chains).", ""]
    return "\n".join(lines)


def _figure(res: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ("exact",) + METHODS
    targets = res["targets"]
    fig, axes = plt.subplots(len(targets), len(cols), figsize=(2.3 * len(cols), 2.3 * len(targets)), squeeze=False)
    for i, t in enumerate(targets):
        ex = torch.tensor(t["exact_points"])
        lo, hi = ex.quantile(0.005, 0), ex.quantile(0.995, 0)
        pad = 0.15 * (hi - lo)
        for j, c in enumerate(cols):
            ax = axes[i, j]
            pts = ex if c == "exact" else torch.tensor(t["rows"][c]["points"])
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5)
            ax.set_xlim(float(lo[0] - pad[0]), float(hi[0] + pad[0]))
            ax.set_ylim(float(lo[1] - pad[1]), float(hi[1] + pad[1]))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(c.replace("_", " "), fontsize=9)
            ax.set_xlabel("x₁", fontsize=8, labelpad=1)
            ax.set_ylabel((t["target"] + "\n" if j == 0 else "") + "x₂", fontsize=8 if j else 9, labelpad=1)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_diffusion_sampler_bench(out: Path, quick: bool = False, targets: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the suite (module docstring) and write Markdown, JSON and the figure into ``out``.  ``targets``
    restricts it to some of the target names (funnel-10d, grid, 40-mode, many-well-5d)."""
    import os

    from .._core.errors import ConfigError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = _targets(quick)
    if targets is not None:
        names = [c["name"] for c in cfgs]
        bad = [t for t in targets if t not in names]
        if bad:
            raise ConfigError(f"unknown diffusion-samplers target(s) {bad!r}; valid: {', '.join(names)}")
        cfgs = [c for c in cfgs if c["name"] in targets]
    res: Dict[str, Any] = {"quick": quick, "torch": torch.__version__, "platform": platform.platform(),
                           "load_start": round(os.getloadavg()[0], 1), "targets": []}
    t0 = time.perf_counter()
    for cfg in cfgs:
        res["targets"].append(_run_target(cfg, quick))
    res["wall_time"] = time.perf_counter() - t0
    res["load_end"] = round(os.getloadavg()[0], 1)
    md, js, png = out / "diffusion_samplers.md", out / "diffusion_samplers.json", out / "diffusion_samplers.png"
    md.write_text(_markdown(res))
    js.write_text(json.dumps(res, indent=1))
    _figure(res, png)
    return {"files": [str(md), str(js), str(png)], "wall_time": res["wall_time"]}
