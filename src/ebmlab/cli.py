"""The ``ebmlab`` command.

``ebmlab train`` with no arguments trains the default model on a built-in data set and writes plots, metrics and a
checkpoint into ``runs/<name>/``.  Every key of the YAML configuration (``ebmlab train --print-config`` shows them)
is also a flag: ``--steps 5000``, ``--objective ed``, ``--energy-params "{hidden: [64, 64]}"``.
Errors a user can fix are printed as one line (``error: ...``) with exit status 2, never as a traceback (exit
statuses: :data:`EXIT_USAGE` and the others below ``main``).  Flags are never matched by prefix (``--step`` is an
error naming ``--steps``), YAML keys may not repeat, every value is type-checked against :data:`DEFAULTS`.
``--help``, ``list`` and argument errors answer without importing torch.  Progress: a tqdm bar when stderr is a
terminal, else one line per ~10 % of training and of the evaluation's sampling (``progress: false`` silences both).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ._core.errors import ConfigError, DataError, EbmlabError
from ._core.yamlio import safe_load_yaml  # the one YAML reader: no duplicate keys, 1e-3 is a number

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
    "watchdog": True,
    "name": None,
}

#: What ``ebmlab train --model NAME`` trains: name -> ``"module:function"``.  The function is called as
#: ``function(cfg, out=out, resume=resume)`` with the resolved configuration and returns ``(run_dir, metrics)``; keys of
#: ``cfg`` that the model does not use must be refused by it (``ebmlab.run.reject_unused_keys``).  Modules are imported
#: only when their model is trained, so adding one costs nothing at start-up.
MODELS: Dict[str, str] = {
    "ebm": "ebmlab.run:train_run",
    "gebm": "ebmlab.generators.run:train_gebm_run",
    "latent_ebm": "ebmlab.apps.latent:train_run",
    "diffebm": "ebmlab.diffusion.diffebm:train_diffebm_run",
}

#: Extra sub-commands: modules with an ``add_parser(subparsers)`` function that adds one sub-command (with
#: ``set_defaults(func=handler)``).  Such a module imports only the standard library at import time; its handler
#: imports the rest.
COMMAND_MODULES: List[str] = [
    "ebmlab.apps.cli",
    "ebmlab.sbi.cli",
]


def _load_target(target: str):
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _yaml_error(err: yaml.YAMLError) -> str:
    """One line from a (multi-line) PyYAML error: its problem and where."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


#: Types of the keys whose default is ``None`` (the others take their default's type).
_NULLABLE: Dict[str, tuple] = {"grad_clip": (float,), "checkpoint_every": (int,), "name": (str,), "ema": (float,)}
#: Lower bounds of integer keys.
_INT_MINIMUM: Dict[str, int] = {"n_train": 2, "n_test": 2, "steps": 1, "batch_size": 1, "sample_steps": 1,
                                "n_samples": 1, "resolution": 2, "seed": 0, "checkpoint_every": 1}


def _type_name(types: tuple) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping such as "
            "\"{a: 1}\"", list: "a list"}.get(types[0], types[0].__name__)


def check_value(key: str, value: Any, where: str = "") -> Any:
    """Check one configuration value against the type of ``DEFAULTS[key]`` (and the bounds of the keys with one);
    returns it (ints are accepted for numbers) or raises a one-line ConfigError naming the key and what is allowed."""
    label = where or f"--{key.replace('_', '-')}"
    default = DEFAULTS[key]
    if key == "standardize":
        if value != "auto" and not isinstance(value, bool):
            raise ConfigError(f"{label} must be auto, true or false, got {value!r}")
        return value
    if default is None or key in _NULLABLE:
        if value is None:
            return None
        types = _NULLABLE.get(key, (type(value),))
    else:
        types = (type(default),)
    want = types[0]
    ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        null = " (or null)" if key in _NULLABLE or default is None else ""
        raise ConfigError(f"{label} must be {_type_name(types)}{null}, got {value!r}")
    if want is int and key in _INT_MINIMUM and value < _INT_MINIMUM[key]:
        raise ConfigError(f"{label} must be an integer >= {_INT_MINIMUM[key]}, got {value!r}")
    if want is float and not math.isfinite(value):
        raise ConfigError(f"{label} must be a finite number, got {value!r}")
    if key == "name":
        check_run_name(value, label)
    return value


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=@")


