"""Figures of the applications: image grids, reliability diagrams, OOD score histograms, before/after panels."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .jem import reliability_bins  # noqa: E402


def _save(fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _tile(images: torch.Tensor, ncol: int) -> np.ndarray:
    x = images.detach().float().clamp(0, 1).cpu().numpy()[:, 0]
    n, h, w = x.shape
    nrow = int(np.ceil(n / ncol))
    canvas = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1))
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = x[i]
    return canvas


def image_grid(panels: Mapping[str, torch.Tensor], path, ncol: int = 10, title: str = "") -> Path:
    """One grid per entry (name -> images [n, 1, H, W] in [0, 1], clipped), side by side."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], panels.items()):
        ax.imshow(_tile(imgs, ncol), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def reliability_diagram(models: Mapping[str, tuple], path, n_bins: int = 15) -> Path:
    """Accuracy against confidence per bin for each model (name -> (proba [n, K], labels [n], ece)), with each
    bin's number of points written at the foot of its bar and the bin's mean confidence marked."""
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False)
    for ax, (name, (proba, y, ece)) in zip(axes[0], models.items()):
        centres, acc, conf, cnt = reliability_bins(proba, y, n_bins)
        ok = cnt > 0
        ax.bar(centres[ok], acc[ok], width=1.0 / n_bins, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot(conf[ok], acc[ok], "k.", ms=3, label="(mean confidence, accuracy)")
        for c, a, k in zip(centres[ok], acc[ok], cnt[ok]):  # how many test points each bin holds
            ax.text(c, 0.02, f"n={int(k)}", ha="center", va="bottom", fontsize=5, rotation=90)
        ax.plot([0, 1], [0, 1], "r--", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("confidence max p(y|x)"), ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: ECE {100 * ece:.2f}%", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def ood_histograms(panels: Mapping[str, Mapping[str, np.ndarray]], path, aurocs: Optional[Mapping[str, Mapping[str, float]]] = None) -> Path:
    """One panel per score (name -> {"test": scores, ood name: scores}), with the AUROCs in the legend."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, sets) in zip(axes[0], panels.items()):
        allv = np.concatenate([np.asarray(v) for v in sets.values()])
        bins = np.linspace(np.nanmin(allv), np.nanmax(allv), 40)
        for k, v in sets.items():
            lab = k if aurocs is None or k not in aurocs.get(name, {}) else f"{k} (AUROC {aurocs[name][k]:.3f})"
            ax.hist(np.asarray(v), bins=bins, alpha=0.45, density=True, label=lab)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def before_after(rows: Mapping[str, torch.Tensor], psnrs: Mapping[str, Sequence[float]], path, title: str = "") -> Path:
    """Rows of images (name -> [n, 1, H, W]), one column per image, each method's PSNR under its image."""
    names = list(rows)
    n = rows[names[0]].shape[0]
    fig, axes = plt.subplots(len(names), n, figsize=(1.25 * n + 1.2, 1.35 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        imgs = rows[name].detach().float().clamp(0, 1).cpu().numpy()[:, 0]
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(imgs[c], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if name in psnrs:
                ax.set_xlabel(f"{psnrs[name][c]:.1f} dB", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
