"""Input checks shared by the two-sample metrics (sinkhorn, mmd, energy distance, c2st).

Every two-sample metric reads its inputs the same way: an array-like [n, d] (a 1-D array is read
as d = 1), numeric and finite, converted to float64, with at least ``min_rows`` rows; the two
samples must have the same number of columns, and the second is moved to the device of the first.
Subsampling, where a metric caps its cost, is one explicit function with an explicit generator.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._core.errors import DataError
from .._core.validation import check_data, check_int


def as_samples(x, name: str, *, min_rows: int = 2) -> torch.Tensor:
    """``x`` as a float64 tensor [n, d] (1-D read as [n, 1]); DataError if it is not numeric, not
    finite, has fewer than ``min_rows`` rows or more than two dimensions."""
    try:
        t = torch.as_tensor(x)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is a data error
        raise DataError(f"{name} could not be converted to a tensor: {err}") from None
    if t.ndim == 1:
        t = t[:, None]
    return check_data(t, name=name, min_rows=min_rows).to(torch.float64)


def as_sample_pair(x, y, *, min_rows: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both samples through :func:`as_samples`, checked to have the same number of columns, ``y``
    moved to the device of ``x``."""
    xs, ys = as_samples(x, "x", min_rows=min_rows), as_samples(y, "y", min_rows=min_rows)
    if xs.shape[1] != ys.shape[1]:
        raise DataError(f"x and y must have the same number of columns, got {xs.shape[1]} and {ys.shape[1]}")
    return xs, ys.to(xs.device)


def subsample_rows(x: torch.Tensor, max_samples: Optional[int], generator: torch.Generator) -> torch.Tensor:
    """``x`` itself if it has at most ``max_samples`` rows (or ``max_samples`` is None), else the rows
    ``x[randperm(n, generator)[:max_samples]]``: a uniformly random subset without replacement."""
    if max_samples is None or x.shape[0] <= max_samples:
        return x
    max_samples = check_int("max_samples", max_samples)
    return x[torch.randperm(x.shape[0], generator=generator)[:max_samples].to(x.device)]
