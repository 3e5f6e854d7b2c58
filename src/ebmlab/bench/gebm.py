"""``ebmlab bench gebm``: generalized EBMs (Arbel, Zhou & Gretton 2021) — does sampling the latent posterior beat
the generator alone?

Data: 8gaussians, 2spirals, checkerboard, 25gaussians (a 5 × 5 grid of Gaussians, centres {−4, −2, 0, 2, 4}²,
std 0.2, defined here) and scikit-learn's 8×8 digits.  For each data set and seed one
:class:`~ebmlab.generators.GEBM` is trained; it is sampled by its generator alone (B(z), z ~ η) and by latent MCMC
at β = 1 with each sampler (MALA, ULA, HMC, kinetic Langevin; ``sample_steps`` steps from z ~ η) and with MALA at
β = 100.  A plain MLP EBM trained by PCD (``EnergyModel``, ULA chains) for the same wall time as the GEBM is the
baseline.  Metric: Sinkhorn divergence to held-out data (2-D sets; flattened pixels on digits) and
``frechet_digits`` on digits, mean ± std over seeds (the EBM is sampled by ``3 × sample_steps`` ULA steps from
uniform noise on the data's box); wall time of training and of each sampler.  Writes
``gebm.md`` and ``gebm.json`` (and ``gebm_panels.png``) into ``out``.

Full: 5 seeds, 1500 generator updates (× 5 energy updates) then 500 energy-only updates, 1000 samples, 200 latent
steps.  ``--quick``: 1 seed, the four 2-D sets, 150 generator updates then 200 energy-only updates, 250 samples,
100 latent steps (a few minutes on one core).
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


def _settings(quick: bool) -> Dict[str, Any]:
    if quick:
        return {"seeds": [0], "steps": 150, "image_steps": 150, "final_energy_steps": 200, "n": 250,
                "sample_steps": 100, "sets": SETS_2D}
    return {"seeds": [0, 1, 2, 3, 4], "steps": 1500, "image_steps": 1500, "final_energy_steps": 500, "n": 1000,
            "sample_steps": 200, "sets": SETS_2D + ("digits",)}


def _ebm_equal_time(train: torch.Tensor, seconds: float, n: int, sample_steps: int, seed: int):
    from ..estimator import EnergyModel

    t0 = time.perf_counter()
    model = EnergyModel(energy="mlp", energy_params={"hidden": [128, 128], "activation": "silu"}, objective="pcd",
                        objective_params={"sampler": "ula", "steps": 20, "buffer_size": 10000, "reinit_prob": 0.05},
                        sampler="ula", sampler_params={"step_size": 0.005}, steps=10 ** 6, lr_schedule="constant",
                        sample_steps=sample_steps * 3, random_state=seed)
    model.fit(train, callbacks=[lambda **kw: time.perf_counter() - t0 > seconds])
    steps_done = len(model.history_.steps)
    x = model.sample(n, random_state=seed + 1)
    return x, steps_done


def _run_one(name: str, seed: int, cfg: Dict[str, Any]) -> Dict[str, Any]:
    from ..generators import GEBM
    from ..metrics import frechet_digits, sinkhorn

    image = name == "digits"
    train, test, _, _ = _data(name, 20000, cfg["n"], seed)
    n = min(cfg["n"], test.shape[0])
    test = test[:n]
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    t0 = time.perf_counter()
    model = GEBM(steps=cfg["image_steps"] if image else cfg["steps"], final_energy_steps=cfg["final_energy_steps"],
                 batch_size=128, lr=1e-3, sample_steps=cfg["sample_steps"], random_state=seed).fit(train)
    train_s = time.perf_counter() - t0
    row: Dict[str, Any] = {"data": name, "seed": seed, "train_seconds": train_s, "methods": {}}

    def score(x: torch.Tensor) -> Dict[str, Any]:
        if not bool(torch.isfinite(x).all()):
            return {"finite": False}
        out = {"finite": True, "sinkhorn": sinkhorn(flat(x), flat(test))}
        if image:
            out["frechet_digits"] = frechet_digits(x.clamp(0, 1), test)
        return out

    t0 = time.perf_counter()
    x = model.sample_generator(n, random_state=seed + 1)
    row["methods"]["generator"] = {**score(x), "seconds": time.perf_counter() - t0}
    runs = [(s, 1.0) for s in SAMPLERS] + [("mala", 0.01)]
    for s, temp in runs:
        key = f"latent_{s}" + ("" if temp == 1.0 else "_beta100")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            x = model.sample(n, sampler=s, temperature=temp, random_state=seed + 1)
            secs = time.perf_counter() - t0
        info = model.last_sample_info_
        row["methods"][key] = {**score(x), "seconds": secs, "acceptance": info.acceptance_rate,
                               "stuck_chains": info.stuck_chains, "warnings": len(caught)}
    if not image:
        t0 = time.perf_counter()
        x, steps_done = _ebm_equal_time(train, train_s, n, cfg["sample_steps"], seed)
        row["methods"]["pcd_ebm_equal_time"] = {**score(x), "seconds": time.perf_counter() - t0,
                                                "train_steps": steps_done}
    row["panel"] = {"test": test, "generator": model.sample_generator(n, random_state=seed + 1),
                    "latent": model.sample(n, random_state=seed + 1)}
    return row


def _summary(rows: List[Dict[str, Any]], metric: str) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        sub = [r for r in rows if r["data"] == name]
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


def run_gebm_bench(out: Path, quick: bool = False) -> Dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = _settings(quick)
    out = Path(out)
    rows = []
    t_all = time.perf_counter()
    for name in cfg["sets"]:
        for seed in cfg["seeds"]:
            rows.append(_run_one(name, seed, cfg))
    total = time.perf_counter() - t_all
    panels = {r["data"]: r.pop("panel") for r in rows if r["seed"] == cfg["seeds"][0]}
    sink = _summary(rows, "sinkhorn")
    fd = _summary([r for r in rows if r["data"] == "digits"], "frechet_digits") if "digits" in cfg["sets"] else {}
    mode = "quick" if quick else "full"
    lines = [f"# ebmlab bench gebm ({mode})", "",
             f"Seeds {cfg['seeds']}; GEBM {cfg['steps']} generator updates (digits {cfg['image_steps']}) × 5 energy "
             f"updates, then {cfg['final_energy_steps']} energy-only updates, batch 128, Adam 1e-3; {cfg['n']} samples; latent MCMC {cfg['sample_steps']} steps from "
             f"z ~ η (first half burn-in, step size tuned per chain there for MALA/HMC). PCD EBM: MLP 128×2, ULA chains, same "
             f"wall time as the GEBM's training. Total {total:.0f} s.", "",
             "Sinkhorn divergence to held-out data (lower is better), mean ± std over seeds; seconds = sampling time.",
             ""]
    methods = list(rows[0]["methods"])
    lines.append("| data | train s | " + " | ".join(methods) + " |")
    lines.append("|---|---|" + "---|" * len(methods))
    for name, res in sink.items():
        cells = []
        for m in methods:
            r = res.get(m)
            cells.append("—" if r is None else f"{r['mean']:.4f} ± {r['std']:.4f} ({r['seconds']:.1f} s)")
        lines.append(f"| {name} | {res['train_seconds']:.0f} | " + " | ".join(cells) + " |")
    if fd:
        lines += ["", "frechet_digits on digits (lower is better):", "",
                  "| method | frechet_digits |", "|---|---|"]
        for m, r in fd["digits"].items():
            if isinstance(r, dict):
                lines.append(f"| {m} | {r['mean']:.3f} ± {r['std']:.3f} |")
    lines += ["", "Acceptance (mean over seeds) and stuck chains of the latent samplers:", "",
              "| data | sampler | acceptance | stuck chains |", "|---|---|---|---|"]
    for name in sink:
        sub = [r for r in rows if r["data"] == name]
        for m in methods:
            if m.startswith("latent_"):
                acc = sum(r["methods"][m]["acceptance"] for r in sub) / len(sub)
                stuck = sum(r["methods"][m]["stuck_chains"] for r in sub)
                lines.append(f"| {name} | {m} | {acc:.3f} | {stuck} |")
    md = out / "gebm.md"
    md.write_text("\n".join(lines) + "\n")
    js = out / "gebm.json"
    js.write_text(json.dumps({"mode": mode, "settings": {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in cfg.items()},
                              "sinkhorn": sink, "frechet_digits": fd, "rows": rows, "total_seconds": total},
                             indent=2))
    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 3 * len(panels)), squeeze=False)
    for i, (name, p) in enumerate(panels.items()):
        for j, key in enumerate(("test", "generator", "latent")):
            ax = axes[i, j]
            x = p[key]
            if x.ndim == 4:
                k = 6
                grid = torch.zeros(k * 9, k * 9)
                for t in range(k * k):
                    r, c = divmod(t, k)
                    grid[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = x[t, 0].clamp(0, 1)
                ax.imshow(grid.numpy(), cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=80, range=[[-5, 5], [-5, 5]], cmap="viridis")
                ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {key if key != 'latent' else 'latent MALA β=1'}")
    fig.tight_layout()
    png = out / "gebm_panels.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return {"files": [md, js, png], "sinkhorn": sink, "frechet_digits": fd}