def check_run_name(name: Any, label: str = "name") -> str:
    """A run name is one directory under ``runs/``: letters, digits and ``. _ - + = @``, not starting with a dot."""
    if not isinstance(name, str) or not name or name.startswith(".") or not set(name) <= _NAME_CHARS or len(name) > 200:
        raise ConfigError(f"{label} must be a plain directory name under runs/ (letters, digits, . _ - + = @, not "
                          f"starting with '.'), got {name!r}; to write elsewhere use --out DIR")
    return name


def _parse_value(key: str, text: str, default: Any = None) -> Any:
    if (isinstance(DEFAULTS.get(key), str) and key != "standardize") or key == "name":  # names, paths, data specs
        return check_value(key, text)  # (YAML would turn "gray:" into a mapping, "on" into True)
    try:
        value = safe_load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"--{key.replace('_', '-')}: could not parse {text!r} ({_yaml_error(err)})") from None
    return check_value(key, value)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        alias = "--" + key
        names = [flag] if flag == alias else [flag, alias]
        p.add_argument(*names, dest=f"cfg_{key}", metavar="VALUE", default=None,
                       help=f"(default: {json.dumps(default)})")


def read_yaml_mapping(path, what: str = "config file") -> Dict[str, Any]:
    """Read a YAML file that must hold a mapping; every failure (missing, a directory, unreadable, not UTF-8,
    invalid YAML, duplicate keys, not a mapping) is one line naming the file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} {path} does not exist")
    if not p.is_file():
        raise DataError(f"{what} {path} is a directory, not a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{what} {path} is not a UTF-8 text file") from None
    except OSError as err:
        raise DataError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        cfg = safe_load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {_yaml_error(err)}") from None
    except ConfigError as err:
        raise ConfigError(f"{what} {path}: {err}") from None
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys to values, got a {type(cfg).__name__}")
    return cfg


def _load_yaml(path: str) -> Dict[str, Any]:
    cfg = read_yaml_mapping(path)
    bad = sorted(str(k) for k in cfg if not isinstance(k, str))
    unknown = sorted(set(map(str, cfg)) - set(DEFAULTS) - {"out"})
    if unknown or bad:
        raise ConfigError(f"unknown config keys {unknown} in {path}; valid keys are: {', '.join(DEFAULTS)}")
    for key, value in cfg.items():
        if key in DEFAULTS:
            cfg[key] = check_value(key, value, where=f"{key} in {path}")
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
            explicit[key] = _parse_value(key, text)
    # Switching objective/sampler without giving their params: drop the default recipe's params (they belong to it).
    if "objective" in explicit and explicit["objective"] != DEFAULTS["objective"] and "objective_params" not in explicit:
        cfg["objective_params"] = {}
    if "sampler" in explicit and explicit["sampler"] != DEFAULTS["sampler"] and "sampler_params" not in explicit:
        cfg["sampler_params"] = {}
    if "energy" in explicit and explicit["energy"] != DEFAULTS["energy"] and "energy_params" not in explicit:
        cfg["energy_params"] = {}
    cfg.update(explicit)
    return cfg


#: Keys that define the model and its training data; ``--resume`` refuses to change them (the checkpoint holds
#: their consequences: weights of that shape, that optimiser's state, those random streams).
RESUME_FIXED = ("model", "model_params", "data", "n_train", "n_test", "energy", "energy_params", "objective",
                "objective_params", "sampler", "sampler_params", "standardize", "batch_size", "lr", "optimizer",
                "weight_decay", "grad_clip", "lr_schedule", "ema", "seed")


def _same_setting(key: str, given: Any, saved: Any) -> bool:
    if given == saved:
        return True
    if key == "data" and isinstance(given, str) and isinstance(saved, str):  # a file given relative, saved absolute
        return Path(given).expanduser().resolve() == Path(saved).expanduser().resolve()
    return False


# ---------------------------------------------------------------------------------------------------------------
def _launch_torchrun(nproc: int, argv: List[str]) -> int:
    """``ebmlab ... --nproc N``: run the same command under ``torchrun --standalone --nproc_per_node N`` (one machine;
    for several, call torchrun yourself with ``--nnodes`` and ``--rdzv-endpoint``, see the README)."""
    import subprocess

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ebmlab.train.launch"]  # the command line travels in the environment (see ebmlab.train.launch)
    return subprocess.call(cmd, env={**os.environ, "EBMLAB_TORCHRUN_ARGV": json.dumps(rest)})


def cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise ConfigError("--resume needs --out RUN_DIR (the run to continue)")
        if args.config:
            raise ConfigError("--resume continues the run with its own config.yaml; --config cannot be combined "
                              "with it (change steps, progress, ... by flags)")
        saved = out / "config.yaml"
        if not saved.exists():
            raise DataError(f"cannot resume: {saved} does not exist (is {out} a run directory?)")
        base = _load_yaml(str(saved))
        base.pop("out", None)
        base.setdefault("standardize", False)  # runs written before standardisation existed were trained on raw data
        cfg = copy.deepcopy(DEFAULTS)
        cfg.update(base)
        for key in DEFAULTS:
            text = getattr(args, f"cfg_{key}", None)
            if text is None:
                continue
            value = _parse_value(key, text)
            if key in RESUME_FIXED and not _same_setting(key, value, cfg[key]):
                may = ", ".join(k for k in DEFAULTS if k not in RESUME_FIXED)
                raise ConfigError(f"--resume continues the run as it was configured: {key} cannot change (the run "
                                  f"has {cfg[key]!r}, given {value!r}); keys that may change on resume: {may}")
            cfg[key] = value
    else:
        cfg = build_config(args)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        return 0
    model = cfg.get("model", "ebm")
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; valid models are: {', '.join(MODELS)}")
    trainer = _load_target(MODELS[model])  # (imports torch: every check above answers without it)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args.nproc, getattr(args, "argv", None) or sys.argv[1:])
    run_dir, metrics = trainer(cfg, out=out, resume=args.resume)
    if "WORLD_SIZE" in os.environ:  # under torchrun: leave the process group; rank 0 reports
        from .train.distributed import destroy

        destroy()
        if os.environ.get("RANK", "0") != "0":
            return 0
    print(f"run directory: {run_dir}")
    for k, v in metrics.items():
        if isinstance(v, float):
            print(f"  {k}: {v:.5g}")
    return 0


def _check_output_file(path: str) -> Path:
    """``sample --out``: a .npy/.csv/.pt file path whose directory can be written (checked before sampling)."""
    from ._core.fsutil import check_writable_dir

    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file name ending in .npy, .csv or .pt")
    if out.suffix.lower() not in (".npy", ".csv", ".pt"):
        raise ConfigError(f"--out {path}: unsupported extension {out.suffix or '(none)'!r}; allowed: .npy, .csv, .pt")
    check_writable_dir(out.parent if str(out.parent) else Path("."), "output directory")
    return out


def cmd_sample(args: argparse.Namespace) -> int:
    out = _check_output_file(args.out)
    from .run import sample_run

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        if args.n % args.nproc:
            raise ConfigError(f"--n {args.n} chains cannot be split equally over --nproc {args.nproc} processes; "
                              f"use a multiple of {args.nproc}")
        return _launch_torchrun(args.nproc, getattr(args, "argv", None) or sys.argv[1:])
    distributed = "WORLD_SIZE" in os.environ
    path = sample_run(args.run, n=args.n, out=out, seed=args.seed, steps=args.steps, distributed=distributed)
    if distributed:
        from .train.distributed import destroy

        destroy()
        if os.environ.get("RANK", "0") != "0":
            return 0
    print(f"wrote {args.n} samples to {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .run import evaluate_run

    metrics = evaluate_run(args.run, n_samples=args.n, seed=args.seed)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ._core.fsutil import check_writable_dir
    from .bench import SUITES, run_bench

    if args.suite not in SUITES:
        raise ConfigError(f"unknown benchmark suite {args.suite!r}; valid suites are: {', '.join(SUITES)}")
    out = check_writable_dir(Path(args.out), "--out")
    if args.compile:  # sample(..., compile=True) is refused on CPU, with its measured reason
        if args.suite != "samplers":
            raise ConfigError(f"--compile applies to the samplers suite only, not {args.suite!r}")
        from .bench.samplers import check_compile

        check_compile()
    options = {}
    if args.full:  # diffebm: the paper's 10 seeds; sbi: the whole task x simulations x method grid
        if args.suite not in ("diffebm", "sbi") or args.quick:
            raise ConfigError(f"--full applies to the diffebm and sbi suites without --quick, not {args.suite!r}"
                              f"{' with --quick' if args.quick else ''}")
        options["full"] = True
    if args.targets is not None:
        if args.suite != "diffusion-samplers":
            raise ConfigError(f"--targets applies to the diffusion-samplers suite only, not {args.suite!r}")
        names = [t.strip() for t in args.targets.split(",") if t.strip()]
        if not names:
            raise ConfigError("--targets must name at least one target: funnel-10d, grid, 40-mode, many-well-5d")
        options["targets"] = names
    result = run_bench(args.suite, out, quick=args.quick, **options)
    print(f"wrote {', '.join(str(p) for p in result.get('files', []))}" if result.get("files") else f"results in {out}")
    return 0


#: What ``ebmlab list`` prints, kept here so that it answers without importing torch; ``tests/test_cli.py`` checks
#: that it equals the live registries (a new registration must be added here too).
LIST_NAMES: Dict[str, List[str]] = {
    "data sets": ["2spirals", "8gaussians", "8gaussians_unit", "checkerboard", "circles", "grid", "moons",
                  "pinwheel", "rings", "swissroll"],
    "energies": ["binary_mlp", "ergm", "ising", "mlp", "noise_conditional_mlp", "quadratic"],
    "objectives": ["cd", "deen", "dsm", "dsm_diffusion", "ed", "mcmc_mle", "nce", "pcd", "pseudo_likelihood",
                   "short_run", "sm", "ssm"],
    "samplers": ["checkerboard_gibbs", "gibbs", "gwg", "hmc", "kinetic_langevin", "mala", "rwm", "swendsen_wang",
                 "tnt", "ula", "underdamped", "wolff"],
}


def live_names() -> Dict[str, List[str]]:
    """The registries' names (imports torch): what :data:`LIST_NAMES` must equal."""
    from . import data, energies, objectives, samplers

    return {"data sets": list(data.toy_names()), "energies": list(energies.ENERGIES.names()),
            "objectives": list(objectives.available()), "samplers": list(samplers.available())}


