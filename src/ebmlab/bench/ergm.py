"""``ebmlab bench ergm``: every ERGM estimator on classic small networks, in one table.

Graphs: networkx's Florentine marriage network (15 nodes), R's ``flomarriage`` (the same plus the isolate
Pucci, 16 nodes) and Zachary's karate club (34 nodes). Models: ``edges``, ``edges + triangle``,
``edges + kstar(2)``, ``edges + gwesp(0.5)``. Methods: mple, mcmc_mle, cd, ed.

Reported: coefficients, standard errors, log-likelihood (where computed), wall time, convergence and
degeneracy flags; the MH sampler's toggles per second (TNT and random proposals); MCMC-MLE stability over
three seeds (spread of the estimates against their standard errors); and the exact check for
``flomarriage ~ edges``: logit(20/120) = -1.6094, SE sqrt(1/(120 p (1-p))) = 0.2449.
Writes ``ergm.md`` and ``ergm.json`` to ``out_dir``.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

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
        Smaller Monte Carlo samples (about a minute on two CPU cores) instead of the estimators' defaults.

    Returns
    -------
    dict
        ``{"fits": [...], "sampler": [...], "stability": [...], "checks": {...}, "quick": bool}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graphs = bench_graphs()
    t_start = time.perf_counter()
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
    result = {"quick": quick, "fits": fits, "stability": stability, "sampler": sampler, "checks": checks,
              "total_seconds": time.perf_counter() - t_start}
    (out / "ergm.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "ergm.md").write_text(_markdown(result))
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
    lines += ["", "## Sampler throughput (one process, numpy)", "",
              "| graph | model | proposal | chains | toggles/s | acceptance |", "|---|---|---|---|---|---|"]
    for s in res["sampler"]:
        lines.append(f"| {s['graph']} | {s['model']} | {s['proposal']} | {s['chains']} | "
                     f"{s['toggles_per_second']:,.0f} | {s['acceptance_rate']:.3f} |")
    warn = [(r["graph"], r["model"], r["method"], w) for r in res["fits"] for w in r["warnings"]]
    if warn:
        lines += ["", "## Warnings raised", ""] + [f"- {g} / {m} / {me}: {w}" for g, m, me, w in warn]
    lines += ["", f"Total wall time {res['total_seconds']:.1f} s."]
    return "\n".join(lines) + "\n"
