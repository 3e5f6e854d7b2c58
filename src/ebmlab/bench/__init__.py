"""Benchmark suites behind ``ebmlab bench``: each writes Markdown + JSON tables (and figures) into a folder and
reports speed as ratios to a bare baseline measured in the same run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .._core.errors import ConfigError

SUITES = ("samplers", "objectives", "ising", "ising-samplers", "ergm")


def run_bench(suite: str, out: Path, quick: bool = False) -> Dict[str, Any]:
    """Run one suite by name, writing into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if suite == "samplers":
        from .samplers import run_sampler_bench

        return run_sampler_bench(out, quick=quick)
    if suite == "objectives":
        from .objectives import run_objective_bench

        return run_objective_bench(out, quick=quick)
    if suite == "ising":
        from .ising import run_ising_bench

        return run_ising_bench(out, quick=quick)
    if suite == "ising-samplers":
        from .ising_samplers import run_ising_sampler_bench

        return run_ising_sampler_bench(out, quick=quick)
    if suite == "ergm":
        from .ergm import run_ergm_bench

        return run_ergm_bench(out, quick=quick)
    raise ConfigError(f"unknown benchmark suite {suite!r}; valid suites are: {', '.join(SUITES)}")
