"""``ebmlab bench samplers``: the cost of ebmlab's samplers against bare hand-written torch loops.

For each energy, every sampler is run through the public driver :func:`ebmlab.samplers.sample`
(which also stores every draw) and timed against a bare loop written here in plain torch, with
no ebmlab code, on the same energy, chains and thread count, interleaved A, B, B, A, ...
(:mod:`ebmlab.bench.timing`). The figure reported is the cost **per energy-gradient evaluation**
relative to the bare ULA loop

    x.requires_grad_(True); u = energy(x).sum(); g = autograd.grad(u, x)[0]
    x = x.detach() - h * g + sqrt(2h) * randn

so ULA and MALA (1 gradient per step), HMC (``n_leapfrog`` per step) and kinetic Langevin
(1 per step) are compared on the same scale. MALA is also compared with a bare hand-written MALA
loop with a cached gradient (the price of ebmlab's code alone), and random-walk Metropolis per
*energy* evaluation with a bare energy-only Metropolis loop. Targets (issue): ULA <= 1.10x, MALA <= 1.20x.

Energies: MLP 2-128-128-1 (Softplus) with 1024 chains, MLP 100-256-256-1 with 256 chains, and the
8-Gaussians mixture in 2-D (:class:`ebmlab.energies.analytic.GaussianMixture`) with 1024 chains. The mixture class has an analytic
``energy_and_grad`` that ebmlab's samplers use, while the bare loop differentiates its ``forward``
by autograd, so its rows also measure that choice.
"""
from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int
from ..energies import Energy, MLPEnergy
from ..samplers import HMC, MALA, ULA, KineticLangevin, RandomWalkMetropolis, sample
from ..energies.analytic import GaussianMixture
from .._core.random import init_parameters_
from .timing import allocator_env, interleaved_ratio

#: per-gradient-evaluation targets from the issue (ratio to the bare ULA loop)
TARGETS = {"ula": 1.10, "mala": 1.20}
STEP_SIZE = 0.01
HMC_LEAPFROG = 5


def _eight_gaussians() -> Energy:
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    means = torch.stack([angles.cos(), angles.sin()], 1) * (4 / 1.414)
    return GaussianMixture(means, 0.5 / 1.414)


def _seeded_mlp(dim: int, hidden, seed: int) -> MLPEnergy:
    """An MLP energy (Softplus) initialised reproducibly without global seeding."""
    return init_parameters_(MLPEnergy(dim, hidden), torch.Generator().manual_seed(seed))


def _configs(quick: bool) -> List[Dict[str, Any]]:
    chains = (lambda n: min(n, 64)) if quick else (lambda n: n)
    return [
        {"name": "mlp 2-128-128-1", "energy": _seeded_mlp(2, (128, 128), 0), "dim": 2, "chains": chains(1024)},
        {"name": "mlp 100-256-256-1", "energy": _seeded_mlp(100, (256, 256), 0), "dim": 100, "chains": chains(256)},
        {"name": "8-gaussian mixture", "energy": _eight_gaussians(), "dim": 2, "chains": chains(1024)},
    ]


def _bare_ula(energy: Energy, x0: torch.Tensor, steps: int, seed: int) -> Callable[[], torch.Tensor]:
    """A hand-written ULA loop in plain torch (the baseline)."""
    h = STEP_SIZE
    noise_scale = math.sqrt(2 * h)

    def run():
        g = torch.Generator().manual_seed(seed)
        x = x0.clone()
        for _ in range(steps):
            x.requires_grad_(True)
            u = energy(x).sum()
            grad = torch.autograd.grad(u, x)[0]
            x = x.detach() - h * grad + noise_scale * torch.randn(x.shape, generator=g)
        return x

    return run


