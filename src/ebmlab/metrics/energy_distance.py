r"""Energy distance (Székely 2003; Székely & Rizzo 2013, "Energy statistics").

D²(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|  (Euclidean norm), >= 0 and zero iff P = Q.
Evaluated on the empirical measures of x_1..x_n and y_1..y_m (a V-statistic: diagonal terms,
which are zero, included in the means), so it equals the square of
``scipy.stats.energy_distance(u, v)`` in one dimension, whose value is
sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) for the empirical distributions.  With ``unbiased=True`` the
within-sample means run over i ≠ j instead (a U-statistic, unbiased for D² but possibly < 0).
"""
from __future__ import annotations

import torch

from .samples import as_sample_pair

_BLOCK = 2048


def _distance_sum(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(sum(torch.cdist(a[i:i + _BLOCK], b).sum() for i in range(0, a.shape[0], _BLOCK)))


def energy_distance(x, y, unbiased: bool = False) -> float:
    r"""Squared energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    Parameters
    ----------
    x, y : array-like [n, d] and [m, d] (1-D arrays are read as d = 1; n, m >= 2)
    unbiased : bool
        False (default): V-statistic (the energy distance of the empirical measures, >= 0;
        ``scipy.stats.energy_distance(u, v) ** 2`` in 1-D).  True: U-statistic.

    Returns
    -------
    float
    """
    xs, ys = as_sample_pair(x, y)
    n, m = xs.shape[0], ys.shape[0]
    dxy = _distance_sum(xs, ys) / (n * m)
    nx, ny = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    return 2.0 * dxy - _distance_sum(xs, xs) / nx - _distance_sum(ys, ys) / ny
