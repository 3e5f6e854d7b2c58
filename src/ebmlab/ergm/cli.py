"""Entry point behind ``ebmlab ergm fit GRAPH_FILE FORMULA --method ...``."""
from __future__ import annotations

from typing import Any, Optional

from .io import read_graph
from .model import ERGM

__all__ = ["cli_fit"]


def cli_fit(path: str, formula: str, method: str = "mple", seed: Optional[int] = 0, directed: bool = False,
            gof: bool = False, gof_plot: Optional[str] = None, **options: Any) -> str:
    """Read a graph file, fit ``formula`` with ``method`` and return the summary text.

    Parameters
    ----------
    path : str
        Graph file (see :func:`ebmlab.ergm.io.read_graph`).
    formula : str
        statnet-style formula, e.g. ``"edges + triangle"``.
    method : {"mple", "mcmc_mle", "cd", "ed"}
    seed : int, optional
    directed : bool
        Read edge lists as directed graphs.
    gof : bool
        Append a goodness-of-fit table; ``gof_plot`` also writes its figure to that path.
    **options
        Estimator options (e.g. ``n_samples=2048``).
    """
    graph = read_graph(path, directed=directed)
    model = ERGM(formula)
    result = model.fit(graph, method=method, seed=seed, **options)
    text = result.summary()
    if gof or gof_plot:
        g = result.gof(n_samples=100, seed=None if seed is None else seed + 1)
        text += "\n\n" + g.summary()
        if gof_plot:
            g.plot(gof_plot)
            text += f"\nGOF plot written to {gof_plot}"
    return text
