"""Classifier two-sample test (Lopez-Paz & Oquab 2017), with sbibm's protocol.

A classifier is trained to tell x (label 0) from y (label 1); its held-out accuracy is 0.5 when
the two laws are equal and 1 when they are perfectly separable.  As in sbibm (Lueckmann et al.
2021, "Benchmarking simulation-based inference", ``sbibm.metrics.c2st``): both samples are
standardised with the mean and standard deviation of x, the classifier is scikit-learn's
``MLPClassifier(hidden_layer_sizes=(10 d, 10 d), activation="relu", solver="adam",
max_iter=10000)``, and the score is the mean accuracy of a shuffled ``n_folds``-fold
cross-validation.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int
from .samples import as_sample_pair


def sklearn_random_state(generator: Union[int, torch.Generator, None]) -> int:
    """The int ``random_state`` scikit-learn takes, from ebmlab's ``generator`` (an int, a ``torch.Generator``
    or None).

    An int >= 0 is used as it is (so ``generator=1`` is sbibm's ``seed=1``); a ``torch.Generator`` gives one
    draw in [0, 2^31) from it, so the same generator state always gives the same ``random_state``; ``None``
    takes that draw from torch's default generator (advancing it, never reseeding it).
    """
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**31, (1,), generator=generator, device=generator.device).item())
    if generator is None:
        return int(torch.randint(0, 2**31, (1,)).item())
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise ConfigError(f"generator must be an int seed >= 0, a torch.Generator or None, got {generator!r}")
    return check_int("generator", int(generator), minimum=0, maximum=2**32 - 1)


def c2st(x, y, generator: Union[int, torch.Generator, None] = 1, n_folds: int = 5, z_score: bool = True) -> float:
    """Classifier two-sample test accuracy (sbibm protocol; module docstring).

    Parameters
    ----------
    x, y : array-like [n, d] and [m, d]
        float32 tensors are processed in float32 (as sbibm does with its float32 samples), anything else in float64.
    generator : int, torch.Generator or None
        Randomness of the classifier's initialisation and of the fold shuffling, both seeded with one
        scikit-learn ``random_state`` derived from it (:func:`sklearn_random_state`: an int is used as is, so the
        default 1 is sbibm's default seed; a generator gives one deterministic draw).
    n_folds : int
        Cross-validation folds (>= 2; each sample needs at least ``n_folds`` rows).
    z_score : bool
        Standardise both samples with x's mean and unbiased standard deviation, computed by torch in the
        samples' dtype as sbibm does (columns with zero standard deviation are left unscaled, where sbibm would
        divide by zero).

    Returns
    -------
    float
        Mean held-out accuracy in [0, 1]; 0.5 means indistinguishable.
    """
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    n_folds = check_int("n_folds", n_folds, minimum=2)
    dtype = torch.float32 if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else torch.float64
    xt, yt = (t.cpu().to(dtype) for t in as_sample_pair(x, y))
    if min(xt.shape[0], yt.shape[0]) < n_folds:
        raise DataError(f"c2st needs at least n_folds={n_folds} rows in each sample, got {xt.shape[0]} and {yt.shape[0]}")
    random_state = sklearn_random_state(generator)
    if z_score:
        # as sbibm: torch.mean / torch.std (unbiased) of x, in the samples' own dtype, applied to both samples
        mean = torch.mean(xt, dim=0)
        std = torch.std(xt, dim=0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        xt, yt = (xt - mean) / std, (yt - mean) / std
    xs, ys = xt.numpy(), yt.numpy()
    d = xs.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * d, 10 * d), max_iter=10000, solver="adam",
                        random_state=random_state)
    data = np.concatenate([xs, ys])
    target = np.concatenate([np.zeros(xs.shape[0]), np.ones(ys.shape[0])])
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return float(np.mean(cross_val_score(clf, data, target, cv=folds, scoring="accuracy")))
