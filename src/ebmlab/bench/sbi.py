r"""``ebmlab bench sbi`` and the engine behind ``ebmlab sbi TASK``: simulation-based inference on the sbibm tasks.

For a task, a number of simulations and a method (estimator × objective): simulate (θ, x) pairs from the prior,
fit :class:`ebmlab.sbi.NLE` or :class:`ebmlab.sbi.NPE`, draw posterior samples for observations 1..k in one batched
chain run, and score each against ebmlab's reference posterior by C2ST (sbibm's protocol,
:func:`ebmlab.metrics.c2st`; 0.5 is perfect). Reported: C2ST mean ± std over observations, wall time of training
and of sampling, R̂/ESS, and the published means (Lueckmann et al. 2021; Glaser et al. 2022) beside ours.
Observations are ebmlab's own (fixed seeds), not sbibm's files, so the comparison is in distribution.

The suite also measures batched sampling: posterior draws for k observations in one run against k separate runs
with the same settings (interleaved, after a warm-up; median and range of the time ratio).
"""
from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .._core.errors import ConfigError

SIM_INDEX = {1000: 0, 10_000: 1, 100_000: 2}
#: the estimators' default network (shown in the table only when a row used another)
DEFAULT_HIDDEN = (128, 128, 128)


def published_value(task, method: str, n_sims: int) -> Optional[float]:
    row = task.published.get(method)
    i = SIM_INDEX.get(int(n_sims))
    return None if row is None or i is None else row[i]


def run_case(task_name: str, n_sims: int, *, estimator: str = "nle", objective: str = "ed",
             observations: Sequence[int] = tuple(range(1, 11)), n_samples: int = 10_000, steps: int = 30_000,
             seed: int = 0, sampler: str = "hmc", c2st_samples: Optional[int] = None, plot_dir: Optional[Path] = None,
             hidden: Sequence[int] = DEFAULT_HIDDEN, objective_params: Optional[dict] = None,
             sample_kwargs: Optional[dict] = None, ensemble_size: int = 1) -> Dict[str, Any]:
    """Fit, sample all ``observations`` at once and score them; returns a JSON-ready dict. ``objective_params`` go to
    the estimator, ``sample_kwargs`` to ``sample_posterior`` (``chains_per_observation``, ``n_proposals``, ...);
    ``ensemble_size`` > 1 fits that many networks on the same simulations (the estimator's ``ensemble_size``).
    For a task with exact symmetries (two_moons' mirror-image crescents) the share of draws in the canonical mode
    is reported for ours and for the reference (``mode_weight``, ``mode_weight_reference``)."""
    import torch

    from ..metrics.c2st import c2st
    from ..sbi import NLE, NPE, get_task

    task = get_task(task_name)
    cls = {"nle": NLE, "npe": NPE}[estimator]
    g = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(int(n_sims), generator=g)
    x = task.simulate(theta, generator=g)
    t0 = time.perf_counter()
    est = cls(objective=objective, steps=steps, random_state=seed, hidden=hidden,
              objective_params=objective_params, ensemble_size=ensemble_size).fit(theta, x, prior=task)
    t_train = time.perf_counter() - t0
    x_o = torch.stack([task.observation(i) for i in observations])
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post, info = est.sample_posterior(x_o, n_samples, generator=seed + 1, sampler=sampler, return_info=True,
                                          labels=list(observations), **(sample_kwargs or {}))
    t_sample = time.perf_counter() - t0
    m = n_samples if c2st_samples is None else min(n_samples, c2st_samples)
    scores, refs = [], []
    for j, i in enumerate(observations):
        ref = task.reference_posterior(i, n_samples, generator=10_000 + i)
        refs.append(ref)
        scores.append(c2st(post[j, :m], ref[:m].float(), generator=1))
    def mode_weight(th):
        th = th.double()
        return float((task.canonical(th) == th).all(-1).double().mean())

    weights = [mode_weight(post[j]) for j in range(len(observations))] if task.symmetries else None
    weights_ref = [mode_weight(r) for r in refs] if task.symmetries else None
    if plot_dir is not None:
        plot_dir = Path(plot_dir)
        plot_dir.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(observations):
            pair_plot(post[j], refs[j], plot_dir / f"{task_name}_{estimator}_{objective}_{n_sims}_obs{i}.png",
                      title=f"{task_name} obs {i}: {estimator.upper()}-{objective} (blue) vs reference (orange), "
                            f"C2ST {scores[j]:.3f}")
    return {"task": task_name, "simulations": int(n_sims), "estimator": estimator, "objective": objective,
            "observations": list(observations), "c2st": scores, "c2st_mean": statistics.fmean(scores),
            "c2st_std": statistics.stdev(scores) if len(scores) > 1 else 0.0, "train_s": t_train, "sample_s": t_sample,
            "n_samples": n_samples, "c2st_samples": m, "steps": steps, "ensemble_size": int(ensemble_size),
            "objective_params": _jsonable(objective_params),
            "hidden": list(hidden), "sample_kwargs": sample_kwargs or {}, "mode_weight": weights,
            "mode_weight_reference": weights_ref,
            "rhat_max": [d.rhat_max for d in info.per_observation],
            "ess_bulk_min": [d.ess_bulk_min for d in info.per_observation],
            "init_ess": [d.init_ess for d in info.per_observation],
            "init_proposals": [d.init_proposals for d in info.per_observation],
            "warnings": [str(w.message) for w in caught],
            "published": {k: published_value(task, k, n_sims) for k in task.published}}


