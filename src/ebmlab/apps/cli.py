"""``ebmlab jem`` and ``ebmlab inverse denoise|inpaint|deblur`` (standard library only at import time)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    j = subparsers.add_parser("jem", help="train a JEM classifier on digits: accuracy, calibration, OOD, samples")
    j.add_argument("--data", default="digits", help="digits (default) or mnist")
    j.add_argument("--steps", type=int, default=1000)
    j.add_argument("--batch-size", type=int, default=64)
    j.add_argument("--lr", type=float, default=1e-3)
    j.add_argument("--px-weight", type=float, default=1.0, help="weight of log p(x); 0 = cross-entropy only")
    j.add_argument("--energy-reg", type=float, default=0.1)
    j.add_argument("--sgld-steps", type=int, default=20)
    j.add_argument("--sgld-step-size", type=float, default=1.0)
    j.add_argument("--sgld-noise", type=float, default=0.01)
    j.add_argument("--buffer-size", type=int, default=1000)
    j.add_argument("--grad-clip", type=float, default=None)
    j.add_argument("--channels", type=int, default=32, help="width of the classifier's first convolution")
    j.add_argument("--hidden", type=int, default=128, help="width of the classifier's fully connected layer")
    j.add_argument("--sample-steps", type=int, default=200, help="SGLD steps of the class-conditional samples")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--out", default=None, help="run directory (default runs/jem-<data>)")
    j.set_defaults(func=cmd_jem)

    inv = subparsers.add_parser("inverse", help="solve an inverse problem on held-out digits with a learned prior")
    inv.add_argument("task", choices=["denoise", "inpaint", "deblur"])
    inv.add_argument("--sigma", type=float, default=None,
                     help="observation noise std (default 0.3 for denoise, 0.05 for inpaint and deblur)")
    inv.add_argument("--missing", type=float, default=0.5, help="inpaint: fraction of missing pixels")
    inv.add_argument("--blur-sigma", type=float, default=1.0, help="deblur: std of the 5x5 Gaussian kernel")
    inv.add_argument("--n-images", type=int, default=100)
    inv.add_argument("--prior-objective", default="dsm", choices=["dsm", "ed"])
    inv.add_argument("--prior-steps", type=int, default=1500)
    inv.add_argument("--prior-weight", type=float, default=1.0)
    inv.add_argument("--map-steps", type=int, default=300)
    inv.add_argument("--tikhonov-lam", type=float, default=3.0)
    inv.add_argument("--tv-weight", type=float, default=None, help="default 3 for denoise, 0.1 otherwise")
    inv.add_argument("--posterior-samples", type=int, default=0,
                     help="also draw this many MALA posterior samples per image (first 8 images, chains started at "
                          "the MAP): posterior.png")
    inv.add_argument("--posterior-steps", type=int, default=300, help="MALA steps (after as many burn-in steps)")
    inv.add_argument("--seed", type=int, default=0)
    inv.add_argument("--out", default=None, help="run directory (default runs/inverse-<task>)")
    inv.set_defaults(func=cmd_inverse)


def _run_dir(out, default: str) -> Path:
    from ..cli import check_run_name
    from ..run import _unique_run_dir

    if out is None:
        return _unique_run_dir(check_run_name(default))
    p = Path(out)
    if p.exists() and not p.is_dir():
        from .._core.errors import ConfigError

        raise ConfigError(f"--out {p} is a file; give a directory")
    return p


def cmd_jem(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..data import load_images
    from .figures import image_grid, ood_histograms, reliability_diagram
    from .jem import JEM, auroc, expected_calibration_error

    x, y = load_images(args.data, "train")
    xt, yt = load_images(args.data, "test")
    model = JEM(steps=args.steps, batch_size=args.batch_size, lr=args.lr, px_weight=args.px_weight,
                energy_reg=args.energy_reg, sgld_steps=args.sgld_steps, sgld_step_size=args.sgld_step_size,
                sgld_noise=args.sgld_noise, buffer_size=args.buffer_size, grad_clip=args.grad_clip,
                channels=args.channels, hidden=args.hidden, sample_steps=args.sample_steps, random_state=args.seed)
    run = _run_dir(args.out, f"jem-{args.data}")
    model.fit(x, y, progress=True)  # a TrainingDivergedError propagates: nothing is written as a finished model
    run.mkdir(parents=True, exist_ok=True)
    model.save(run)
    proba = model.predict_proba(xt)
    yt_np = yt.numpy()
    g = torch.Generator().manual_seed(args.seed + 1)
    ood = {"uniform noise": torch.rand(xt.shape, generator=g), "inverted": 1.0 - xt, "rotated": torch.rot90(xt, 1, (2, 3))}
    s_in, m_in = model.score_samples(xt), proba.max(1)
    metrics = {"accuracy": float(np.mean(model.predict(xt) == yt_np)), "ece_15": expected_calibration_error(proba, yt_np),
               "auroc_minus_energy": {}, "auroc_max_softmax": {}}
    for k, v in ood.items():
        metrics["auroc_minus_energy"][k] = auroc(s_in, model.score_samples(v))
        metrics["auroc_max_softmax"][k] = auroc(m_in, model.predict_proba(v).max(1))
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    reliability_diagram({"JEM": (proba, yt_np, metrics["ece_15"])}, run / "reliability.png")
    ood_histograms({"-U(x) = logsumexp f(x)": {"test digits": s_in, **{k: model.score_samples(v) for k, v in ood.items()}}},
                   run / "ood_hist.png", {"-U(x) = logsumexp f(x)": metrics["auroc_minus_energy"]})
    grid = torch.cat([model.sample(8, label=c, random_state=args.seed + 10 + i) for i, c in enumerate(model.classes_)])
    order = torch.arange(grid.shape[0]).reshape(len(model.classes_), 8).T.reshape(-1)
    image_grid({"class-conditional SGLD samples\n(columns: classes)": grid[order]}, run / "samples.png",
               ncol=len(model.classes_))
    print(f"accuracy {metrics['accuracy']:.4f}  ECE {metrics['ece_15']:.4f}  AUROC(-U) "
          + ", ".join(f"{k} {v:.3f}" for k, v in metrics["auroc_minus_energy"].items()))
    print(f"wrote {run}/model.safetensors, metrics.json, reliability.png, ood_hist.png, samples.png")
    return 0


def _first(op, k: int):
    """The operator of the first k images (a per-image inpainting mask is cut to its first k masks)."""
    from .inverse import Inpaint

    return Inpaint(op.mask[:k]) if isinstance(op, Inpaint) and op.mask.ndim == 4 else op


def cmd_inverse(args: argparse.Namespace) -> int:
    import torch

    from .._core.errors import ConfigError
    from ..data import load_digits
    from .figures import before_after
    from .inverse import (Blur, Denoise, Inpaint, TotalVariation, gaussian_kernel, learn_prior, map_estimate, psnr,
                          random_mask, tikhonov)

    if args.n_images < 1:
        raise ConfigError(f"--n-images must be >= 1, got {args.n_images}")
    if args.posterior_samples < 0 or args.posterior_steps < 1:
        raise ConfigError(f"--posterior-samples must be >= 0 and --posterior-steps >= 1, got {args.posterior_samples} "
                          f"and {args.posterior_steps}")
    sigma = args.sigma if args.sigma is not None else (0.3 if args.task == "denoise" else 0.05)
    if not sigma > 0:
        raise ConfigError(f"--sigma must be > 0, got {sigma}")
    x, _ = load_digits("train")
    xt = load_digits("test")[0][: args.n_images]
    g = torch.Generator().manual_seed(args.seed)
    if args.task == "denoise":
        op = Denoise()
    elif args.task == "inpaint":
        op = Inpaint(random_mask(xt.shape, args.missing, generator=g))
    else:
        op = Blur(gaussian_kernel(5, args.blur_sigma))
    y = op(xt) + sigma * torch.randn(xt.shape, generator=g)
    if args.task == "inpaint":
        y = op(y)
    prior, _ = learn_prior(x, objective=args.prior_objective, steps=args.prior_steps, seed=args.seed, progress=True)
    tv_weight = args.tv_weight if args.tv_weight is not None else (3.0 if args.task == "denoise" else 0.1)
    mean = x.mean(0)
    results = {
        "Tikhonov": tikhonov(op, y, sigma, args.tikhonov_lam, mean=mean).clamp(0, 1),
        "TV": map_estimate(TotalVariation(tv_weight), op, y, sigma, steps=args.map_steps),
        "learned prior (MAP)": map_estimate(prior, op, y, sigma, steps=args.map_steps, prior_weight=args.prior_weight),
    }
    run = _run_dir(args.out, f"inverse-{args.task}")
    run.mkdir(parents=True, exist_ok=True)
    metrics = {"task": args.task, "sigma": sigma, "n_images": int(xt.shape[0]),
               "psnr_observed": float(psnr(y.clamp(0, 1), xt).mean()),
               "psnr": {k: float(psnr(v, xt).mean()) for k, v in results.items()}}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    k = min(8, xt.shape[0])
    rows = {"clean": xt[:k], "observed": y[:k].clamp(0, 1), **{n: v[:k] for n, v in results.items()}}
    psnrs = {"observed": psnr(y[:k].clamp(0, 1), xt[:k]).tolist(), **{n: psnr(v[:k], xt[:k]).tolist() for n, v in results.items()}}
    before_after(rows, psnrs, run / "panels.png", title=f"{args.task}, sigma={sigma}")
    if args.posterior_samples > 0:
        from ..samplers import MALA
        from .inverse import posterior_sample

        draws, info = posterior_sample(prior, _first(op, k), y[:k], sigma, n_samples=args.posterior_samples,
                                       sampler=MALA(step_size=1e-3), steps=args.posterior_steps,
                                       burn_in=args.posterior_steps, prior_weight=args.prior_weight,
                                       x0=results["learned prior (MAP)"][:k], generator=g)
        mean, std = draws.mean(0), draws.std(0) if args.posterior_samples > 1 else torch.zeros_like(draws[0])
        metrics["posterior"] = {"n_samples": args.posterior_samples, "images": k,
                                "psnr_posterior_mean": float(psnr(mean.clamp(0, 1), xt[:k]).mean()),
                                "mala_acceptance": info.acceptance_rate, "mala_step_size": info.step_size}
        (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
        before_after({"clean": xt[:k], "observed": y[:k].clamp(0, 1), "MAP": results["learned prior (MAP)"][:k],
                      "posterior mean": mean, "posterior std ×4": (4 * std).clamp(0, 1)},
                     {"MAP": psnr(results["learned prior (MAP)"][:k], xt[:k]).tolist(),
                      "posterior mean": psnr(mean.clamp(0, 1), xt[:k]).tolist()},
                     run / "posterior.png", title=f"{args.task}: MALA posterior, {args.posterior_samples} draws per image")
    print("mean PSNR (dB): " + ", ".join(f"{n} {v:.2f}" for n, v in metrics["psnr"].items())
          + f" (observed {metrics['psnr_observed']:.2f})")
    print(f"wrote {run}/metrics.json, panels.png" + (", posterior.png" if args.posterior_samples > 0 else ""))
    return 0
