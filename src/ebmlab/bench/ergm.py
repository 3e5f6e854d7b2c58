"""``ebmlab bench ergm``: every ERGM estimator on classic small networks, in one table.

Graphs: networkx's Florentine marriage network (15 nodes), R's ``flomarriage`` (the same plus the isolate
Pucci, 16 nodes) and Zachary's karate club (34 nodes). Models: ``edges``, ``edges + triangle``,
``edges + kstar(2)``, ``edges + gwesp(0.5)``. Methods: mple, mcmc_mle, cd, ed.

Reported: coefficients, standard errors, log-likelihood (where computed), wall time, convergence and
degeneracy flags; the MH sampler's toggles per second (TNT and random proposals); MCMC-MLE stability over
three seeds (spread of the estimates against their standard errors); and the exact check for
``flomarriage ~ edges``: logit(20/120) = -1.6094, SE sqrt(1/(120 p (1-p))) = 0.2449.
Speed (sections "Compiled kernels vs ergmx" and "Scaling"): the compile time of the numba kernels is measured
once, first, and reported on its own. When ``ergmx`` (a Rust ERGM package; a benchmark-only extra, never a
dependency) is importable, ebmlab and ergmx fit the same model to the same graph in the same process, alternately
(A B B A ..., after one warm-up fit of each; the seed changes every round, the same on both sides), and the
median and range of the per-round wall-time ratios ebmlab / ergmx are reported (CPU-time ratios too: the machine
is shared, so wall times are noisy; the load average is recorded). Scaling: Erdős–Rényi G(n, 5n) and
Barabási–Albert (m = 5) graphs of 10^3, 10^4 and 10^5 nodes (mean degree ~10), ``edges + gwesp(0.5, fixed=TRUE)``,
MPLE (case-control above 2^23 dyads) and MCMC-MLE wall time, toggles per second and peak RSS, each size in a fresh
subprocess (the peak-RSS mark is reset after the imports and the kernels' compilation, so the peak measured is the
graph's and the fit's own memory on top of the process's RSS at that point).

Writes ``ergm.md`` and ``ergm.json`` to ``out_dir``.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import networkx as nx
import numpy as np

__all__ = ["run_ergm_bench", "bench_graphs"]

MODELS = ("edges", "edges + triangle", "edges + kstar(2)", "edges + gwesp(0.5)")
METHODS = ("mple", "mcmc_mle", "cd", "ed")


def bench_graphs() -> Dict[str, nx.Graph]:
    """The three benchmark graphs (flomarriage = networkx's Florentine graph plus the isolate Pucci)."""
    flo = nx.florentine_families_graph()
    flomarriage = flo.copy()
    flomarriage.add_node("Pucci")
    return {"florentine15": flo, "flomarriage16": flomarriage, "karate34": nx.karate_club_graph()}


def _options(method: str, quick: bool) -> Dict[str, Any]:
    if not quick:
        return {}
    return {"mcmc_mle": {"n_samples": 512, "final_sample_factor": 2, "n_bridges": 4},
            "cd": {"n_samples": 512, "se_n_samples": 512},
            "ed": {"se_n_samples": 512}}.get(method, {})


def _fit_row(graph_name: str, graph: nx.Graph, formula: str, method: str, seed: int, quick: bool) -> Dict[str, Any]:
    from ebmlab.ergm import ERGM

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        fit = ERGM(formula).fit(graph, method=method, seed=seed, **_options(method, quick))
        seconds = time.perf_counter() - t0
    row = {"graph": graph_name, "model": formula, "method": method, "seed": seed, "seconds": seconds,
           **{k: v for k, v in fit.as_dict().items() if k not in ("seconds", "notes", "formula", "method")}}
    row["warnings"] = sorted({str(w.message).split(";")[0][:160] for w in caught
                              if issubclass(w.category, UserWarning)})
    row["iterations"] = fit.diagnostics.get("iterations")
    return row


def _sampler_speed(graphs: Dict[str, nx.Graph], quick: bool) -> List[Dict[str, Any]]:
    from ebmlab.ergm import ERGM

    rows = []
    for name, g in graphs.items():
        for formula in ("edges + triangle", "edges + gwesp(0.5)"):
            model = ERGM(formula)
            theta = model.fit(g, method="mple").coef
            for proposal in ("tnt", "random"):
                for chains in ((64,) if quick else (16, 64, 256)):
                    steps = 1000 if quick else 3000
                    sim = model.simulate(g, theta, n_samples=chains, burn_in=steps - 1, thin=1, seed=0,
                                         n_chains=chains, proposal=proposal)
                    rows.append({"graph": name, "model": formula, "proposal": proposal, "chains": chains,
                                 "toggles_per_second": sim.toggles_per_second,
                                 "acceptance_rate": sim.acceptance_rate})
    return rows


def _fmt_coef(row: Dict[str, Any]) -> str:
    return "; ".join(f"{c:.3f} ({'NA' if s is None else f'{s:.3f}'})" for c, s in zip(row["coef"], row["stderr"]))


def run_ergm_bench(out_dir: str, quick: bool = False) -> Dict[str, Any]:
    """Run the ERGM benchmark and write ``ergm.md`` / ``ergm.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str
    quick : bool
        Smaller Monte Carlo samples, fewer timing rounds and no 10^5-node graphs (a few minutes on two CPU
        cores) instead of the estimators' defaults.

    Returns
    -------
    dict
        ``{"files": [...], "fits": [...], "sampler": [...], "stability": [...], "checks": {...},
        "versus_ergmx": {...}, "scaling": [...], "compile": {...}, "quick": bool}``.
    """
    from ebmlab.ergm import kernels

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graphs = bench_graphs()
    t_start = time.perf_counter()
    # compile (or load from numba's cache) once, before anything is timed
    compile_info = {"seconds": kernels.compile_kernels() if kernels.AVAILABLE else None,
                    "numba": getattr(kernels.numba, "__version__", None)}
    fits = []
    for gname, g in graphs.items():
        for formula in MODELS:
            for method in METHODS:
                fits.append(_fit_row(gname, g, formula, method, 1, quick))
    # MCMC-MLE stability over seeds
    stability = []
    for gname in ("flomarriage16",) if quick else ("flomarriage16", "karate34"):
        for formula in ("edges + triangle", "edges + gwesp(0.5)"):
            rows = [_fit_row(gname, graphs[gname], formula, "mcmc_mle", s, quick) for s in (11, 12, 13)]
            coefs = np.array([r["coef"] for r in rows])
            stability.append({
                "graph": gname, "model": formula, "seeds": [11, 12, 13], "coef": coefs.tolist(),
                "spread_sd": coefs.std(0, ddof=1).tolist(), "range": (coefs.max(0) - coefs.min(0)).tolist(),
                "mean_stderr": np.mean([r["stderr"] for r in rows], 0).tolist(),
                "mean_mcmc_se": np.mean([r["mcmc_se"] for r in rows], 0).tolist(),
                "seconds": [r["seconds"] for r in rows], "converged": [r["converged"] for r in rows],
                "degenerate": [r["degenerate"] for r in rows],
            })
    sampler = _sampler_speed(graphs, quick)
    edges_fit = next(r for r in fits if r["graph"] == "flomarriage16" and r["model"] == "edges"
                     and r["method"] == "mple")
    p = 20 / 120
    checks = {"flomarriage_edges_coef": edges_fit["coef"][0], "expected_coef": math.log(p / (1 - p)),
              "flomarriage_edges_se": edges_fit["stderr"][0], "expected_se": math.sqrt(1 / (120 * p * (1 - p)))}
    checks["edges_only_exact"] = (abs(checks["flomarriage_edges_coef"] - checks["expected_coef"]) < 1e-8
                                  and abs(checks["flomarriage_edges_se"] - checks["expected_se"]) < 1e-8)
    versus = _versus_ergmx(graphs, quick)
    scaling = _scaling(quick)
    result = {"quick": quick, "compile": compile_info, "load_average": _load(), "fits": fits,
              "stability": stability, "sampler": sampler, "checks": checks, "versus_ergmx": versus,
              "scaling": scaling, "total_seconds": time.perf_counter() - t_start}
    (out / "ergm.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "ergm.md").write_text(_markdown(result))
    result["files"] = [str(out / "ergm.json"), str(out / "ergm.md")]
    return result


def _markdown(res: Dict[str, Any]) -> str:
    lines = ["# ERGM benchmark" + (" (quick)" if res["quick"] else ""), "",
             "Coefficients with standard errors in parentheses, in formula order. mcmc_mle SEs include the MCMC "
             "error; cd/ed SEs are the MLE's asymptotic SEs at their estimate. Flags: `NC` not converged, "
             "`DEG` near-degenerate simulations. Seed 1 for every fit.", "",
             "| graph | model | method | coef (SE) | loglik | time s | flags |", "|---|---|---|---|---|---|---|"]
    for r in res["fits"]:
        ll = "" if r["loglik"] is None else f"{r['loglik']:.2f}"
        flags = " ".join(f for f, on in (("NC", not r["converged"]), ("DEG", r["degenerate"])) if on)
        lines.append(f"| {r['graph']} | {r['model']} | {r['method']} | {_fmt_coef(r)} | {ll} | "
                     f"{r['seconds']:.2f} | {flags} |")
    c = res["checks"]
    lines += ["", f"Exact check, flomarriage ~ edges: coef {c['flomarriage_edges_coef']:.6f} (expected "
                  f"{c['expected_coef']:.6f}), SE {c['flomarriage_edges_se']:.6f} (expected {c['expected_se']:.6f}): "
                  f"{'OK' if c['edges_only_exact'] else 'MISMATCH'}", "",
              "## MCMC-MLE stability over seeds 11, 12, 13", "",
              "| graph | model | coef per seed | sd across seeds | mean SE | mean MCMC SE | time s | flags |",
              "|---|---|---|---|---|---|---|---|"]
    for s in res["stability"]:
        per = " / ".join("(" + ", ".join(f"{v:.3f}" for v in row) + ")" for row in s["coef"])
        fmt = lambda v: ", ".join(f"{x:.3f}" for x in v)
        flags = " ".join(("NC" if not c else "") + ("DEG" if d else "") or "ok"
                         for c, d in zip(s["converged"], s["degenerate"]))
        lines.append(f"| {s['graph']} | {s['model']} | {per} | {fmt(s['spread_sd'])} | {fmt(s['mean_stderr'])} | "
                     f"{fmt(s['mean_mcmc_se'])} | {fmt(s['seconds'])} | {flags} |")
    lines += ["", "## Sampler throughput (one process, compiled kernels)", "",
              "| graph | model | proposal | chains | toggles/s | acceptance |", "|---|---|---|---|---|---|"]
    for s in res["sampler"]:
        lines.append(f"| {s['graph']} | {s['model']} | {s['proposal']} | {s['chains']} | "
                     f"{s['toggles_per_second']:,.0f} | {s['acceptance_rate']:.3f} |")
    warn = [(r["graph"], r["model"], r["method"], w) for r in res["fits"] for w in r["warnings"]]
    if warn:
        lines += ["", "## Warnings raised", ""] + [f"- {g} / {m} / {me}: {w}" for g, m, me, w in warn]
    lines += _md_speed(res)
    lines += ["", f"Total wall time {res['total_seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# compiled kernels: head to head with ergmx, and scaling to 10^5 nodes
# ----------------------------------------------------------------------------------------------------------

GW = "edges + gwesp(0.5, fixed=TRUE)"

#: MCMC settings of the 1,000-node MCMC-MLE (both packages' defaults scale badly there: ebmlab's thin is one
#: proposal per two dyads): ~8 E proposals of burn-in, E / 2 between draws, 512 draws over 8 chains
MCMC_1000 = {"n_samples": 512, "n_chains": 8, "burn_in": 40_000, "thin": 2_500, "warm_burn_in": 10_000}


def _load() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _large_graph(kind: str, n: int, seed: int = 1):
    import networkx as nx

    if kind == "er":
        return nx.gnm_random_graph(n, 5 * n, seed=seed)
    if kind == "pa":
        return nx.barabasi_albert_graph(n, 5, seed=seed)
    raise ValueError(kind)


def _ab_rounds(a: Callable[[int], Any], b: Callable[[int], Any], rounds: int, warmup: bool = True) -> Dict[str, Any]:
    """One warm-up call of each (unless ``warmup`` is False: for fits of a minute, whose kernels the earlier cases
    on the same graph have warmed), then ``rounds`` rounds A B / B A alternately (seed = round); per-round ratios
    a/b of wall and CPU time, median and range."""
    if warmup:
        a(1000)
        b(1000)
    wall = {"a": [], "b": []}
    cpu = {"a": [], "b": []}
    last = {}
    for r in range(rounds):
        for side in (("a", "b") if r % 2 == 0 else ("b", "a")):
            fn = a if side == "a" else b
            w0, c0 = time.perf_counter(), time.process_time()
            last[side] = fn(r)
            wall[side].append(time.perf_counter() - w0)
            cpu[side].append(time.process_time() - c0)
    rw = [x / y for x, y in zip(wall["a"], wall["b"])]
    rc = [x / y for x, y in zip(cpu["a"], cpu["b"])]
    return {"ebmlab_seconds": wall["a"], "ergmx_seconds": wall["b"], "ebmlab_cpu": cpu["a"], "ergmx_cpu": cpu["b"],
            "ratio_median": statistics.median(rw), "ratio_min": min(rw), "ratio_max": max(rw),
            "cpu_ratio_median": statistics.median(rc), "cpu_ratio_min": min(rc), "cpu_ratio_max": max(rc),
            "last": last}


def _versus_ergmx(graphs: Dict[str, Any], quick: bool, only: Optional[Callable[[str, str], bool]] = None
                  ) -> Dict[str, Any]:
    try:
        import ergmx
    except ImportError:
        return {"skipped": "ergmx is not installed (pip install ergmx: a benchmark-only extra)"}
    from ebmlab.ergm import ERGM

    flo, karate = graphs["flomarriage16"], graphs["karate34"]
    er, pa = _large_graph("er", 1000), _large_graph("pa", 1000)
    rounds = 3 if quick else 7
    # ergmx runs its 2 chains on 2 threads; ebmlab's MCMC-MLE rows are given with n_jobs = 1 and 2 threads
    jobs = min(2, os.cpu_count() or 1)
    cases = [
        ("flomarriage16", flo, "edges + triangle", "mcmc_mle", {}, {}, rounds, 1),
        ("flomarriage16", flo, "edges + triangle", "mcmc_mle", {}, {}, rounds, jobs),
        ("karate34", karate, GW, "mcmc_mle", {}, {}, rounds, jobs),
        ("karate34", karate, GW, "mple", {}, {}, rounds, 1),
        ("er1000", er, GW, "mple", {}, {}, rounds, 1),
        ("pa1000", pa, GW, "mple", {}, {}, rounds, 1),
        ("er1000", er, GW, "mcmc_mle", MCMC_1000, {}, 2 if quick else 3, jobs),
    ]
    if only is not None:
        cases = [c for c in cases if only(c[0], c[3])]
    long_fits = {("er1000", "mcmc_mle")}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, g, formula, method, ours, theirs, r, n_jobs in cases:
            model = ERGM(formula, n_jobs=n_jobs)

            def a(seed, model=model, g=g, method=method, ours=ours):
                opts = {"loglik": False, **ours} if method == "mcmc_mle" else {}
                fit = model.fit(g, method=method, seed=seed, **opts)
                return {"coef": fit.coef.tolist(), "stderr": fit.stderr.tolist(), "converged": bool(fit.converged),
                        "backend": fit.diagnostics.get("backend"),
                        "toggles_per_second": fit.diagnostics.get("toggles_per_second")}

            def b(seed, g=g, formula=formula, method=method, theirs=theirs):
                est = "MLE" if method == "mcmc_mle" else "MPLE"
                fit = ergmx.ergm(g, formula, estimate=est, seed=seed, eval_loglik=False, **theirs)
                coef = fit.coef
                vals = list(coef.values()) if isinstance(coef, dict) else list(coef)
                se = fit.stderr
                ses = list(se.values()) if isinstance(se, dict) else list(se)
                return {"coef": [float(v) for v in vals], "stderr": [float(v) for v in ses],
                        "converged": bool(getattr(fit, "converged", True))}

            res = _ab_rounds(a, b, r, warmup=(name, method) not in long_fits)
            last = res.pop("last")
            rows.append({"graph": name, "model": formula, "method": method, "rounds": r, "ebmlab_options": ours,
                         "ebmlab_n_jobs": n_jobs,
                         "ebmlab": last["a"], "ergmx": last["b"], **res})
    return {"ergmx_version": getattr(ergmx, "__version__", None), "cases": rows}


def _status_kb(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> float:
    """Current RSS in MB, after resetting the kernel's peak-RSS mark (Linux ``/proc/self/clear_refs`` = 5) so that
    the peak measured next excludes the imports and the compiler's own peak."""
    import resource

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (_status_kb("VmRSS") or 0.0) / 1024


def _peak_rss() -> float:
    """Peak RSS in MB since :func:`_reset_peak_rss` (VmHWM; getrusage's lifetime peak where /proc is missing)."""
    import resource

    hwm = _status_kb("VmHWM")
    return hwm / 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scaling_worker(kind: str, n: int, mcmc: bool) -> Dict[str, Any]:
    """One scaling measurement (run in a fresh process by :func:`_scaling`): RSS after imports, graph generation,
    MPLE and (optionally) a short MCMC-MLE of ``edges + gwesp(0.5)``, peak RSS."""
    from ebmlab.ergm import ERGM, kernels

    kernels.compile_kernels()
    rss0 = _reset_peak_rss()
    t0 = time.perf_counter()
    g = _large_graph(kind, n)
    out: Dict[str, Any] = {"kind": kind, "n_nodes": n, "n_edges": g.number_of_edges(),
                           "max_degree": max(d for _, d in g.degree()), "generate_seconds": time.perf_counter() - t0,
                           "rss_after_imports_mb": rss0}
    model = ERGM(GW)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, c0 = time.perf_counter(), time.process_time()
        fit = model.fit(g, method="mple", seed=1)
        out["mple_seconds"] = time.perf_counter() - t0
        out["mple_cpu_seconds"] = time.process_time() - c0
        out["mple"] = {"coef": fit.coef.tolist(), "stderr": fit.stderr.tolist(),
                       "n_controls": fit.diagnostics.get("n_controls"), "backend": fit.diagnostics.get("backend")}
        if mcmc:
            E = g.number_of_edges()
            opts = {"n_samples": 64, "n_chains": 4, "max_iter": 3, "burn_in": 4 * max(E, n),
                    "thin": max(16, E // 4), "warm_burn_in": max(E, n), "loglik": False}
            t0, c0 = time.perf_counter(), time.process_time()
            fit2 = model.fit(g, method="mcmc_mle", seed=1, **opts)
            out["mcmc_seconds"] = time.perf_counter() - t0
            out["mcmc_cpu_seconds"] = time.process_time() - c0
            d = fit2.diagnostics
            out["mcmc"] = {"coef": fit2.coef.tolist(), "stderr": fit2.stderr.tolist(), "converged": fit2.converged,
                           "iterations": d.get("iterations"), "options": opts,
                           "toggles_per_second": d.get("toggles_per_second"), "backend": d.get("backend")}
    out["warnings"] = sorted({str(w.message)[:160] for w in caught})
    out["peak_rss_mb"] = _peak_rss()
    out["rss_above_imports_mb"] = out["peak_rss_mb"] - rss0
    out["n_dyads"] = int(n) * (int(n) - 1) // 2
    return out


def _scaling(quick: bool) -> List[Dict[str, Any]]:
    sizes = (1000, 10_000) if quick else (1000, 10_000, 100_000)
    rows = []
    env = dict(os.environ)
    for kind in ("er", "pa"):
        for n in sizes:
            code = ("import json, sys; from ebmlab.bench.ergm import scaling_worker; "
                    f"print(json.dumps(scaling_worker({kind!r}, {n}, True)))")
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                  timeout=3600)
            if proc.returncode != 0:
                rows.append({"kind": kind, "n_nodes": n, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["process_seconds"] = time.perf_counter() - t0
            rows.append(row)
    return rows


def _md_speed(res: Dict[str, Any]) -> List[str]:
    c = res["compile"]
    lines = ["", "## Compiled kernels", "",
             f"numba {c.get('numba')}: compiling (or loading from numba's cache) every kernel took "
             f"{c['seconds']:.1f} s once, before any timing below." if c.get("seconds") is not None
             else "numba is not installed: the numpy reference path was used.",
             f"Load average at the end (1, 5, 15 min): {res.get('load_average')} (a shared machine: ratios measured "
             "in one interleaved run are what counts).", ""]
    v = res["versus_ergmx"]
    if "skipped" in v:
        lines += [f"ergmx comparison skipped: {v['skipped']}", ""]
    else:
        lines += [f"### ebmlab vs ergmx {v.get('ergmx_version')} (same process, alternating rounds after a warm-up)",
                  "", "| graph | model | method | ebmlab threads | rounds | ebmlab s (median) | ergmx s (median) | "
                  "wall ratio median "
                  "[min, max] | CPU ratio median [min, max] | ebmlab coef (SE) | ergmx coef (SE) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in v["cases"]:
            fmt = lambda d: "; ".join(f"{a:.3f} ({b:.3f})" for a, b in zip(d["coef"], d["stderr"]))
            lines.append(f"| {r['graph']} | {r['model']} | {r['method']} | {r.get('ebmlab_n_jobs', 1)} | {r['rounds']} | "
                         f"{statistics.median(r['ebmlab_seconds']):.3f} | {statistics.median(r['ergmx_seconds']):.3f} | "
                         f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] | "
                         f"{r['cpu_ratio_median']:.2f} [{r['cpu_ratio_min']:.2f}, {r['cpu_ratio_max']:.2f}] | "
                         f"{fmt(r['ebmlab'])} | {fmt(r['ergmx'])} |")
        lines += ["", f"ebmlab's 1,000-node MCMC-MLE settings: {MCMC_1000}; ergmx runs its defaults (2 chains on "
                      "2 threads). Ratios < 1: ebmlab faster.", ""]
    lines += ["### Scaling (edges + gwesp(0.5, fixed=TRUE); one fresh process per row)", "",
              "| graph | nodes | ties | max degree | MPLE s (CPU s) | MPLE controls | MCMC-MLE s (CPU s) | iterations | toggles/s (final sample) | "
              "peak RSS MB | RSS above imports MB | MPLE coef (SE) | MCMC-MLE coef (SE) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["scaling"]:
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['n_nodes']} | error: {r['error']} |")
            continue
        mc = r.get("mcmc", {})
        fmt = lambda d: "; ".join(f"{a:.3f} ({b:.3f})" for a, b in zip(d["coef"], d["stderr"])) if d else ""
        lines.append(f"| {r['kind']} | {r['n_nodes']:,} | {r['n_edges']:,} | {r['max_degree']} | "
                     f"{r['mple_seconds']:.2f} ({r['mple_cpu_seconds']:.2f}) | {r['mple']['n_controls'] or 'all dyads'} | "
                     f"{r.get('mcmc_seconds', float('nan')):.1f} ({r.get('mcmc_cpu_seconds', float('nan')):.1f}) | "
                     f"{mc.get('iterations', '')} | "
                     f"{mc.get('toggles_per_second') or float('nan'):,.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['rss_above_imports_mb']:.0f} | {fmt(r['mple'])} | {fmt(mc)} |")
    lines += ["", "MCMC-MLE here: 4 chains, 64 draws per iteration, at most 3 iterations, burn-in 4 max(E, n), "
                  "thin E/4 (a short fit whose purpose is the time and memory figures; see `converged` in ergm.json)."]
    return lines
