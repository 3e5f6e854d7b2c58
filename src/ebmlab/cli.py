"""The ``ebmlab`` command.

``ebmlab train`` with no arguments trains the default model on a built-in data set and writes plots, metrics and a
checkpoint into ``runs/<name>/``.  Every key of the YAML configuration (``ebmlab train --print-config`` shows them)
is also a flag: ``--steps 5000``, ``--objective ed``, ``--energy-params "{hidden: [64, 64]}"``.
Errors a user can fix are printed as one line (``error: ...``) with exit status 2, never as a traceback.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ._core.errors import ConfigError, DataError, EbmlabError

#: The default recipe of ``ebmlab train`` (see README "Default recipe" for how it was chosen).
DEFAULTS: Dict[str, Any] = {
    "model": "ebm",
    "model_params": {},
    "data": "8gaussians",
    "n_train": 20000,
    "n_test": 5000,
    "energy": "mlp",
    "energy_params": {"hidden": [128, 128, 128], "activation": "silu"},
    "objective": "pcd",
    "objective_params": {"sampler": "ula", "steps": 20, "buffer_size": 10000, "reinit_prob": 0.05},
    "sampler": "ula",
    "sampler_params": {"step_size": 0.005},
    "standardize": "auto",
    "steps": 4000,
    "batch_size": 128,
    "lr": 0.002,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "grad_clip": None,
    "lr_schedule": "cosine",
    "ema": 0.999,
    "sample_steps": 1000,
    "n_samples": 5000,
    "resolution": 200,
    "seed": 0,
    "device": "auto",
    "progress": True,
    "checkpoint_every": None,
    "name": None,
}

#: What ``ebmlab train --model NAME`` trains: name -> ``"module:function"``.  The function is called as
#: ``function(cfg, out=out, resume=resume)`` with the resolved configuration and returns ``(run_dir, metrics)``; keys of
#: ``cfg`` that the model does not use must be refused by it (``ebmlab.run.reject_unused_keys``).  Modules are imported
#: only when their model is trained, so adding one costs nothing at start-up.
MODELS: Dict[str, str] = {
    "ebm": "ebmlab.run:train_run",
}

#: Extra sub-commands: modules with an ``add_parser(subparsers)`` function that adds one sub-command (with
#: ``set_defaults(func=handler)``).  Such a module imports only the standard library at import time; its handler
#: imports the rest.
COMMAND_MODULES: List[str] = []


def _load_target(target: str):
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _parse_value(key: str, text: str, default: Any) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"--{key}: could not parse {text!r} ({err.__class__.__name__})") from None
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"--{key} must be true or false, got {text!r}")
    if isinstance(default, int) and not isinstance(default, bool) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"--{key} must be an integer, got {text!r}")
    if isinstance(default, float) and not isinstance(value, (int, float)):
        raise ConfigError(f"--{key} must be a number, got {text!r}")
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"--{key} must be a mapping such as \"{{a: 1}}\", got {text!r}")
    return value


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        alias = "--" + key
        names = [flag] if flag == alias else [flag, alias]
        p.add_argument(*names, dest=f"cfg_{key}", metavar="VALUE", default=None,
                       help=f"(default: {json.dumps(default)})")


def _load_yaml(path: str) -> Dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise DataError(f"config file {path} does not exist")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    unknown = sorted(set(cfg) - set(DEFAULTS) - {"out"})
    if unknown:
        raise ConfigError(f"unknown config keys {unknown} in {path}; valid keys are: {', '.join(DEFAULTS)}")
    return cfg


def build_config(args: argparse.Namespace) -> Dict[str, Any]:
    """Defaults <- config file <- flags; nested dicts from the file/flags replace the defaults' dicts."""
    cfg = copy.deepcopy(DEFAULTS)
    explicit: Dict[str, Any] = {}
    if getattr(args, "config", None):
        explicit.update(_load_yaml(args.config))
    for key, default in DEFAULTS.items():
        text = getattr(args, f"cfg_{key}", None)
        if text is not None:
            explicit[key] = _parse_value(key, text, default)
    # Switching objective/sampler without giving their params: drop the default recipe's params (they belong to it).
    if "objective" in explicit and explicit["objective"] != DEFAULTS["objective"] and "objective_params" not in explicit:
        cfg["objective_params"] = {}
    if "sampler" in explicit and explicit["sampler"] != DEFAULTS["sampler"] and "sampler_params" not in explicit:
        cfg["sampler_params"] = {}
    if "energy" in explicit and explicit["energy"] != DEFAULTS["energy"] and "energy_params" not in explicit:
        cfg["energy_params"] = {}
    cfg.update(explicit)
    return cfg