def _jsonable(params):
    return None if params is None else {k: (v if isinstance(v, (int, float, str, bool, list, tuple)) else repr(v))
                                        for k, v in params.items()}


def pair_plot(samples, reference, path: Path, title: str = "", max_points: int = 2000) -> Path:
    """Lower-triangle pair plot (scatter) of posterior samples against reference samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    a = samples[:max_points].double().numpy()
    b = reference[:max_points].double().numpy()
    d = a.shape[1]
    fig, axes = plt.subplots(d, d, figsize=(1.8 * d + 1, 1.8 * d + 1), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            # tick labels on the outer axes only: θ_j along the bottom row, θ_i down the first column (not on the
            # diagonal's histograms, whose y axis is a density)
            ax.tick_params(labelsize=6, length=2)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(3))
            if i != d - 1:
                ax.tick_params(labelbottom=False)
            if j != 0:
                ax.tick_params(labelleft=False)
            if i == j:
                ax.set_yticks([])
            if j > i:
                ax.axis("off")
            elif i == j:
                ax.hist(b[:, i], bins=40, color="tab:orange", alpha=0.6, density=True)
                ax.hist(a[:, i], bins=40, color="tab:blue", alpha=0.6, density=True)
            else:
                ax.scatter(b[:, j], b[:, i], s=1, color="tab:orange", alpha=0.3)
                ax.scatter(a[:, j], a[:, i], s=1, color="tab:blue", alpha=0.3)
            if i == d - 1:
                ax.set_xlabel(f"θ{j + 1}", fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(f"θ{i + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def batched_vs_separate(task_name: str = "two_moons", n_sims: int = 1000, k: int = 10, n_samples: int = 10_000,
                        repeats: int = 3, steps: int = 300, seed: int = 0) -> Dict[str, Any]:
    """Time posterior sampling of k observations in one batched run vs k separate runs (same fitted NLE, same
    chains per observation, burn-in and thinning); interleaved repeats after a warm-up; median and range."""
    import torch

    from ..sbi import NLE, get_task

    task = get_task(task_name)
    g = torch.Generator().manual_seed(seed)
    theta = task.sample_prior(n_sims, generator=g)
    est = NLE(steps=steps, random_state=seed, hidden=(64, 64)).fit(theta, task.simulate(theta, generator=g), prior=task)
    x_o = torch.stack([task.observation(i) for i in range(1, k + 1)])
    kw = dict(warn=False, chains_per_observation=100, burn_in=200, thin=2)

    def batched():
        est.sample_posterior(x_o, n_samples, generator=1, **kw)

    def separate():
        for j in range(k):
            est.sample_posterior(x_o[j], n_samples, generator=1, **kw)

    batched()
    separate()  # warm-up
    tb, ts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); batched(); tb.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); separate(); ts.append(time.perf_counter() - t0)
    ratios = [s / b for s, b in zip(ts, tb)]
    return {"task": task_name, "k": k, "n_samples": n_samples, "batched_s": statistics.median(tb),
            "separate_s": statistics.median(ts), "speedup_median": statistics.median(ratios),
            "speedup_range": [min(ratios), max(ratios)], "repeats": repeats}


def format_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| task | sims | method | C2ST mean ± std | published (NLE / NPE / SNLE / AUNLE) | train s | sample s | max R-hat |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = " / ".join("–" if r["published"].get(k) is None else f"{r['published'][k]:.3f}" for k in ("NLE", "NPE", "SNLE", "AUNLE"))
        k = r.get("ensemble_size", 1)
        opts = ", ".join(f"{a} = {b}" for a, b in (r.get("objective_params") or {}).items())
        hidden = r.get("hidden")
        method = (f"{r['estimator'].upper()}-{r['objective']}" + (f" ({opts})" if opts else "")
                  + (f", hidden {tuple(hidden)}" if hidden and tuple(hidden) != DEFAULT_HIDDEN else "")
                  + (f", ensemble of {k}" if k > 1 else ""))
        lines.append(f"| {r['task']} | {r['simulations']} | {method} | "
                     f"{r['c2st_mean']:.3f} ± {r['c2st_std']:.3f} | {pub} | {r['train_s']:.0f} | {r['sample_s']:.0f} | "
                     f"{max(r['rhat_max']):.2f} |")
    return "\n".join(lines)


#: the best measured configuration per task at 10⁴ simulations (the default, non-quick suite): task, simulations,
#: estimator, objective, options of ``run_case`` (README, "Simulation-based inference"; measured C2ST two_moons
#: .548 with a 256-wide network (128-wide .555, an ensemble of three of those .553), slcp .728 with 5 networks
#: against .771 with one)
HEADLINE = [("two_moons", 10_000, "nle", "ed", {"ensemble_size": 1, "hidden": (256, 256, 256)}),
            ("slcp", 10_000, "nle", "ed", {"ensemble_size": 5, "objective_params": {"t": 0.05, "m": 16}})]


def run_sbi_bench(out: Path, quick: bool = False, full: bool = False) -> Dict[str, Any]:
    """The suite: quick = two_moons at 10³ simulations, NLE-ED, 3 observations, 2,000 draws, plus the batched timing;
    default = the :data:`HEADLINE` rows (two_moons and slcp at 10⁴ simulations with their best measured settings,
    10 observations, 10,000 draws); ``full`` = those and every task × {10³, 10⁴, 10⁵} × {NLE, NPE} ×
    {ed, nce, dsm, pcd} with default options."""
    from ..sbi import task_names

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if quick and full:
        raise ConfigError("the sbi suite takes --quick or --full, not both")
    if quick:
        cases = [("two_moons", 1000, "nle", "ed", {})]
        kw = dict(observations=(1, 2, 3), n_samples=2000, steps=1000, hidden=(64, 64))
        timing = batched_vs_separate(n_sims=1000, k=10, n_samples=1000, repeats=2, steps=200)
    else:
        cases = list(HEADLINE)
        if full:
            cases += [(t, n, e, o, {}) for t in task_names() for n in (1000, 10_000, 100_000) for e in ("nle", "npe")
                      for o in ("ed", "nce", "dsm", "pcd") if not (e == "npe" and o == "pcd")]
        kw = dict(n_samples=10_000, steps=30_000, c2st_samples=10_000)
        timing = batched_vs_separate(n_sims=10_000, k=10, n_samples=10_000, repeats=3)
    rows = [run_case(t, n, estimator=e, objective=o, plot_dir=out / "pairs", **kw, **opts) for t, n, e, o, opts in cases]
    md = ["# ebmlab bench sbi" + (" (--quick)" if quick else " (--full)" if full else ""), "",
          "C2ST (sbibm protocol; 0.5 is perfect) of posterior samples against ebmlab's reference posteriors, mean ± std "
          "over observations. Observations are ebmlab's (fixed seeds), not sbibm's files: published numbers are "
          "comparable in distribution only.", "", format_table(rows), "",
          f"Batched sampling: {timing['k']} observations × {timing['n_samples']} draws in one run "
          f"{timing['batched_s']:.1f} s vs {timing['k']} separate runs {timing['separate_s']:.1f} s: speed-up "
          f"{timing['speedup_median']:.2f}× (range {timing['speedup_range'][0]:.2f}–{timing['speedup_range'][1]:.2f}, "
          f"{timing['repeats']} interleaved repeats)."]
    (out / "sbi.md").write_text("\n".join(md) + "\n")
    (out / "sbi.json").write_text(json.dumps({"rows": rows, "batched": timing}, indent=2))
    files = [str(out / "sbi.md"), str(out / "sbi.json")] + sorted(str(p) for p in (out / "pairs").glob("*.png"))
    return {"files": files, "rows": rows, "batched": timing}
