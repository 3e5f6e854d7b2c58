"""``ebmlab bench gebm``: generalized EBMs (Arbel, Zhou & Gretton 2021) — does sampling the latent posterior beat
the generator alone?

Data: 8gaussians, 2spirals, checkerboard, 25gaussians (a 5 × 5 grid of Gaussians, centres {−4, −2, 0, 2, 4}²,
std 0.2, defined here) and scikit-learn's 8×8 digits.  For each data set and seed one
:class:`~ebmlab.generators.GEBM` is trained; it is sampled by its generator alone (B(z), z ~ η), by
sampling-importance-resampling (``GEBM.sample_importance``: max(20 n, 10 000) candidates z ~ η weighted by
exp(−E(B(z))), an asymptotically exact draw of Q_{B,E} with no MCMC, which separates the quality of the energy
from that of the sampler), and by latent MCMC at β = 1 with each sampler (MALA, ULA, HMC, kinetic Langevin;
``sample_steps`` steps from a SIR start, the default ``init="sir"``), with MALA from z ~ η (``init="prior"``, the
start used before) and with MALA at β = 100.  A plain MLP EBM trained by PCD (``EnergyModel``, ULA chains) for the same wall time as the GEBM is the
baseline.  Metric: Sinkhorn divergence to held-out data (2-D sets; flattened pixels on digits) and
``frechet_digits`` on digits, mean ± std over seeds (the EBM is sampled by ``3 × sample_steps`` ULA steps from
uniform noise on the data's box); wall time of training and of each sampler.  Writes
``gebm.md`` and ``gebm.json`` (and ``gebm_panels.png``) into ``out``.

The data-vs-data floor (the metric between two independent held-out samples of the same size) is reported too.

Sizes (``_settings``): full: 5 seeds (0-4); 2-D sets 300 generator updates (× 5 energy updates) then 500 energy-only
updates, 300 samples; digits 300 generator updates then 300 energy-only updates, image energy
``ConvEnergy(channels=16)``, all 180 held-out test images (the other 180 give the floor); 200 latent steps.  Measured
27 min (1,626 s) on a shared 2-core machine at load about 3.  ``--quick``: 1 seed, the four 2-D sets and digits, 150 generator updates
(digits 60) then 200 energy-only updates, 250 samples, 100 latent steps (a few minutes).  Sinkhorn is run with
``tol=1e-3`` (L1 marginal error; at n = 1000 its values agree with ``tol=1e-4`` to 5 digits, at about 60 % of
the time).
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import torch

SETS_2D = ("8gaussians", "2spirals", "checkerboard", "25gaussians")
SAMPLERS = ("mala", "ula", "hmc", "kinetic_langevin")


def grid25(n: int, seed: int) -> torch.Tensor:
    """n draws of the 5 × 5 Gaussian grid (centres {−4, −2, 0, 2, 4}², std 0.2)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = torch.cartesian_prod(v, v)
    idx = torch.randint(0, 25, (n,), generator=g)
    return centres[idx] + 0.2 * torch.randn(n, 2, generator=g)


def _data(name: str, n_train: int, n_test: int, seed: int):
    from ..generators.run import load_gebm_data

    if name == "25gaussians":
        return grid25(n_train, 10 * seed), grid25(n_test, 10 * seed + 1), grid25(n_test, 10 * seed + 2), False
    return load_gebm_data(name, n_train, n_test, 10 * seed)


#: stopping tolerance of every Sinkhorn evaluation here (module docstring)
SINKHORN_TOL = 1e-3


def _settings(quick: bool) -> Dict[str, Any]:
    if quick:
        return {"seeds": [0], "steps": 150, "image_steps": 60, "final_energy_steps": 200,
                "image_final_energy_steps": 200, "image_channels": 16, "n": 250, "sample_steps": 100,
                "sets": SETS_2D + ("digits",)}
    return {"seeds": [0, 1, 2, 3, 4], "steps": 300, "image_steps": 300, "final_energy_steps": 500,
            "image_final_energy_steps": 300, "image_channels": 16, "n": 300, "sample_steps": 200,
            "sets": SETS_2D + ("digits",)}


def _ebm_equal_time(train: torch.Tensor, seconds: float, n: int, sample_steps: int, seed: int):
    from ..estimator import EnergyModel

    t0 = time.perf_counter()
    model = EnergyModel(energy="mlp", energy_params={"hidden": [128, 128], "activation": "silu"}, objective="pcd",
                        objective_params={"sampler": "ula", "steps": 20, "buffer_size": 10000, "reinit_prob": 0.05},
                        sampler="ula", sampler_params={"step_size": 0.005}, steps=10 ** 6, lr_schedule="constant",
                        sample_steps=sample_steps * 3, random_state=seed)
    model.fit(train, callbacks=[lambda **kw: time.perf_counter() - t0 > seconds])
    train_s = time.perf_counter() - t0
    steps_done = len(model.history_.steps)
    t0 = time.perf_counter()
    x = model.sample(n, random_state=seed + 1)
    return x, steps_done, train_s, time.perf_counter() - t0


