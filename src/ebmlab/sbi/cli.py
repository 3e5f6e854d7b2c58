"""``ebmlab sbi TASK``: fit an energy-based likelihood (or posterior) on simulations, sample the posteriors of
observations 1..10 in one batched run, print the C2ST table and write pair plots. Standard library only at import."""
from __future__ import annotations

import argparse

ESTIMATORS = ("nle", "npe")
#: the training objectives (``ebmlab.sbi.estimators.OBJECTIVES_SBI``; a test checks they agree)
METHODS = ("ed", "nce", "dsm", "pcd")


def _observations(text: str):
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            raise argparse.ArgumentTypeError(f"observations must look like 1-10 or 1,3,5, got {text!r}") from None
        out.extend(range(lo, hi + 1))
    if not out or min(out) < 1 or max(out) > 10:
        raise argparse.ArgumentTypeError(f"observations must be within 1..10, got {text!r}")
    return out


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sbi", help="simulation-based inference on an sbibm task (C2ST table + pair plots)")
    p.add_argument("task", help="two_moons, gaussian_linear, gaussian_linear_uniform, slcp, gaussian_mixture, bernoulli_glm")
    p.add_argument("--simulations", type=int, default=10_000)
    p.add_argument("--method", default="ed", help="training objective: ed, nce, dsm or pcd")
    p.add_argument("--estimator", default="nle", help="nle (energy-based likelihood) or npe (posterior energy)")
    p.add_argument("--observations", type=_observations, default=list(range(1, 11)), help="e.g. 1-10 or 1,4")
    p.add_argument("--n-samples", type=int, default=10_000, help="posterior draws per observation")
    p.add_argument("--steps", type=int, default=30_000, help="training steps")
    p.add_argument("--sampler", default="hmc", help="hmc, mala, rwm or auto (pilot runs, ebmlab.samplers.advise)")
    p.add_argument("--ensemble-size", type=int, default=1, help="networks fitted on the same simulations whose "
                   "mean energy is the model (NLE/NPE ensemble_size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sbi", help="folder for the pair plots and the JSON result")
    p.set_defaults(func=cmd_sbi)


def cmd_sbi(args) -> int:
    import json
    from pathlib import Path

    from .._core.errors import ConfigError
    from ..bench.sbi import format_table, run_case
    from .tasks import task_names

    if args.task not in task_names():
        raise ConfigError(f"unknown task {args.task!r}; valid tasks are: {', '.join(task_names())}")
    if args.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {args.method!r}")
    if args.estimator not in ESTIMATORS:
        raise ConfigError(f"--estimator must be one of {', '.join(ESTIMATORS)}, got {args.estimator!r}")
    if args.simulations < 10:
        raise ConfigError(f"--simulations must be >= 10, got {args.simulations}")
    if args.ensemble_size < 1:
        raise ConfigError(f"--ensemble-size must be >= 1, got {args.ensemble_size}")
    out = Path(args.out)
    row = run_case(args.task, args.simulations, estimator=args.estimator, objective=args.method,
                   observations=args.observations, n_samples=args.n_samples, steps=args.steps, seed=args.seed,
                   sampler=args.sampler, plot_dir=out, ensemble_size=args.ensemble_size)
    print(format_table([row]))
    print("per observation: " + ", ".join(f"{i}: {c:.3f}" for i, c in zip(row["observations"], row["c2st"])))
    for w in row["warnings"]:
        print("warning:", w)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.task}_{args.estimator}_{args.method}_{args.simulations}.json"
    path.write_text(json.dumps(row, indent=2))
    print(f"pair plots and {path.name} written to {out}")
    return 0
