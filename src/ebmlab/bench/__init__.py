"""Benchmark suites behind ``ebmlab bench``: each writes Markdown + JSON tables (and figures) into a folder and
reports speed as ratios to a bare baseline measured in the same run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .._core.errors import ConfigError

#: name -> ``"module:function"``; the function is called as ``function(out, quick=quick)`` and returns a dict with
#: at least ``files`` (the paths written).  Imported only when the suite runs.
SUITES: Dict[str, str] = {
    "apps": "ebmlab.bench.apps:run_apps_bench",
    "samplers": "ebmlab.bench.samplers:run_sampler_bench",
    "objectives": "ebmlab.bench.objectives:run_objective_bench",
    "ising": "ebmlab.bench.ising:run_ising_bench",
    "ising-samplers": "ebmlab.bench.ising_samplers:run_ising_sampler_bench",
    "ergm": "ebmlab.bench.ergm:run_ergm_bench",
    "gebm": "ebmlab.bench.gebm:run_gebm_bench",
    "sbi": "ebmlab.bench.sbi:run_sbi_bench",
    "diffusion-samplers": "ebmlab.bench.diffusion_samplers:run_diffusion_sampler_bench",
    "diffebm": "ebmlab.bench.diffebm:run_diffebm_bench",
}


def run_bench(suite: str, out: Path, quick: bool = False, **options: Any) -> Dict[str, Any]:
    """Run one suite by name, writing into ``out``; ``options`` are suite-specific keywords (``full`` of diffebm)."""
    import importlib

    if suite not in SUITES:
        raise ConfigError(f"unknown benchmark suite {suite!r}; valid suites are: {', '.join(SUITES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    module, _, attr = SUITES[suite].partition(":")
    return getattr(importlib.import_module(module), attr)(out, quick=quick, **options)