# ---------------------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .run import train_run

    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
        saved = out / "config.yaml"
        if not saved.exists():
            raise DataError(f"cannot resume: {saved} does not exist (is {out} a run directory?)")
        base = _load_yaml(str(saved))
        base.pop("out", None)
        base.setdefault("standardize", False)  # runs written before standardisation existed were trained on raw data
        cfg = copy.deepcopy(DEFAULTS)
        cfg.update(base)
        for key, default in DEFAULTS.items():
            text = getattr(args, f"cfg_{key}", None)
            if text is not None:
                cfg[key] = _parse_value(key, text, default)
    else:
        cfg = build_config(args)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        return 0
    model = cfg.get("model", "ebm")
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; valid models are: {', '.join(MODELS)}")
    trainer = train_run if model == "ebm" else _load_target(MODELS[model])
    run_dir, metrics = trainer(cfg, out=out, resume=args.resume)
    print(f"run directory: {run_dir}")
    for k, v in metrics.items():
        if isinstance(v, float):
            print(f"  {k}: {v:.5g}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .run import sample_run

    path = sample_run(args.run, n=args.n, out=args.out, seed=args.seed, steps=args.steps)
    print(f"wrote {args.n} samples to {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .run import evaluate_run

    metrics = evaluate_run(args.run, n_samples=args.n, seed=args.seed)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    out = Path(args.out)
    result = run_bench(args.suite, out, quick=args.quick)
    print(f"wrote {', '.join(str(p) for p in result.get('files', []))}" if result.get("files") else f"results in {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import data, energies, objectives, samplers

    print("data sets:  ", ", ".join(data.toy_names()))
    print("energies:   ", ", ".join(energies.ENERGIES.names()))
    print("objectives: ", ", ".join(objectives.available()))
    print("samplers:   ", ", ".join(samplers.available()))
    return 0


def cmd_ergm(args: argparse.Namespace) -> int:
    from .ergm import cli_fit

    print(cli_fit(args.graph, args.formula, method=args.method, seed=args.seed, directed=args.directed))
    return 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ebmlab", description="Learn, sample and evaluate unnormalized models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model; writes plots, metrics and a checkpoint into runs/<name>/")
    t.add_argument("--config", help="YAML file with any of the keys below")
    t.add_argument("--out", help="run directory (default runs/<name>, name = <data>-<objective>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    _add_config_flags(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", help="run directory")
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--out", required=True, help="output file (.npy, .csv or .pt)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, default=None, help="MCMC steps (default: the run's sample_steps)")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="recompute the metrics of a trained run")
    e.add_argument("run", help="run directory")
    e.add_argument("--n", type=int, default=None, help="number of model samples (default: the run's n_samples)")
    e.add_argument("--seed", type=int, default=1)
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="benchmark suites (tables in Markdown + JSON, figures)")
    from .bench import SUITES

    b.add_argument("suite", help=" | ".join(SUITES))
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--quick", action="store_true", help="a short run of a few minutes")
    b.set_defaults(func=cmd_bench)

    li = sub.add_parser("list", help="list data sets, energies, objectives and samplers")
    li.set_defaults(func=cmd_list)

    g = sub.add_parser("ergm", help="exponential random graph models")
    gsub = g.add_subparsers(dest="ergm_command", metavar="ERGM_COMMAND")
    gf = gsub.add_parser("fit", help="fit an ERGM to a graph file and print the summary table")
    gf.add_argument("graph", help="edge list (.edgelist/.txt/.csv), GraphML (.graphml) or GML (.gml)")
    gf.add_argument("formula", help='statnet-style formula, e.g. "edges + triangle"')
    gf.add_argument("--method", default="mcmc_mle", help="mple | mcmc_mle | cd | ed")
    gf.add_argument("--seed", type=int, default=0)
    gf.add_argument("--directed", action="store_true", help="read the graph as directed")
    gf.set_defaults(func=cmd_ergm)
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "ergm" and not getattr(args, "ergm_command", None):
        parser.parse_args(["ergm", "--help"])
    try:
        return int(args.func(args) or 0)
    except EbmlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
