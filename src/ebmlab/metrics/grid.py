r"""Normalising a 2-D energy on a grid: log Z, log-likelihoods and densities for plots.

For an energy U on R², Z = ∫ exp(-U) is approximated by the midpoint rule on a box
[x_lo, x_hi] × [y_lo, y_hi] split into ``resolution`` × ``resolution`` cells of area ΔA:

    log Z ≈ logsumexp_k(-U(c_k)) + log ΔA,     c_k the cell midpoints,

the standard evaluation of 2-D EBMs (e.g. the energy-discrepancy and DiffEBM experiments).  The
midpoint rule has error O(h²) for smooth densities, and the mass outside the box is neglected,
so the box must hold nearly all of it (:func:`ebmlab.data.toy_bounds` gives such boxes).
Points outside the box still get log p(x) = -U(x) - log Z (no error is raised): the density is
defined everywhere, only its normaliser comes from the box.

The grid is evaluated in blocks (``batch_size`` points at a time, under ``torch.no_grad``) on
the device of the energy's parameters/buffers, and the logsumexp is accumulated in float64, so
resolution 1000 (10⁶ points) needs no more memory than one block.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Tuple

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int

Bounds = Tuple[Tuple[float, float], Tuple[float, float]]


def _check_bounds(bounds) -> Bounds:
    try:
        b = [float(v) for v in torch.as_tensor(bounds, dtype=torch.float64).flatten().tolist()]
    except Exception:  # noqa: BLE001
        raise ConfigError(f"bounds must be ((x_lo, x_hi), (y_lo, y_hi)) or (lo, hi), got {bounds!r}") from None
    if len(b) == 2:
        b = b + b
    if len(b) != 4 or not all(math.isfinite(v) for v in b) or not (b[0] < b[1] and b[2] < b[3]):
        raise ConfigError(
            f"bounds must be ((x_lo, x_hi), (y_lo, y_hi)) or (lo, hi) with finite lo < hi, got {bounds!r}"
        )
    return (b[0], b[1]), (b[2], b[3])


def _device_dtype(energy: torch.nn.Module) -> Tuple[torch.device, torch.dtype]:
    for t in list(energy.parameters()) + list(energy.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _axes(bounds: Bounds, resolution: int, device, dtype) -> Tuple[torch.Tensor, torch.Tensor, float]:
    (x0, x1), (y0, y1) = bounds
    hx, hy = (x1 - x0) / resolution, (y1 - y0) / resolution
    k = torch.arange(resolution, dtype=torch.float64, device=device) + 0.5
    return (x0 + hx * k).to(dtype), (y0 + hy * k).to(dtype), hx * hy


@torch.no_grad()
def _grid_energies(energy, bounds: Bounds, resolution: int, batch_size: int):
    device, dtype = _device_dtype(energy)
    xs, ys, area = _axes(bounds, resolution, device, dtype)
    out = torch.empty(resolution * resolution, dtype=torch.float64, device=device)
    # row-major over (y, x): point k = (xs[k % R], ys[k // R])
    for start in range(0, resolution * resolution, batch_size):
        idx = torch.arange(start, min(start + batch_size, resolution * resolution), device=device)
        pts = torch.stack([xs[idx % resolution], ys[idx // resolution]], dim=1)
        u = energy(pts)
        if u.shape != (pts.shape[0],):
            raise DataError(f"energy must return one value per point, shape [{pts.shape[0]}], got {tuple(u.shape)}")
        out[start:start + pts.shape[0]] = u.to(torch.float64)
    return xs, ys, area, out


def grid_log_z(energy, bounds, resolution: int = 200, batch_size: int = 65536) -> float:
    """log Z ≈ logsumexp_k(-U(c_k)) + log ΔA over the midpoints c_k of a resolution² grid.

    Parameters
    ----------
    energy : Energy (or any module mapping Tensor[b, 2] -> Tensor[b])
    bounds : ((x_lo, x_hi), (y_lo, y_hi)) or (lo, hi) for a square box
    resolution : int
        Cells per axis.
    batch_size : int
        Grid points per energy call.
    """
    return float(grid_log_density(energy, bounds, resolution, batch_size).log_z)


def grid_log_prob(energy, x, bounds, resolution: int = 200, batch_size: int = 65536) -> torch.Tensor:
    """log p(x) = -U(x) - log Z_grid for each row of x (:func:`grid_log_z`); Tensor[n], float64.

    Points outside ``bounds`` are allowed (see the module docstring).
    """
    log_z = grid_log_z(energy, bounds, resolution, batch_size)
    device, dtype = _device_dtype(energy)
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise DataError(f"x must have shape [n, 2], got {tuple(x.shape)}")
    with torch.no_grad():
        u = torch.cat([energy(x[i:i + batch_size].to(device=device, dtype=dtype)).to(torch.float64)
                       for i in range(0, x.shape[0], batch_size)])
    return -u - log_z


def grid_nll(energy, x, bounds, resolution: int = 200, batch_size: int = 65536) -> float:
    """Mean negative log-likelihood -(1/n) Σ_i log p(x_i) with the grid-normalised density.

    NLL = mean_i U(x_i) + log Z_grid (:func:`grid_log_z`); in nats.
    """
    return float(-grid_log_prob(energy, x, bounds, resolution, batch_size).mean())


class GridLogDensity(NamedTuple):
    """The grid-normalised log-density of a 2-D energy (:func:`grid_log_density`)."""

    xs: torch.Tensor  #: [resolution] x coordinates of the cell midpoints (float64, CPU)
    ys: torch.Tensor  #: [resolution] y coordinates of the cell midpoints (float64, CPU)
    log_density: torch.Tensor  #: [resolution, resolution] -U(c) - log Z; row i is y = ys[i], column j is x = xs[j]
    log_z: float  #: log Z ≈ logsumexp_k(-U(c_k)) + log ΔA
    cell_area: float  #: ΔA


def grid_log_density(energy, bounds, resolution: int = 200, batch_size: int = 65536) -> GridLogDensity:
    """log p(c) = -U(c) - log Z_grid at the midpoints c of a resolution² grid, with log Z_grid.

    One pass over the grid gives everything a 2-D evaluation needs: the log-density for plots,
    exact samples of the piecewise-constant density (cell k with probability p(c_k) ΔA) and
    log Z for log-likelihoods of other points (-U(x) - log_z).  Σ exp(log_density) · ΔA = 1.

    Raises
    ------
    DataError
        If the energy is not finite at some grid point (NaN or ±inf): the grid cannot be normalised.
    """
    bounds = _check_bounds(bounds)
    resolution = check_int("resolution", resolution, minimum=2)
    batch_size = check_int("batch_size", batch_size)
    _, _, area, u = _grid_energies(energy, bounds, resolution, batch_size)
    if not torch.isfinite(u).all():
        raise DataError(f"energy is non-finite at {int((~torch.isfinite(u)).sum())} grid points; cannot normalise")
    log_z = float(torch.logsumexp(-u, 0)) + math.log(area)
    log_density = (-u - log_z).reshape(resolution, resolution).cpu()
    xs, ys, _ = _axes(bounds, resolution, "cpu", torch.float64)  # the midpoints in float64, whatever the energy's dtype
    return GridLogDensity(xs, ys, log_density, log_z, area)


def grid_density(energy, bounds, resolution: int = 200,
                 batch_size: int = 65536) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The grid-normalised density exp(-U) / Z_grid at the cell midpoints, for plotting.

    Returns
    -------
    (X, Y, density) : three Tensor[resolution, resolution] (float64, CPU)
        ``meshgrid(xs, ys, indexing="xy")``: row i is y = ys[i], column j is x = xs[j], as
        matplotlib's ``pcolormesh(X, Y, density)`` / ``imshow(density, origin="lower")`` expect.
        Σ density · ΔA = 1.
    """
    grid = grid_log_density(energy, bounds, resolution, batch_size)
    gx, gy = torch.meshgrid(grid.xs, grid.ys, indexing="xy")
    return gx, gy, torch.exp(grid.log_density)