def cmd_list(args: argparse.Namespace) -> int:
    from .bench import SUITES

    rows = dict(LIST_NAMES)
    rows["models"] = list(MODELS)
    rows["bench suites"] = list(SUITES)
    for label, names in rows.items():
        print(f"{label + ':':13s}", ", ".join(names))
    print("data specs:   NAME, gray:NAME, ising:side=S,coupling=B, or a .npy/.csv/.pt file")
    return 0


def cmd_ergm(args: argparse.Namespace) -> int:
    from .ergm import cli_fit

    print(cli_fit(args.graph, args.formula, method=args.method, seed=args.seed, directed=args.directed))
    return 0


class _Parser(argparse.ArgumentParser):
    """ArgumentParser without prefix matching (``--step 3`` is an error, not ``--steps 3``), for every sub-command
    including those of ``COMMAND_MODULES``."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, like every other error of the command
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_PARSERS: Dict[tuple, argparse.ArgumentParser] = {}


def make_parser() -> argparse.ArgumentParser:
    """The command's parser (built once per set of registered sub-commands and configuration keys)."""
    key = (tuple(COMMAND_MODULES), tuple(DEFAULTS))
    if key not in _PARSERS:
        _PARSERS.clear()
        _PARSERS[key] = _build_parser()
    return _PARSERS[key]


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ebmlab", description="Learn, sample and evaluate unnormalized models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model; writes plots, metrics and a checkpoint into runs/<name>/")
    t.add_argument("--config", help="YAML file with any of the keys below")
    t.add_argument("--out", help="run directory (default runs/<name>, name = <data>-<objective>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    t.add_argument("--nproc", type=_int_at_least(1), default=1,
                   help="train with N processes on this machine (starts torchrun; batch_size is the global batch)")
    _add_config_flags(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", help="run directory")
    s.add_argument("--n", type=_int_at_least(1), default=1000, help="number of samples (default 1000)")
    s.add_argument("--out", required=True, help="output file (.npy, .csv or .pt)")
    s.add_argument("--seed", type=_int_at_least(0), default=0)
    s.add_argument("--steps", type=_int_at_least(1), default=None, help="MCMC steps (default: the run's sample_steps)")
    s.add_argument("--nproc", type=_int_at_least(1), default=1,
                   help="split the chains over N processes on this machine (starts torchrun); --n divisible by N")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="recompute the metrics of a trained run")
    e.add_argument("run", help="run directory")
    e.add_argument("--n", type=_int_at_least(1), default=None,
                   help="number of model samples, at most the run's held-out test points (default: the run's n_samples)")
    e.add_argument("--seed", type=_int_at_least(0), default=1)
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="benchmark suites (tables in Markdown + JSON, figures)")
    from .bench import SUITES

    b.add_argument("suite", help=" | ".join(SUITES))
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--quick", action="store_true", help="a short run of a few minutes")
    b.add_argument("--full", action="store_true", help="diffebm suite: 10 seeds, as in the DiffEBM paper; sbi suite: "
                   "every task x {10^3, 10^4, 10^5} simulations x method besides the headline rows")
    b.add_argument("--targets", default=None, help="diffusion-samplers suite: comma-separated target names to run "
                   "(funnel-10d, grid, 40-mode, many-well-5d; default all)")
    b.add_argument("--compile", action="store_true", help="samplers suite: time sample(..., compile=True) "
                   "(refused on CPU, where torch.compile of a step was measured slower than eager)")
    b.set_defaults(func=cmd_bench)

    li = sub.add_parser("list", help="list data sets, energies, objectives, samplers, models and bench suites")
    li.set_defaults(func=cmd_list)

    g = sub.add_parser("ergm", help="exponential random graph models")
    gsub = g.add_subparsers(dest="ergm_command", metavar="ERGM_COMMAND", parser_class=_Parser)
    gf = gsub.add_parser("fit", help="fit an ERGM to a graph file and print the summary table")
    gf.add_argument("graph", help="edge list (.edgelist/.txt/.csv), GraphML (.graphml) or GML (.gml)")
    gf.add_argument("formula", help='statnet-style formula, e.g. "edges + triangle"')
    gf.add_argument("--method", default="mcmc_mle", help="mple | mcmc_mle | cd | ed")
    gf.add_argument("--seed", type=_int_at_least(0), default=0)
    gf.add_argument("--directed", action="store_true", help="read the graph as directed")
    gf.set_defaults(func=cmd_ergm)
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return p