def _bare_mala(energy: Energy, x0: torch.Tensor, steps: int, seed: int) -> Callable[[], torch.Tensor]:
    """A hand-written MALA loop in plain torch with a cached gradient (one gradient per step)."""
    h = STEP_SIZE

    def grad_and_energy(x):
        x = x.detach().requires_grad_(True)
        u = energy(x)
        return u.detach(), torch.autograd.grad(u.sum(), x)[0]

    def run():
        g = torch.Generator().manual_seed(seed)
        x = x0.clone()
        u, grad = grad_and_energy(x)
        for _ in range(steps):
            y = x - h * grad + math.sqrt(2 * h) * torch.randn(x.shape, generator=g)
            uy, gy = grad_and_energy(y)
            fwd = ((y - x + h * grad) ** 2).sum(1) / (4 * h)
            bwd = ((x - y + h * gy) ** 2).sum(1) / (4 * h)
            acc = torch.rand(u.shape, generator=g).log() < u - uy + fwd - bwd
            x = torch.where(acc[:, None], y, x)
            u = torch.where(acc, uy, u)
            grad = torch.where(acc[:, None], gy, grad)
        return x

    return run


def _bare_rwm(energy: Energy, x0: torch.Tensor, steps: int, seed: int) -> Callable[[], torch.Tensor]:
    """A hand-written random-walk Metropolis loop in plain torch (energy evaluations only)."""
    s = 0.5

    def run():
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = x0.clone()
            u = energy(x)
            for _ in range(steps):
                y = x + s * torch.randn(x.shape, generator=g)
                uy = energy(y)
                acc = torch.log(torch.rand(u.shape, generator=g)) < u - uy
                x = torch.where(acc[:, None], y, x)
                u = torch.where(acc, uy, u)
        return x

    return run


def _ebmlab(energy: Energy, sampler, x0: torch.Tensor, steps: int, seed: int) -> Callable[[], torch.Tensor]:
    def run():
        x, _ = sample(energy, sampler, x0, steps=steps, generator=seed)
        return x

    return run


def check_compile() -> None:
    """``ebmlab bench samplers --compile``: the suite times CPU tensors, where ``sample(..., compile=True)`` is
    refused (the driver's ConfigError gives the measured reason); a CUDA variant of the suite is not built."""
    x0 = torch.zeros(2, 2)
    sample(_eight_gaussians(), ULA(STEP_SIZE), x0, 1, generator=0, compile=True)  # raises on CPU
    raise ConfigError("--compile: the samplers suite times CPU tensors only; a CUDA variant is not built")


