"""Training history returned by :func:`ebmlab.fit`."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class History:
    """What happened during training.

    Attributes
    ----------
    steps : list of int
        Iteration numbers (1-based) of the recorded losses.
    loss : list of float
        Loss at each recorded iteration.
    stats : list of dict
        The objective's statistics at each recorded iteration.
    evals : list of dict
        Results of the periodic evaluation (each with a ``"step"`` key).
    wall_time : float
        Seconds spent in the training loop (this call; resumed runs add to ``wall_time_total``).
    wall_time_total : float
        Seconds including earlier runs that this one resumed.
    stopped_early : bool
        True if a callback asked to stop.
    seed : int or None
        The training seed actually used (drawn from the OS when ``fit(seed=None)``): ``fit(..., seed=history.seed)``
        repeats the run.
    """

    steps: List[int] = field(default_factory=list)
    loss: List[float] = field(default_factory=list)
    stats: List[Dict[str, float]] = field(default_factory=list)
    evals: List[Dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    wall_time_total: float = 0.0
    stopped_early: bool = False
    seed: Optional[int] = None

    def to_csv(self, path) -> None:
        keys: List[str] = []
        for s in self.stats:
            for k in s:
                if k not in keys:
                    keys.append(k)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "loss", *keys])
            for step, loss, s in zip(self.steps, self.loss, self.stats):
                w.writerow([step, loss, *[s.get(k, "") for k in keys]])