#: Exit statuses: 0 success, 2 a user error (bad flag, config or data; one line on stderr), 3 the run diverged
#: (non-finite or exploded loss or samples; the run is not marked finished), 1 the system refused (read-only or full
#: disk), 70 an internal error (a bug: please report it; EBMLAB_TRACEBACK=1 shows the traceback), 130 interrupted.
EXIT_USAGE, EXIT_DIVERGED, EXIT_OS, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 3, 1, 70, 130


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: List[str]) -> None:
    """Unknown arguments: the sub-command's own usage error, naming the closest valid flag."""
    import difflib

    target = parser
    for dest in ("command", "ergm_command"):
        name = getattr(args, dest, None)
        actions = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        if name and actions and name in actions[0].choices:
            target = actions[0].choices[name]
    flags = [o for a in target._actions for o in a.option_strings]
    first = extra[0].split("=", 1)[0]
    close = difflib.get_close_matches(first, flags, n=1, cutoff=0.6) if first.startswith("-") else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    target.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return " ".join(lines)[:2000] if lines else ""


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command; returns the exit status (see ``EXIT_*``).  Nothing but ``error: <one line>`` reaches stderr
    for a failure (set ``EBMLAB_TRACEBACK=1`` to see the traceback of an internal error)."""
    import os

    parser = make_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        args.argv = list(argv) if argv is not None else sys.argv[1:]  # what `--nproc N` runs again under torchrun
        if extra:
            _refuse_unknown(parser, args, extra)
    except SystemExit as stop:  # --help, or an argument error already printed by argparse
        return int(stop.code or 0) if not isinstance(stop.code, str) else EXIT_USAGE
    if args.command == "ergm" and not getattr(args, "ergm_command", None):
        try:
            parser.parse_args(["ergm", "--help"])
        except SystemExit:
            pass
        print("error: ebmlab ergm needs a sub-command (fit)", file=sys.stderr)
        return EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        print("error: no command given; choose one of the commands above", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except EbmlabError as err:
        from ._core.errors import TrainingDivergedError

        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_DIVERGED if isinstance(err, TrainingDivergedError) else EXIT_USAGE
    except KeyboardInterrupt as err:
        print(f"interrupted{': ' + _one_line(err) if str(err) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        from ._core.fsutil import describe_os_error

        print(f"error: {_one_line(describe_os_error(err))}", file=sys.stderr)
        return EXIT_OS
    except MemoryError:
        print("error: out of memory; use a smaller batch_size, n_samples, buffer_size or network", file=sys.stderr)
        return EXIT_OS
    except RuntimeError as err:
        text = str(err)
        if "can't allocate memory" in text or "out of memory" in text.lower():
            size = re.search(r"allocate (\d+) bytes", text)
            what = f" (an allocation of {int(size.group(1)) / 2 ** 30:.3g} GiB failed)" if size else ""
            print(f"error: out of memory{what}; use smaller data, batch_size, n_samples, buffer_size or network",
                  file=sys.stderr)
            return EXIT_OS
        if os.environ.get("EBMLAB_TRACEBACK"):
            raise
        print(f"error: internal error ({type(err).__name__}: {_one_line(err)[:300]}); this is a bug in ebmlab, "
              f"please report it (EBMLAB_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as err:  # noqa: BLE001 - a bug: one line unless the user asks for the traceback
        if os.environ.get("EBMLAB_TRACEBACK"):
            raise
        print(f"error: internal error ({type(err).__name__}: {_one_line(err)[:300]}); this is a bug in ebmlab, "
              f"please report it (EBMLAB_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    status = main()
    if "WORLD_SIZE" in os.environ:  # `torchrun -m ebmlab.cli ...`: end the worker as ebmlab.train.launch does
        from .train.launch import exit_worker

        exit_worker(status)
    sys.exit(status)
