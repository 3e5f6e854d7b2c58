"""Figures for 2-D models: data beside samples, and the learned energy beside the data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

Bounds = Tuple[Tuple[float, float], Tuple[float, float]]


def _save(fig, path) -> Path:
    """Write the figure atomically (temporary file, fsync, rename): a crash never leaves a truncated PNG."""
    from .._core.fsutil import atomic_write

    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return path


def _hist(ax, x: np.ndarray, bounds: Bounds, title: str, bins: int = 120) -> None:
    ax.hist2d(x[:, 0], x[:, 1], bins=bins, range=[list(bounds[0]), list(bounds[1])], cmap="viridis", density=True)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(data: torch.Tensor, samples: torch.Tensor, path, bounds: Bounds, title: str = "") -> Path:
    """Two 2-D histograms side by side: held-out data and model samples, on the same box."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    _hist(axes[0], data.detach().cpu().numpy(), bounds, f"data (n={len(data)})")
    _hist(axes[1], samples.detach().cpu().numpy(), bounds, f"model samples (n={len(samples)})")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_energy(energy, data: torch.Tensor, path, bounds: Bounds, resolution: int = 200, title: str = "",
                true_density: Optional[np.ndarray] = None) -> Path:
    """Data histogram | grid-normalised model density exp(-U)/Z | energy contours over the data."""
    from ..metrics import grid_density

    xs, ys, dens = grid_density(energy, bounds, resolution)
    xs, ys, dens = (np.asarray(a.detach().cpu() if torch.is_tensor(a) else a) for a in (xs, ys, dens))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    _hist(axes[0], data.detach().cpu().numpy(), bounds, "data")
    extent = [bounds[0][0], bounds[0][1], bounds[1][0], bounds[1][1]]
    axes[1].imshow(dens, origin="lower", extent=extent, cmap="viridis", aspect="equal")
    axes[1].set_title("model density exp(-U)/Z (grid)")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    u = -np.log(np.clip(dens, 1e-300, None))  # U + log Z: energy up to its additive constant
    levels = u.min() + np.arange(0.5, 12.5, 1.0)  # one contour per unit of energy above the minimum
    axes[2].contour(xs, ys, u, levels=levels, cmap="magma_r", linewidths=0.8)
    d = data.detach().cpu().numpy()
    axes[2].scatter(d[:, 0], d[:, 1], s=1, c="k", alpha=0.15)
    axes[2].set_xlim(bounds[0])
    axes[2].set_ylim(bounds[1])
    axes[2].set_aspect("equal")
    axes[2].set_title("energy contours (1 nat apart) over data")
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_loss(steps: Sequence[int], loss: Sequence[float], path, title: str = "training loss") -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, loss, lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return _save(fig, path)
