"""``ebmlab bench apps``: EBMs in use on digits — JEM vs cross-entropy, plug-in priors vs Tikhonov / TV, latent EBM.

Three parts, each over the seeds (full: 0, 1, 2; ``--quick``: seed 0 with smaller sizes):

1. **JEM** (Grathwohl et al. 2020) against the same network trained with cross-entropy only (``px_weight=0``, same
   steps and seed): test accuracy, expected calibration error (15 bins; Guo et al. 2017), and OOD AUROC of JEM's
   -U(x) against the max-softmax baseline of the cross-entropy model (Hendrycks & Gimpel 2017) for uniform noise,
   inverted digits (1 - x) and digits rotated by 90°.
2. **Inverse problems**: MAP with a learned prior (:class:`~ebmlab.energies.ConvEnergy` trained by DSM on the train
   split minus a validation part) against Tikhonov (closed form, λ‖x - m‖² with m the training mean, clipped to
   [0, 1]) and total variation, each with its regularisation weight chosen by mean PSNR on the validation images;
   for denoising (σ = 0.3) and 50 % random inpainting (σ = 0.05 on the observed pixels); mean PSNR on held-out test
   digits.  A Gaussian prior fitted to the training images (the Wiener / Gaussian-MAP estimate) is reported too.
3. **Latent EBM**: the fraction of 500 decoded samples that a digits classifier recognises with confidence >= 0.9,
   for the latent EBM and for the VAE's latent prior N(0, I) alone, for VAEs trained with KL weight β = 1 (the
   ELBO) and β = 0.1 (sharper reconstructions, an aggregate posterior further from N(0, I)).

Writes ``apps.md``, ``apps.json`` and figures: ``jem_reliability.png``, ``jem_ood_hist.png``, ``jem_samples.png``,
``inverse_denoise.png``, ``inverse_inpaint.png``, ``latent_samples.png``.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

QUICK = dict(seeds=[0], jem_steps=300, sgld_steps=10, jem_sample_steps=100, prior_steps=400, map_steps=200, n_test=50,
             n_val=50, vae_steps=800, ebm_steps=600, latent_sample_steps=200, n_latent=300)
FULL = dict(seeds=[0, 1, 2], jem_steps=1000, sgld_steps=20, jem_sample_steps=200, prior_steps=1500, map_steps=300,
            n_test=200, n_val=100, vae_steps=2000, ebm_steps=1500, latent_sample_steps=400, n_latent=500)
TIK_LAMS = [0.3, 1.0, 3.0, 10.0, 30.0]
TV_WEIGHTS = {"denoise": [0.3, 1.0, 3.0, 10.0], "inpaint": [0.01, 0.03, 0.1, 0.3]}
PRIOR_WEIGHTS = [0.5, 1.0, 2.0]
TASKS = {"denoise": 0.3, "inpaint": 0.05}


def _ood_sets(xt: torch.Tensor, seed: int) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(10_000 + seed)
    return {"uniform": torch.rand(xt.shape, generator=g), "inverted": 1.0 - xt, "rotated": torch.rot90(xt, 1, (2, 3))}


def _jem_part(cfg, seed, x, y, xt, yt, out: Path, figures: bool) -> Dict[str, Any]:
    from ..apps.jem import JEM, auroc, expected_calibration_error

    res: Dict[str, Any] = {}
    models = {}
    for name, pxw in (("ce", 0.0), ("jem", 1.0)):
        t0 = time.perf_counter()
        m = JEM(px_weight=pxw, steps=cfg["jem_steps"], sgld_steps=cfg["sgld_steps"], sample_steps=cfg["jem_sample_steps"],
                random_state=seed).fit(x, y)
        proba = m.predict_proba(xt)
        res[name] = {"accuracy": float(np.mean(m.predict(xt) == yt)), "ece_15": expected_calibration_error(proba, yt),
                     "fit_seconds": time.perf_counter() - t0}
        models[name] = (m, proba)
    ood = _ood_sets(xt, seed)
    jem, ce = models["jem"][0], models["ce"][0]
    s_in, ms_in = jem.score_samples(xt), models["ce"][1].max(1)
    res["auroc_jem_minus_energy"] = {k: auroc(s_in, jem.score_samples(v)) for k, v in ood.items()}
    res["auroc_ce_max_softmax"] = {k: auroc(ms_in, ce.predict_proba(v).max(1)) for k, v in ood.items()}
    res["auroc_jem_max_softmax"] = {k: auroc(models["jem"][1].max(1), jem.predict_proba(v).max(1)) for k, v in ood.items()}
    if figures:
        from ..apps.figures import image_grid, ood_histograms, reliability_diagram

        reliability_diagram({"cross-entropy only": (models["ce"][1], yt, res["ce"]["ece_15"]),
                             "JEM": (models["jem"][1], yt, res["jem"]["ece_15"])}, out / "jem_reliability.png")
        ood_histograms({"JEM: -U(x)": {"test digits": s_in, **{k: jem.score_samples(v) for k, v in ood.items()}},
                        "CE: max softmax": {"test digits": ms_in, **{k: ce.predict_proba(v).max(1) for k, v in ood.items()}}},
                       out / "jem_ood_hist.png",
                       {"JEM: -U(x)": res["auroc_jem_minus_energy"], "CE: max softmax": res["auroc_ce_max_softmax"]})
        grid = torch.cat([jem.sample(8, label=c, random_state=100 + c) for c in range(10)])
        order = torch.arange(80).reshape(10, 8).T.reshape(-1)
        image_grid({"JEM: class-conditional SGLD\nfrom the replay buffer (columns 0-9)": grid[order]}, out / "jem_samples.png")
    return res


def _inverse_part(cfg, seed, x, xt, out: Path, figures: bool) -> Dict[str, Any]:
    from ..apps.inverse import (Denoise, Inpaint, TotalVariation, learn_prior, map_estimate, psnr, random_mask,
                                tikhonov)

    n_val = cfg["n_val"]
    g = torch.Generator().manual_seed(20_000 + seed)
    perm = torch.randperm(x.shape[0], generator=g)
    x_train, x_val = x[perm[n_val:]], x[perm[:n_val]]
    x_test = xt[: cfg["n_test"]]
    t0 = time.perf_counter()
    prior, _ = learn_prior(x_train, objective="dsm", sigma=0.1, steps=cfg["prior_steps"], seed=seed)
    prior_seconds = time.perf_counter() - t0
    mean = x_train.mean(0)
    flat = x_train.flatten(1).double()
    cov = torch.cov(flat.T) + 1e-3 * torch.eye(flat.shape[1], dtype=torch.float64)
    gauss_precision = torch.linalg.inv(cov).float()
    res: Dict[str, Any] = {"prior_fit_seconds": prior_seconds}
    for task, sigma in TASKS.items():
        def problem(imgs, k):
            gg = torch.Generator().manual_seed(30_000 + 100 * seed + k)
            if task == "denoise":
                op = Denoise()
                return op, imgs + sigma * torch.randn(imgs.shape, generator=gg)
            op = Inpaint(random_mask(imgs.shape, 0.5, generator=gg))
            return op, op(imgs + sigma * torch.randn(imgs.shape, generator=gg))

        op_v, y_v = problem(x_val, 0)
        op_t, y_t = problem(x_test, 1)

        def mean_psnr(est, ref):
            return float(psnr(est, ref).mean())

        methods = {
            "tikhonov": (TIK_LAMS, lambda op, yy, lam: tikhonov(op, yy, sigma, lam, mean=mean).clamp(0, 1)),
            "tv": (TV_WEIGHTS[task], lambda op, yy, w: map_estimate(TotalVariation(w), op, yy, sigma,
                                                                     steps=cfg["map_steps"])),
            "learned_prior": (PRIOR_WEIGHTS, lambda op, yy, w: map_estimate(prior, op, yy, sigma, steps=cfg["map_steps"],
                                                                            prior_weight=w)),
        }
        task_res: Dict[str, Any] = {"sigma": sigma}
        estimates = {}
        for name, (grid, solve) in methods.items():
            val = {str(v): mean_psnr(solve(op_v, y_v, v), x_val) for v in grid}
            best = max(grid, key=lambda v: val[str(v)])
            est = solve(op_t, y_t, best)
            estimates[name] = est
            task_res[name] = {"validation_psnr": val, "chosen": best, "test_psnr": mean_psnr(est, x_test)}
        est = tikhonov(op_t, y_t, sigma, mean=mean, precision=gauss_precision).clamp(0, 1)
        estimates["gaussian_prior"] = est
        task_res["gaussian_prior"] = {"test_psnr": mean_psnr(est, x_test)}
        task_res["observed_psnr"] = mean_psnr(y_t.clamp(0, 1), x_test)
        res[task] = task_res
        if figures:
            from ..apps.figures import before_after

            k = 8
            rows = {"clean": x_test[:k], "observed": y_t[:k].clamp(0, 1), "Tikhonov": estimates["tikhonov"][:k],
                    "TV": estimates["tv"][:k], "Gaussian prior": estimates["gaussian_prior"][:k],
                    "learned prior": estimates["learned_prior"][:k]}
            psnrs = {n: psnr(v, x_test[:k]).tolist() for n, v in rows.items() if n != "clean"}
            before_after(rows, psnrs, out / f"inverse_{task}.png", title=f"{task} (sigma={sigma}), PSNR per image")
    return res


def _classifier(x, y):
    """The shared digits classifier of :mod:`ebmlab.metrics.frechet`; without it, a cross-entropy-only
    ConvClassifier trained here (1000 steps, seed 0)."""
    try:
        from ..metrics.frechet import digits_classifier
    except ImportError:  # pragma: no cover - the module ships with ebmlab
        from ..apps.jem import JEM

        return JEM(px_weight=0.0, steps=1000, random_state=0).fit(x, y).classifier_, "ConvClassifier (cross-entropy, bench)"
    return digits_classifier(), "ebmlab.metrics.frechet.digits_classifier"


KL_WEIGHTS = (1.0, 0.1)


def _latent_part(cfg, seed, x, xt, out: Path, figures: bool, clf, clf_name) -> Dict[str, Any]:
    """For each VAE weight β in KL_WEIGHTS: fit a LatentEBM and compare decoded samples of the EBM and of N(0, I)."""
    from ..apps.latent import LatentEBM

    n = cfg["n_latent"]
    with torch.no_grad():
        conf_test = torch.softmax(clf(xt), 1).max(1).values
    res: Dict[str, Any] = {"classifier": clf_name, "n_samples": n,
                           "confident_rate_test_digits": float((conf_test >= 0.9).float().mean()), "by_kl_weight": {}}
    panels = {}
    for beta in KL_WEIGHTS:
        t0 = time.perf_counter()
        m = LatentEBM(kl_weight=beta, vae_steps=cfg["vae_steps"], ebm_steps=cfg["ebm_steps"],
                      sample_steps=cfg["latent_sample_steps"], random_state=seed).fit(x)
        fit_seconds = time.perf_counter() - t0
        ebm = m.sample(n, random_state=40_000 + seed)
        base = m.sample_prior(n, random_state=40_000 + seed)
        with torch.no_grad():
            conf_e = torch.softmax(clf(ebm), 1).max(1).values
            conf_p = torch.softmax(clf(base), 1).max(1).values
        res["by_kl_weight"][str(beta)] = {
            "fit_seconds": fit_seconds, "test_reconstruction_mse": float((m.reconstruct(xt) - xt).pow(2).mean()),
            "confident_rate_latent_ebm": float((conf_e >= 0.9).float().mean()),
            "confident_rate_latent_prior": float((conf_p >= 0.9).float().mean()),
            "mala_acceptance": m.last_sample_info_.acceptance_rate}
        panels[f"latent EBM, β={beta:g}"] = ebm[:60]
        panels[f"N(0, I) prior, β={beta:g}"] = base[:60]
    if figures:
        from ..apps.figures import image_grid

        image_grid(panels, out / "latent_samples.png")
    return res


def _mean_std(values: List[float]) -> str:
    a = np.asarray(values, float)
    return f"{a.mean():.4f} ± {a.std(ddof=1):.4f}" if a.size > 1 else f"{a.mean():.4f}"


def run_apps_bench(out: Path, quick: bool = False) -> Dict[str, Any]:
    from ..data import load_digits

    cfg = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    yt_np = yt.numpy()
    clf, clf_name = _classifier(x, y)
    t_start = time.perf_counter()
    per_seed = []
    for i, seed in enumerate(cfg["seeds"]):
        fig = i == 0
        per_seed.append({"seed": seed,
                         "jem": _jem_part(cfg, seed, x, y, xt, yt_np, out, fig),
                         "inverse": _inverse_part(cfg, seed, x, xt, out, fig),
                         "latent": _latent_part(cfg, seed, x, xt, out, fig, clf, clf_name)})
    result = {"quick": quick, "config": cfg, "per_seed": per_seed, "wall_seconds": time.perf_counter() - t_start,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform()}
    result["checks"] = _checks(per_seed)
    (out / "apps.json").write_text(json.dumps(result, indent=2))
    (out / "apps.md").write_text(_markdown(result))
    files = ["apps.md", "apps.json", "jem_reliability.png", "jem_ood_hist.png", "jem_samples.png",
             "inverse_denoise.png", "inverse_inpaint.png", "latent_samples.png"]
    return {"files": [str(out / f) for f in files], "checks": result["checks"]}


def _checks(per_seed) -> Dict[str, bool]:
    j = [s["jem"] for s in per_seed]
    acc_gap = np.mean([r["jem"]["accuracy"] - r["ce"]["accuracy"] for r in j])
    checks = {
        "jem_accuracy_within_1_point_of_ce": bool(acc_gap >= -0.01),
        "jem_lower_ece_than_ce": bool(np.mean([r["jem"]["ece_15"] for r in j]) < np.mean([r["ce"]["ece_15"] for r in j])),
    }
    for k in ("uniform", "inverted", "rotated"):
        checks[f"jem_auroc_beats_max_softmax_{k}"] = bool(
            np.mean([r["auroc_jem_minus_energy"][k] for r in j]) > np.mean([r["auroc_ce_max_softmax"][k] for r in j]))
    for task in TASKS:
        inv = [s["inverse"][task] for s in per_seed]
        lp = np.mean([r["learned_prior"]["test_psnr"] for r in inv])
        checks[f"map_learned_prior_beats_tikhonov_and_tv_{task}"] = bool(
            lp > np.mean([r["tikhonov"]["test_psnr"] for r in inv]) and lp > np.mean([r["tv"]["test_psnr"] for r in inv]))
    lat = [s["latent"]["by_kl_weight"] for s in per_seed]
    for beta in KL_WEIGHTS:
        b = str(beta)
        checks[f"latent_ebm_more_confident_samples_than_prior_kl_weight_{beta:g}"] = bool(
            np.mean([r[b]["confident_rate_latent_ebm"] for r in lat]) > np.mean([r[b]["confident_rate_latent_prior"] for r in lat]))
    return checks


def _markdown(r) -> str:
    ps = r["per_seed"]
    seeds = ", ".join(str(s["seed"]) for s in ps)
    lines = [f"# ebmlab bench apps{' (--quick)' if r['quick'] else ''}", "",
             f"Digits (8×8, scikit-learn), fixed train/test split; seeds {seeds}; mean ± std over seeds. "
             f"Wall time {r['wall_seconds']:.0f} s, torch {r['torch']}, {r['threads']} thread(s).", "",
             "## JEM vs the same network trained with cross-entropy only", "",
             "| | accuracy | ECE (15 bins) | AUROC uniform | AUROC inverted | AUROC rotated |",
             "|---|---|---|---|---|---|"]
    j = [s["jem"] for s in ps]
    for name, key, ood in (("cross-entropy only (max softmax)", "ce", "auroc_ce_max_softmax"),
                           ("JEM (-U(x))", "jem", "auroc_jem_minus_energy"),
                           ("JEM (max softmax)", "jem", "auroc_jem_max_softmax")):
        lines.append(f"| {name} | {_mean_std([x[key]['accuracy'] for x in j])} | {_mean_std([x[key]['ece_15'] for x in j])} | "
                     + " | ".join(_mean_std([x[ood][k] for x in j]) for k in ("uniform", "inverted", "rotated")) + " |")
    lines += ["", "## MAP with a learned prior vs baselines: mean test PSNR (dB), weights chosen on validation", "",
              "| task | observed | Tikhonov | TV | Gaussian prior (Wiener) | learned prior (DSM ConvEnergy) |",
              "|---|---|---|---|---|---|"]
    for task, sigma in TASKS.items():
        inv = [s["inverse"][task] for s in ps]
        lines.append(f"| {task} (σ={sigma}) | {_mean_std([x['observed_psnr'] for x in inv])} | "
                     + " | ".join(_mean_std([x[m]["test_psnr"] for x in inv]) for m in ("tikhonov", "tv", "gaussian_prior",
                                                                                       "learned_prior")) + " |")
    lines.append("")
    lines.append("Chosen weights (seed by seed): " + "; ".join(
        f"{task}: Tikhonov λ {[s['inverse'][task]['tikhonov']['chosen'] for s in ps]}, TV {[s['inverse'][task]['tv']['chosen'] for s in ps]}, "
        f"prior weight {[s['inverse'][task]['learned_prior']['chosen'] for s in ps]}" for task in TASKS))
    lat = [s["latent"] for s in ps]
    lines += ["", "## Latent EBM: decoded samples recognised with confidence >= 0.9", "",
              f"Classifier: {lat[0]['classifier']}; {lat[0]['n_samples']} samples each; test digits themselves: "
              f"{_mean_std([x['confident_rate_test_digits'] for x in lat])}. β = weight of the KL term of the VAE.", "",
              "| VAE β | latent EBM (ED prior) | latent prior N(0, I) alone | test reconstruction MSE |", "|---|---|---|---|"]
    for beta in KL_WEIGHTS:
        b = str(beta)
        lines.append(f"| {beta:g} | {_mean_std([x['by_kl_weight'][b]['confident_rate_latent_ebm'] for x in lat])} | "
                     f"{_mean_std([x['by_kl_weight'][b]['confident_rate_latent_prior'] for x in lat])} | "
                     f"{_mean_std([x['by_kl_weight'][b]['test_reconstruction_mse'] for x in lat])} |")
    lines += ["", "## Checks (the issue's 'Done means')", ""]
    lines += [f"- {k}: {'PASS' if v else 'FAIL'}" for k, v in r["checks"].items()]
    return "\n".join(lines) + "\n"
