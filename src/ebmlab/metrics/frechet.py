r"""Fréchet distance between image samples on the features of a small digits classifier (no download).

The Fréchet distance between Gaussians fitted to two feature clouds (Dowson & Landau 1982; used on Inception
features as FID by Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium", NeurIPS) is

.. math::
    d^2 = \lVert \mu_x - \mu_y \rVert^2 + \operatorname{tr}\big(\Sigma_x + \Sigma_y
          - 2 (\Sigma_x^{1/2} \Sigma_y \Sigma_x^{1/2})^{1/2}\big).

:func:`frechet_digits` computes it on the 128 penultimate features of :func:`digits_classifier`, a small
convolutional network that ebmlab trains once on the training split of scikit-learn's 8×8 digits
(:func:`ebmlab.data.load_digits`) from a fixed seed and caches in the user's cache directory.  Values are
comparable only between calls that use the same classifier (the file name carries the recipe's version).

Cache directory: ``$EBMLAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ebmlab`` (``~/.cache/ebmlab`` when unset;
``%LOCALAPPDATA%\ebmlab`` on Windows).  The weights are written atomically (a temporary file, then a rename), so
concurrent first calls at worst train twice.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .._core.errors import DataError
from .._core.random import init_parameters_

#: the recipe's version, seed and length; changing any of them changes the file name (a new classifier)
RECIPE_VERSION = 1
CLASSIFIER_SEED = 0
CLASSIFIER_EPOCHS = 20
CLASSIFIER_BATCH = 64
CLASSIFIER_LR = 2e-3
from .._core.cache import cache_dir  # noqa: E402  (re-exported: ebmlab.metrics.frechet.cache_dir)

FEATURES = 128
_MODULE: Optional[nn.Module] = None


class DigitsClassifier(nn.Module):
    """conv 3×3 (1→16) – ReLU – conv 3×3 (16→32) – ReLU – max-pool 2 – linear 512→128 – ReLU – linear 128→10.

    ``forward(x)`` maps images [n, 1, 8, 8] with pixels in [0, 1] to logits [n, 10]; ``features(x)`` returns the
    128 post-ReLU penultimate activations that :func:`frechet_digits` compares.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 4 * 4, FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translation by −1, 0 or +1 pixel in each direction (zero padding): the one augmentation."""
    n = x.shape[0]
    pad = nn.functional.pad(x, (1, 1, 1, 1))
    dx = torch.randint(0, 3, (n,), generator=g)
    dy = torch.randint(0, 3, (n,), generator=g)
    rows = torch.arange(8)[None, :] + dy[:, None]  # [n, 8]
    cols = torch.arange(8)[None, :] + dx[:, None]
    idx = torch.arange(n)[:, None, None]
    return pad[:, 0][idx, rows[:, :, None], cols[:, None, :]][:, None]


def train_digits_classifier(seed: int = CLASSIFIER_SEED, epochs: int = CLASSIFIER_EPOCHS) -> DigitsClassifier:
    """Train :class:`DigitsClassifier` on ``load_digits("train")`` with Adam (lr 2e-3, batch 64, ±1-pixel random
    shifts) for ``epochs`` epochs; every random choice (weights, shuffling, shifts) comes from ``seed``."""
    from ..data import load_digits

    x, y = load_digits("train")
    g = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        net = DigitsClassifier()
    init_parameters_(net, g)
    opt = torch.optim.Adam(net.parameters(), lr=CLASSIFIER_LR)
    net.train()
    for _ in range(int(epochs)):
        perm = torch.randperm(x.shape[0], generator=g)
        for start in range(0, x.shape[0], CLASSIFIER_BATCH):
            b = perm[start:start + CLASSIFIER_BATCH]
            loss = nn.functional.cross_entropy(net(_shift(x[b], g)), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    return net


def _cache_file() -> Path:
    return cache_dir() / f"digits_classifier_v{RECIPE_VERSION}_seed{CLASSIFIER_SEED}_e{CLASSIFIER_EPOCHS}.safetensors"


def digits_classifier() -> nn.Module:
    """The cached digits classifier (trained on first use, ~10-30 s on one CPU core): an ``nn.Module`` in eval mode
    with frozen parameters mapping images [n, 1, 8, 8] in [0, 1] to logits [n, 10] (its ``features`` method gives
    the 128 penultimate activations).  Its test-split accuracy is stored next to the weights
    (``digits_classifier_v*.json``)."""
    global _MODULE
    path = _cache_file()
    if _MODULE is not None and getattr(_MODULE, "_ebmlab_cache_file", None) == str(path):
        return _MODULE
    from safetensors.torch import load_file

    with torch.random.fork_rng(devices=[]):
        net = DigitsClassifier()
    if path.exists():
        net.load_state_dict(load_file(str(path)))
    else:
        net = train_digits_classifier()
        path.parent.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save as save_bytes

        from .._core.fsutil import atomic_write, atomic_write_text

        blob = save_bytes({k: v.contiguous() for k, v in net.state_dict().items()})
        atomic_write(path, lambda fh: fh.write(blob))
        from ..data import load_digits

        xt, yt = load_digits("test")
        with torch.no_grad():
            acc = float((net(xt).argmax(1) == yt).double().mean())
        meta = {"recipe_version": RECIPE_VERSION, "seed": CLASSIFIER_SEED, "epochs": CLASSIFIER_EPOCHS,
                "test_accuracy": acc}
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net._ebmlab_cache_file = str(path)
    _MODULE = net
    return net


def frechet_distance(fx, fy) -> float:
    """Fréchet distance d² (module docstring) between Gaussians fitted to feature rows ``fx`` [n, k] and
    ``fy`` [m, k] (sample means and unbiased covariances, float64; n, m >= 2)."""
    a = torch.as_tensor(fx).to(torch.float64)
    b = torch.as_tensor(fy).to(torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[0] < 2 or b.shape[0] < 2:
        raise DataError(f"frechet_distance needs two [n, k] feature arrays with n >= 2 and the same k, got "
                        f"{tuple(a.shape)} and {tuple(b.shape)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    # tr (Ca^{1/2} Cb Ca^{1/2})^{1/2} from the eigenvalues of the symmetric PSD matrix Ca^{1/2} Cb Ca^{1/2}
    ev, vec = torch.linalg.eigh(ca)
    sqrt_a = (vec * ev.clamp_min(0).sqrt()) @ vec.T
    mid = sqrt_a @ cb @ sqrt_a
    tr_sqrt = float(torch.linalg.eigvalsh(0.5 * (mid + mid.T)).clamp_min(0).sqrt().sum())
    return float((mu_a - mu_b).pow(2).sum()) + float(torch.trace(ca) + torch.trace(cb)) - 2.0 * tr_sqrt


def _as_digit_images(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise DataError(f"{name} must hold float pixels in [0, 1], got dtype {t.dtype}")
    if t.ndim == 2 and t.shape[1] == 64:
        t = t.reshape(-1, 1, 8, 8)
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 8, 8):
        raise DataError(f"{name} must be digits images [n, 1, 8, 8] (or [n, 64]), got shape {tuple(t.shape)}")
    if t.shape[0] < 2:
        raise DataError(f"{name} needs at least 2 images, got {t.shape[0]}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} has non-finite pixels")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(f"{name} pixels must lie in [0, 1] (the digits scale), got range [{lo:.3g}, {hi:.3g}]")
    return t.float()


def frechet_digits(x, y) -> float:
    """Fréchet distance between the :func:`digits_classifier` features of two sets of 8×8 digit images
    ``x`` and ``y`` ([n, 1, 8, 8] or [n, 64], pixels in [0, 1]); 0 for identical feature statistics."""
    xs, ys = _as_digit_images(x, "x"), _as_digit_images(y, "y")
    net = digits_classifier()
    with torch.no_grad():
        fx = torch.cat([net.features(c) for c in xs.split(1024)])
        fy = torch.cat([net.features(c) for c in ys.split(1024)])
    return frechet_distance(fx, fy)