def _run_one(name: str, seed: int, cfg: Dict[str, Any]) -> Dict[str, Any]:
    from .._core.errors import TrainingDivergedError
    from ..generators import GEBM
    from ..metrics import frechet_digits, sinkhorn

    image = name == "digits"
    train, test, ref, _ = _data(name, 20000, cfg["n"], seed)
    n = min(cfg["n"], test.shape[0], ref.shape[0])
    test, ref = test[:n], ref[:n]
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    t0 = time.perf_counter()
    extra = {"energy_params": {"channels": cfg["image_channels"]}} if image else {}
    model = GEBM(steps=cfg["image_steps"] if image else cfg["steps"],
                 final_energy_steps=cfg["image_final_energy_steps"] if image else cfg["final_energy_steps"],
                 batch_size=128, lr=1e-3, sample_steps=cfg["sample_steps"], random_state=seed, **extra)
    try:
        model.fit(train)
    except TrainingDivergedError as err:  # reported as such, never scored
        return {"data": name, "seed": seed, "n": n, "train_seconds": time.perf_counter() - t0, "methods": {},
                "diverged": str(err), "panel": None}
    train_s = time.perf_counter() - t0
    row: Dict[str, Any] = {"data": name, "seed": seed, "n": n, "train_seconds": train_s, "methods": {}}

    def score(x: torch.Tensor) -> Dict[str, Any]:
        if not bool(torch.isfinite(x).all()):
            return {"finite": False}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = {"finite": True, "sinkhorn": sinkhorn(flat(x), flat(test), tol=SINKHORN_TOL)}
        out["sinkhorn_warnings"] = len(caught)
        if image:
            out["frechet_digits"] = frechet_digits(x.clamp(0, 1), test)
        return out

    row["methods"]["data_floor"] = {**score(ref), "seconds": 0.0}
    t0 = time.perf_counter()
    x = model.sample_generator(n, random_state=seed + 1)
    secs = time.perf_counter() - t0
    row["methods"]["generator"] = {**score(x), "seconds": secs}
    panel = {"test": test, "generator": x}
    t0 = time.perf_counter()
    x = model.sample_importance(n, random_state=seed + 1)
    row["methods"]["sir"] = {**score(x), "seconds": time.perf_counter() - t0, "ess": model.last_sample_ess_}
    runs = [(s, 1.0, "sir") for s in SAMPLERS] + [("mala", 1.0, "prior"), ("mala", 0.01, "sir")]
    for s, temp, init in runs:
        key = f"latent_{s}" + ("" if temp == 1.0 else "_beta100") + ("" if init == "sir" else "_prior_init")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            x = model.sample(n, sampler=s, temperature=temp, init=init, random_state=seed + 1)
            secs = time.perf_counter() - t0
        info = model.last_sample_info_
        row["methods"][key] = {**score(x), "seconds": secs, "acceptance": info.acceptance_rate,
                               "stuck_chains": info.stuck_chains, "warnings": len(caught)}
        if key == "latent_mala":
            panel["latent"] = x
    if not image:
        x, steps_done, pcd_train_s, secs = _ebm_equal_time(train, train_s, n, cfg["sample_steps"], seed)
        row["methods"]["pcd_ebm_equal_time"] = {**score(x), "seconds": secs, "train_seconds": pcd_train_s,
                                                "train_steps": steps_done}
    row["panel"] = panel
    return row


def _summary(rows: List[Dict[str, Any]], metric: str) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for name in dict.fromkeys(r["data"] for r in rows if "diverged" not in r):
        sub = [r for r in rows if r["data"] == name and "diverged" not in r]
        methods = list(sub[0]["methods"])
        out[name] = {}
        for m in methods:
            vals = [r["methods"][m].get(metric) for r in sub if r["methods"][m].get(metric) is not None]
            secs = [r["methods"][m]["seconds"] for r in sub]
            if vals:
                t = torch.tensor(vals, dtype=torch.float64)
                out[name][m] = {"mean": float(t.mean()), "std": float(t.std()) if len(vals) > 1 else 0.0,
                                "n": len(vals), "seconds": float(sum(secs) / len(secs))}
        out[name]["train_seconds"] = float(sum(r["train_seconds"] for r in sub) / len(sub))
    return out


LABELS = {"data_floor": "data floor", "generator": "generator", "sir": "SIR (exact Q)", "latent_mala": "MALA",
          "latent_ula": "ULA", "latent_hmc": "HMC", "latent_kinetic_langevin": "kinetic Langevin",
          "latent_mala_prior_init": "MALA from z ~ η", "latent_mala_beta100": "MALA β=100",
          "pcd_ebm_equal_time": "PCD EBM, same wall time"}


