"""ebmlab.metrics.c2st against an independent reimplementation of sbibm's procedure, and on pairs with a known answer."""
import math

import numpy as np
import pytest
import torch

from ebmlab.metrics import c2st


def sbibm_c2st(X: torch.Tensor, Y: torch.Tensor, seed: int = 1, n_folds: int = 5) -> float:
    """The procedure of sbibm.metrics.c2st (Lueckmann et al. 2021), written out: z-score both samples with X's
    torch mean / unbiased std, MLPClassifier(relu, (10 d, 10 d), adam, max_iter=10000, random_state=seed), shuffled
    KFold(n_folds, random_state=seed), mean accuracy."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    m, s = torch.mean(X, dim=0), torch.std(X, dim=0)
    X, Y = (X - m) / s, (Y - m) / s
    d = X.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * d, 10 * d), max_iter=10000, solver="adam",
                        random_state=seed)
    data = np.concatenate((X.numpy(), Y.numpy()))
    target = np.concatenate((np.zeros((X.shape[0],)), np.ones((Y.shape[0],))))
    cv = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, data, target, cv=cv, scoring="accuracy")))


def test_c2st_equals_the_sbibm_procedure_exactly():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(150, 3, generator=g) * 2.0 + 1.0
    y = torch.randn(150, 3, generator=g) * 2.0 + torch.tensor([1.8, 1.0, 1.0])
    for seed in (1, 4):
        assert c2st(x, y, generator=seed) == pytest.approx(sbibm_c2st(x, y, seed=seed), abs=1e-12)


def test_c2st_known_answers_chance_and_bayes_accuracy():
    g = torch.Generator().manual_seed(12)
    n = 500
    x = torch.randn(n, 2, generator=g)
    same = c2st(x, torch.randn(n, 2, generator=g))
    se = math.sqrt(0.25 / (2 * n))
    assert abs(same - 0.5) < 4 * se + 0.02          # a classifier can only overfit upward a little
    # N(0, I) vs N((2, 0), I): the Bayes classifier thresholds at 1, accuracy Φ(1) = 0.8413
    shifted = c2st(x, torch.randn(n, 2, generator=g) + torch.tensor([2.0, 0.0]))
    bayes = 0.5 * math.erfc(-1 / math.sqrt(2))
    se = math.sqrt(bayes * (1 - bayes) / (2 * n))
    assert bayes - 4 * se - 0.02 < shifted < bayes + 4 * se
