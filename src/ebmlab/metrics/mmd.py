r"""Maximum mean discrepancy (Gretton et al. 2012, "A kernel two-sample test", JMLR).

MMD²(P, Q) = E k(X, X') + E k(Y, Y') - 2 E k(X, Y) for a characteristic kernel k.  Estimated
from x_1..x_n ~ P and y_1..y_m ~ Q by the unbiased U-statistic

    MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i, y_j) - 2/(nm) Σ_{i,j} k(x_i, y_j)

(Gretton et al., Lemma 6; can be slightly negative), or the biased V-statistic that keeps the
diagonal terms (>= 0).  Kernel sums are accumulated over row blocks in float64, so memory stays
O(block · (n + m)) and large samples do not run out of memory.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_choice, check_int, check_positive
from .samples import as_sample_pair, subsample_rows

_KERNELS = ("gaussian", "laplacian")
_BLOCK = 2048
#: the median heuristic looks at most at this many pooled points by default (a random subset beyond)
MEDIAN_MAX_SAMPLES = 2000


def median_heuristic(x, y, max_samples: Optional[int] = MEDIAN_MAX_SAMPLES,
                     generator: Optional[torch.Generator] = None) -> float:
    """Median of the pairwise Euclidean distances |z_i - z_j|, i < j, of the pooled sample z = (x, y).

    Gretton et al. (2012), Sec. 8.  A heuristic bandwidth, so its O(S²) cost is capped: when the
    pooled sample has more than ``max_samples`` rows (default 2000), the median is taken over a
    uniformly random subset of ``max_samples`` pooled rows drawn with ``generator`` (None: a
    generator seeded with 0, so the result is deterministic); ``max_samples=None`` uses every row.
    The subset changes the bandwidth by a relative O(1/√max_samples), not the MMD estimator.
    """
    xs, ys = as_sample_pair(x, y)
    z = torch.cat([xs, ys])
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=2)
    z = subsample_rows(z, max_samples, generator if generator is not None else torch.Generator().manual_seed(0))
    med = float(np.median(torch.pdist(z).cpu().numpy()))
    if not med > 0:
        raise DataError("the median pairwise distance of the pooled sample is 0; give an explicit bandwidth")
    return med


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float], kernel: str) -> float:
    total = 0.0
    for start in range(0, a.shape[0], _BLOCK):
        blk = a[start:start + _BLOCK]
        if kernel == "gaussian":
            d2 = ((blk * blk).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * blk @ b.T).clamp_min(0.0)
            total += float(sum(torch.exp(-d2 / (2.0 * h * h)).sum() for h in bandwidths))
        else:
            d = torch.cdist(blk, b)
            total += float(sum(torch.exp(-d / h).sum() for h in bandwidths))
    return total


def mmd(x, y, bandwidth: Union[None, float, Sequence[float]] = None, kernel: str = "gaussian",
        unbiased: bool = True) -> float:
    r"""Squared maximum mean discrepancy MMD²(x, y) (module docstring; Gretton et al. 2012).

    Parameters
    ----------
    x, y : array-like [n, d] and [m, d] (1-D arrays are read as d = 1; n, m >= 2)
    bandwidth : float, sequence of floats, or None
        Kernel bandwidth h: Gaussian k(a, b) = exp(-|a - b|² / (2 h²)), Laplacian
        k(a, b) = exp(-|a - b| / h).  A sequence gives the sum of the kernels (a multi-scale
        kernel).  None (default): the median heuristic, h = median pairwise distance of the
        pooled sample (:func:`median_heuristic` with its defaults: at most 2000 pooled rows, a
        subset drawn with a generator seeded 0 beyond; pass ``bandwidth=median_heuristic(x, y,
        max_samples=None)`` for the exact median).
    kernel : {"gaussian", "laplacian"}
    unbiased : bool
        True (default): the U-statistic MMD²_u; False: the V-statistic (diagonals kept, >= 0).

    Returns
    -------
    float
        The estimate of MMD² (squared: take the square root of a V-statistic for the MMD itself).
    """
    check_choice("kernel", kernel, _KERNELS)
    xs, ys = as_sample_pair(x, y)
    if bandwidth is None:
        bws = [median_heuristic(xs, ys)]
    elif isinstance(bandwidth, (list, tuple)):
        if not bandwidth:
            raise ConfigError("bandwidth list must not be empty")
        bws = [check_positive("bandwidth", h) for h in bandwidth]
    else:
        bws = [check_positive("bandwidth", bandwidth)]
    n, m = xs.shape[0], ys.shape[0]
    kxx = _kernel_sum(xs, xs, bws, kernel)
    kyy = _kernel_sum(ys, ys, bws, kernel)
    kxy = _kernel_sum(xs, ys, bws, kernel)
    if unbiased:
        k0 = float(len(bws))  # k(a, a) = 1 for each kernel in the sum
        return (kxx - n * k0) / (n * (n - 1)) + (kyy - m * k0) / (m * (m - 1)) - 2.0 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2.0 * kxy / (n * m)
