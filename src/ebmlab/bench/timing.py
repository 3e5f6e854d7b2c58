"""Interleaved A/B timing for benchmarks that report a cost *ratio* measured in one run.

Method: fix the thread count, warm both code
paths up, then alternate baseline and method for ``repeats`` rounds (A, B, B, A, A, B, ...: the
order flips every round so that a slow drift within a round does not favour one side), each a
block of work; every round gives one ratio (method time per unit) / (baseline time per unit),
and the report is the median and the min–max range of those ratios. Interleaving makes slow
drifts (thermal, other processes, allocator state) hit both sides alike.

glibc's allocator can make identical torch code up to 1.5x slower or faster depending on earlier
allocations; pinning ``MALLOC_MMAP_THRESHOLD_=268435456`` and ``MALLOC_TRIM_THRESHOLD_=1073741824``
removes the swings. They are read by glibc when the process starts, so they must be set in the
environment *before* Python starts (the ``ebmlab bench`` CLI and the Makefile do this);
:func:`allocator_env` records whether they were.
"""
from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch

from .._core.validation import check_choice, check_int, check_positive

#: The allocator settings a benchmark process should start with.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def allocator_env() -> Dict[str, Any]:
    """Values of the glibc allocator variables in this process and whether they match :data:`ALLOCATOR_ENV`."""
    values = {k: os.environ.get(k) for k in ALLOCATOR_ENV}
    return {"values": values, "pinned": all(values[k] == v for k, v in ALLOCATOR_ENV.items())}


@contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (restored afterwards; None = unchanged)."""
    if threads is None:
        yield
        return
    threads = check_int("threads", threads, minimum=1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class RatioTiming:
    """Per-round ratios (method cost per unit / baseline cost per unit) and their summary.

    ``baseline_seconds`` / ``method_seconds`` are the raw block times of every round.
    """

    ratios: List[float]
    baseline_seconds: List[float]
    method_seconds: List[float]
    baseline_units: float
    method_units: float
    median: float = field(init=False)
    min: float = field(init=False)
    max: float = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.ratios)
        self.min = min(self.ratios)
        self.max = max(self.ratios)

    @property
    def baseline_seconds_per_unit(self) -> float:
        """Median baseline time per unit of work (e.g. per gradient evaluation)."""
        return statistics.median(self.baseline_seconds) / self.baseline_units

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["baseline_seconds_per_unit"] = self.baseline_seconds_per_unit
        return d


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(fn: Callable[[], Any], clock: Callable[[], float]) -> float:
    _sync()
    t0 = clock()
    fn()
    _sync()
    return clock() - t0


def interleaved_ratio(
    baseline: Callable[[], Any],
    method: Callable[[], Any],
    *,
    repeats: int = 7,
    warmup: int = 1,
    baseline_units: float = 1.0,
    method_units: float = 1.0,
    threads: Optional[int] = 1,
    clock: str = "wall",
) -> RatioTiming:
    """Time ``baseline`` and ``method`` alternately and return per-round cost ratios.

    Each call of ``baseline()`` / ``method()`` runs one block of work containing
    ``baseline_units`` / ``method_units`` units (e.g. gradient evaluations); round r gives

        ratio_r = (t_method,r / method_units) / (t_baseline,r / baseline_units).

    Parameters
    ----------
    baseline, method : callable
        Zero-argument functions running one block each (they should do identical work every call).
    repeats : int
        Number of (A, B) rounds, >= 1.
    warmup : int
        Untimed (A, B) rounds first, >= 0.
    baseline_units, method_units : float
        Units of work per block, > 0.
    threads : int or None
        ``torch.set_num_threads`` during the measurement (restored afterwards); None leaves it.
    clock : {"wall", "cpu"}
        ``"wall"``: ``time.perf_counter``. ``"cpu"``: ``time.process_time``, the CPU time of this
        process, which does not count time the process spends descheduled, so it is far less
        noisy on a shared machine; it is only meaningful for CPU work (all threads are summed).
    """
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    baseline_units = check_positive("baseline_units", baseline_units)
    method_units = check_positive("method_units", method_units)
    clock_fn = _CLOCKS[check_choice("clock", clock, _CLOCKS)]
    base_t: List[float] = []
    meth_t: List[float] = []
    with torch_threads(threads):
        for _ in range(warmup):
            baseline()
            method()
        for r in range(repeats):
            if r % 2 == 0:  # A, B then B, A: a drift within a round does not favour either side
                base_t.append(_timed(baseline, clock_fn))
                meth_t.append(_timed(method, clock_fn))
            else:
                meth_t.append(_timed(method, clock_fn))
                base_t.append(_timed(baseline, clock_fn))
    ratios = [(m / method_units) / (b / baseline_units) for b, m in zip(base_t, meth_t)]
    return RatioTiming(ratios=ratios, baseline_seconds=base_t, method_seconds=meth_t,
                       baseline_units=baseline_units, method_units=method_units)