def _cell(r: Dict[str, Any] | None, digits: int, n_seeds: int) -> str:
    if r is None:
        return "— (not finite)"
    note = "" if r["n"] == n_seeds else f" ({r['n']}/{n_seeds} finite)"
    spread = f" ± {r['std']:.{digits}f}" if r["n"] > 1 else ""
    return f"{r['mean']:.{digits}f}{spread}{note}"


def _wins(rows: List[Dict[str, Any]], name: str, method: str, metric: str) -> str:
    """'k/n': seeds where ``method`` has a lower ``metric`` than the generator alone (paired by seed)."""
    sub = [r for r in rows if r["data"] == name and "diverged" not in r]
    pairs = [(r["methods"][method].get(metric), r["methods"]["generator"].get(metric)) for r in sub]
    wins = sum(1 for a, b in pairs if a is not None and b is not None and a < b)
    return f"{wins}/{len(sub)}"


def _markdown(rows: List[Dict[str, Any]], cfg: Dict[str, Any], mode: str, total: float) -> str:
    sink = _summary(rows, "sinkhorn")
    digit_rows = [r for r in rows if r["data"] == "digits"]
    fd = _summary(digit_rows, "frechet_digits") if any("diverged" not in r for r in digit_rows) else {}
    scored = [r for r in rows if "diverged" not in r]
    methods = [m for m in LABELS if any(m in r["methods"] for r in scored)]
    latent = [m for m in methods if m.startswith("latent_")]
    versus = ["sir"] * ("sir" in methods) + latent  # compared with the generator alone
    lines = [f"# ebmlab bench gebm ({mode})", "",
             f"Seeds {cfg['seeds']}. GEBM (KALE, Adam 1e-3, batch 128): 2-D sets {cfg['steps']} generator updates × 5 "
             f"energy updates, then {cfg['final_energy_steps']} energy-only updates (batch 512, learning rate decayed "
             f"linearly to 0), MLP energy and generator 128×2; "
             f"digits {cfg['image_steps']} generator updates, then {cfg['image_final_energy_steps']} energy-only "
             f"updates, ConvEnergy(channels={cfg['image_channels']}) and ConvGenerator, latent dim 16. Samples: "
             f"{cfg['n']} per method on 2-D sets"
             + (f", {digit_rows[0]['n']} on digits (held-out test images)" if digit_rows else "") + ". Latent MCMC: "
             f"{cfg['sample_steps']} steps from a SIR start (first half burn-in, step size tuned per chain there for "
             f"MALA/HMC), β = 1 unless stated. SIR (exact Q): sampling-importance-resampling from max(20 n, 10 000) "
             f"candidates z ~ η, no MCMC. PCD EBM: MLP 128×2, ULA chains, trained for the GEBM's training wall "
             f"time, sampled by {3 * cfg['sample_steps']} ULA steps from uniform noise. Data floor: the metric between "
             f"two independent held-out samples of the same size. Sinkhorn: ε = 0.05, tol = {SINKHORN_TOL}. "
             f"Total wall time {total:.0f} s (shared CPU).", "",
             "Sinkhorn divergence to held-out data (lower is better), mean ± std over seeds:", "",
             "| data | seeds trained | train s | " + " | ".join(LABELS[m] for m in methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for name, res in sink.items():
        ran = lambda name, m: m in next(r for r in scored if r["data"] == name)["methods"]  # noqa: E731
        div = [r["seed"] for r in rows if r["data"] == name and "diverged" in r]
        trained = f"{len(cfg['seeds']) - len(div)}/{len(cfg['seeds'])}" + (f" (diverged: seed {div})" if div else "")
        lines.append(f"| {name} | {trained} | {res['train_seconds']:.0f} | " + " | ".join(
            _cell(res.get(m), 3, len(cfg["seeds"]) - len(div)) if ran(name, m) else "not run" for m in methods)
                     + " |")
    for r in rows:
        if "diverged" in r:
            lines.append(f"\n{r['data']} seed {r['seed']}: training diverged ({r['diverged']}); not scored.")
    lines += ["", "Seeds on which latent MCMC beats the generator alone (paired by seed, over the seeds that trained; "
              "Sinkhorn, and frechet_digits on digits):", "", "| data | metric | " + " | ".join(LABELS[m] for m in versus) + " |",
              "|---|---|" + "---|" * len(versus)]
    for name in sink:
        metrics = ["sinkhorn"] + (["frechet_digits"] if name == "digits" else [])
        for metric in metrics:
            lines.append(f"| {name} | {metric} | " + " | ".join(_wins(rows, name, m, metric) for m in versus) + " |")
    if fd:
        lines += ["", "frechet_digits on digits (lower is better), mean ± std over seeds:", "",
                  "| method | frechet_digits |", "|---|---|"]
        for m in methods:
            if any(m in r["methods"] for r in digit_rows):
                lines.append(f"| {LABELS[m]} | {_cell(fd['digits'].get(m), 2, sum('diverged' not in r for r in digit_rows))} |")
    lines += ["", "Sampling wall time per method in seconds (mean over seeds; PCD: sampling only, its training took "
              "the GEBM's training time):", "", "| data | " + " | ".join(LABELS[m] for m in methods[1:]) + " |",
              "|---|" + "---|" * (len(methods) - 1)]
    for name, res in sink.items():
        lines.append(f"| {name} | " + " | ".join("—" if res.get(m) is None else f"{res[m]['seconds']:.1f}"
                                                for m in methods[1:]) + " |")
    lines += ["", "Acceptance (mean over seeds) and stuck chains (sum) of the latent samplers:", "",
              "| data | sampler | acceptance | stuck chains |", "|---|---|---|---|"]
    for name in sink:
        sub = [r for r in scored if r["data"] == name]
        for m in latent:
            acc = sum(r["methods"][m]["acceptance"] for r in sub) / len(sub)
            stuck = sum(r["methods"][m]["stuck_chains"] for r in sub)
            lines.append(f"| {name} | {LABELS[m]} | {acc:.3f} | {stuck} |")
    return "\n".join(lines) + "\n"


def _write_panels(path: Path, panels: Dict[str, Dict[str, torch.Tensor]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 3 * len(panels)), squeeze=False)
    titles = {"test": "held-out data", "generator": "generator", "latent": "latent MALA β=1"}
    for i, (name, p) in enumerate(panels.items()):
        for j, key in enumerate(("test", "generator", "latent")):
            ax = axes[i, j]
            x = p[key]
            if x.ndim == 4:
                k = 6
                grid = torch.zeros(k * 9, k * 9)
                for t in range(min(k * k, x.shape[0])):
                    r, c = divmod(t, k)
                    grid[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = x[t, 0].clamp(0, 1)
                ax.imshow(grid.numpy(), cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=80, range=[[-5, 5], [-5, 5]], cmap="viridis")
                ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {titles[key]}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_gebm_bench(out: Path, quick: bool = False, settings: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """Run the suite (module docstring) and write gebm.md, gebm.json and gebm_panels.png into ``out``.
    ``settings`` overrides entries of the sizes of ``_settings(quick)`` (used by the tests).  The JSON is
    rewritten after every (data set, seed), so an interrupted run leaves its finished rows."""
    cfg = _settings(quick)
    unknown = sorted(set(settings or {}) - set(cfg))
    if unknown:
        from .._core.errors import ConfigError

        raise ConfigError(f"unknown bench gebm settings {unknown}; allowed: {', '.join(cfg)}")
    cfg.update(settings or {})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if quick else "full"
    js = out / "gebm.json"
    rows: List[Dict[str, Any]] = []
    panels: Dict[str, Dict[str, torch.Tensor]] = {}
    settings_json = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    t_all = time.perf_counter()
    for name in cfg["sets"]:
        for seed in cfg["seeds"]:
            row = _run_one(name, seed, cfg)
            panel = row.pop("panel")
            if panel is not None and name not in panels:
                panels[name] = panel
            rows.append(row)
            brief = {m: round(v["sinkhorn"], 4) for m, v in row["methods"].items() if "sinkhorn" in v}
            fd_brief = {m: round(v["frechet_digits"], 2) for m, v in row["methods"].items() if "frechet_digits" in v}
            print(f"[gebm bench] {name} seed {seed}: train {row['train_seconds']:.0f} s, "
                  f"elapsed {time.perf_counter() - t_all:.0f} s, sinkhorn {brief}"
                  + (f", frechet_digits {fd_brief}" if fd_brief else ""), flush=True)
            js.write_text(json.dumps({"mode": mode, "settings": settings_json, "rows": rows, "complete": False},
                                     indent=2))
    total = time.perf_counter() - t_all
    sink = _summary(rows, "sinkhorn")
    digit_rows = [r for r in rows if r["data"] == "digits"]
    fd = _summary(digit_rows, "frechet_digits") if any("diverged" not in r for r in digit_rows) else {}
    md = out / "gebm.md"
    md.write_text(_markdown(rows, cfg, mode, total))
    js.write_text(json.dumps({"mode": mode, "settings": settings_json, "sinkhorn": sink, "frechet_digits": fd,
                              "rows": rows, "total_seconds": total, "complete": True}, indent=2))
    files = [md, js]
    if panels:  # none when every run diverged
        files.append(_write_panels(out / "gebm_panels.png", panels))
    return {"files": files, "sinkhorn": sink, "frechet_digits": fd}