def run_sampler_bench(
    out_dir: Union[str, Path],
    quick: bool = False,
    repeats: Optional[int] = None,
    threads: int = 1,
    block_steps: Optional[int] = None,
    clock: Optional[str] = None,
) -> Dict[str, Any]:
    """Measure every continuous sampler's cost against bare torch loops; write ``samplers.md`` and
    ``samplers.json`` into ``out_dir`` and return the JSON content.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created if missing).
    quick : bool
        Tiny blocks, few chains and 2 rounds (for tests; the ratios are then only smoke values).
    repeats : int, optional
        Interleaved rounds per measurement (default 7; 2 when ``quick``).
    threads : int
        ``torch.set_num_threads`` during the measurements.
    block_steps : int, optional
        Gradient evaluations per timed block (default 200; 5 when ``quick``).
    clock : {"cpu", "wall"}, optional
        Timer (see :func:`ebmlab.bench.timing.interleaved_ratio`). Default ``"cpu"`` (process CPU
        time, robust to other processes sharing the cores) when ``threads == 1``, else ``"wall"``.
    """
    repeats = check_int("repeats", repeats if repeats is not None else (2 if quick else 7), minimum=1)
    threads = check_int("threads", threads, minimum=1)
    block = check_int("block_steps", block_steps if block_steps is not None else (5 if quick else 200), minimum=HMC_LEAPFROG)
    clock = clock if clock is not None else ("cpu" if threads == 1 else "wall")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cfg in _configs(quick):
        energy, chains, dim = cfg["energy"], cfg["chains"], cfg["dim"]
        x0 = torch.randn(chains, dim, generator=torch.Generator().manual_seed(1))
        baseline = _bare_ula(energy, x0, block, seed=2)
        hmc_steps = block // HMC_LEAPFROG
        methods = [
            ("ula", ULA(STEP_SIZE), block, block, baseline, block, "gradient evaluation", "bare ULA loop"),
            ("mala", MALA(STEP_SIZE), block, block, baseline, block, "gradient evaluation", "bare ULA loop"),
            ("mala", MALA(STEP_SIZE), block, block, _bare_mala(energy, x0, block, seed=2), block,
             "gradient evaluation", "bare MALA loop"),
            ("hmc (5 leapfrog)", HMC(STEP_SIZE, n_leapfrog=HMC_LEAPFROG), hmc_steps, hmc_steps * HMC_LEAPFROG,
             baseline, block, "gradient evaluation", "bare ULA loop"),
            ("kinetic_langevin", KineticLangevin(STEP_SIZE), block, block, baseline, block, "gradient evaluation",
             "bare ULA loop"),
            ("rwm", RandomWalkMetropolis(0.5), block, block, _bare_rwm(energy, x0, block, seed=2), block,
             "energy evaluation", "bare RWM loop"),
        ]
        for name, sampler, steps, units, base_fn, base_units, unit, base_name in methods:
            timing = interleaved_ratio(
                base_fn, _ebmlab(energy, sampler, x0, steps, seed=3), repeats=repeats, warmup=1,
                baseline_units=base_units, method_units=units, threads=threads, clock=clock,
            )
            key = name.split(" ")[0]
            target = TARGETS.get(key) if base_name == "bare ULA loop" and not quick else None
            rows.append({
                "energy": cfg["name"], "chains": chains, "sampler": name, "unit": unit, "baseline": base_name,
                "median": timing.median, "min": timing.min, "max": timing.max, "ratios": timing.ratios,
                "baseline_us_per_unit": 1e6 * timing.baseline_seconds_per_unit,
                "target": target, "meets_target": None if target is None else timing.median <= target,
            })
    result = {
        "bench": "samplers",
        "quick": quick,
        "threads": threads,
        "clock": clock,
        "repeats": repeats,
        "block_evaluations": block,
        "step_size": STEP_SIZE,
        "allocator_env": allocator_env(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "rows": rows,
    }
    (out / "samplers.json").write_text(json.dumps(result, indent=2))
    (out / "samplers.md").write_text(_markdown(result))
    return result


def _markdown(result: Dict[str, Any]) -> str:
    env = result["allocator_env"]
    lines = [
        "# Sampler cost against bare torch loops",
        "",
        "Cost per energy-gradient evaluation of `ebmlab.samplers.sample(...)` divided by that of the bare",
        "hand-written loop in the *baseline* column on the same energy (RWM: per energy evaluation),",
        f"measured in one run, interleaved (A, B, B, A, ...) over {result['repeats']} rounds of "
        f"{result['block_evaluations']} evaluations after one warm-up round; median and [min, max] of the",
        f"per-round ratios ({result['clock']} clock). torch {result['torch']}, {result['threads']} thread(s); glibc allocator pinned "
        f"(MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_): {'yes' if env['pinned'] else 'NO (ratios may swing)'}.",
    ]
    lines += [
        "",
        "The 8-Gaussians mixture has an analytic `energy_and_grad` (used by ebmlab's samplers) while the",
        "bare loop differentiates its `forward` by autograd: ratios below 1 there measure that choice.",
    ]
    if result["quick"]:
        lines += ["", "**Quick mode**: tiny blocks and few chains; these ratios are smoke values, not measurements."]
    lines += [
        "",
        "| energy | chains | sampler | per | baseline | ratio (median) | range | target | bare µs per unit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        target = "" if r["target"] is None else f"<= {r['target']:.2f} ({'met' if r['meets_target'] else 'MISSED'})"
        lines.append(
            f"| {r['energy']} | {r['chains']} | {r['sampler']} | {r['unit']} | {r['baseline']} | {r['median']:.3f} | "
            f"[{r['min']:.3f}, {r['max']:.3f}] | {target} | {r['baseline_us_per_unit']:.1f} |"
        )
    return "\n".join(lines) + "\n"
