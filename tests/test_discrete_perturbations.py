"""Energy-discrepancy perturbations on {0,1}^d: flip rates, one-bit moves, exact uniform pooling."""
import itertools
import math

import pytest
import torch
from scipy import stats

from ebmlab import ConfigError, DataError
from ebmlab.objectives import build
from ebmlab.objectives.discrete_perturbations import (
    BernoulliPerturbation,
    NeighbourhoodPerturbation,
    PoolingPerturbation,
)
from ebmlab.objectives.perturbations import PERTURBATIONS, build_perturbation

CHI2_LEVEL = 1e-4  # false-alarm probability of each chi-square test


def _data(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n, d), generator=g).double()


def test_registered_by_name():
    for name in ("bernoulli", "neighbourhood", "pooling"):
        assert name in PERTURBATIONS
        assert build_perturbation(name).discrete


def test_bernoulli_flip_rate_and_contrast_shape():
    flip_prob, n, d, m = 0.1, 4000, 16, 8
    p = BernoulliPerturbation(flip_prob)
    x = _data(n, d)
    g = torch.Generator().manual_seed(1)
    y = p.perturb(x, generator=g)
    xn = p.contrast(y, m, generator=g)
    assert y.shape == x.shape and xn.shape == (n, m, d)
    for flips, count in (((y != x).double(), n * d), ((xn != y.unsqueeze(1)).double(), n * m * d)):
        rate = float(flips.mean())
        assert abs(rate - flip_prob) / math.sqrt(flip_prob * (1 - flip_prob) / count) < 4.5
    # negatives are drawn independently of each other: the flip masks of two negatives are uncorrelated
    f = (xn != y.unsqueeze(1)).double()
    both = float((f[:, 0] * f[:, 1]).mean())
    assert abs(both - flip_prob ** 2) / math.sqrt(flip_prob ** 2 * (1 - flip_prob ** 2) / (n * d)) < 4.5


def test_bernoulli_flips_are_the_xor_of_the_uniform_mask_in_every_dtype():
    """y = x XOR [u < flip_prob] with u the generator's uniforms, values in {0,1} and the dtype of x kept."""
    for dtype in (torch.float32, torch.float64):
        x = _data(50, 12).to(dtype)
        y = BernoulliPerturbation(0.3).perturb(x, generator=torch.Generator().manual_seed(7))
        u = torch.rand(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(7))
        assert y.dtype == dtype
        assert torch.equal(y, torch.where(u < 0.3, 1 - x, x))


def test_neighbourhood_flips_exactly_one_uniform_bit():
    n, d, m = 3000, 6, 5
    p = NeighbourhoodPerturbation()
    x = _data(n, d)
    g = torch.Generator().manual_seed(2)
    y = p.perturb(x, generator=g)
    xn = p.contrast(y, m, generator=g)
    assert torch.all((y != x).sum(1) == 1)
    assert torch.all((xn != y.unsqueeze(1)).sum(2) == 1)
    assert torch.equal(x, _data(n, d))  # input untouched
    for flips in ((y != x), (xn != y.unsqueeze(1)).reshape(-1, d)):
        counts = flips.sum(0).double().numpy()
        _, pval = stats.chisquare(counts)
        assert pval > CHI2_LEVEL
    # event shapes are kept
    x3 = _data(10, 9).reshape(10, 3, 3)
    assert p.contrast(p.perturb(x3, generator=g), 4, generator=g).shape == (10, 4, 3, 3)


@pytest.mark.parametrize("window,shape,d", [(3, None, 8), (2, (3, 3), 9), ((2, 3), (4, 6), 24)])
def test_pooling_preserves_window_sums(window, shape, d):
    p = PoolingPerturbation(window, shape=shape)
    x = _data(200, d, seed=3)
    y = p.perturb(x)
    xn = p.contrast(y, 7, generator=torch.Generator().manual_seed(4))
    assert xn.shape == (200, 7, d)
    assert bool(((xn == 0) | (xn == 1)).all())
    pooled = p.pooled(x)
    torch.testing.assert_close(p.pooled(xn.reshape(-1, d)).reshape(200, 7, -1), pooled.unsqueeze(1).expand(200, 7, -1))
    # y is the window mean written back to the sites of the window
    grp = p.groups(d)
    sizes = torch.bincount(grp).double()
    torch.testing.assert_close(y, (pooled / sizes)[:, grp])


def test_pooling_2d_windows_are_blocks():
    p = PoolingPerturbation(2, shape=(4, 4))
    assert p.groups(16).reshape(4, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    with pytest.raises(DataError):
        p.perturb(torch.zeros(2, 15))


def test_pooling_is_uniform_over_the_preimage():
    # window of 4 bits with 2 ones: 6 preimage patterns; a ragged window of 3 with 1 one: 3 patterns
    p = PoolingPerturbation(4)
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    n = 12000
    xn = p.contrast(p.perturb(x), n, generator=torch.Generator().manual_seed(5))[0]
    for sl, patterns in ((slice(0, 4), [c for c in itertools.product([0, 1], repeat=4) if sum(c) == 2]),
                         (slice(4, 7), [c for c in itertools.product([0, 1], repeat=3) if sum(c) == 1])):
        seen = [tuple(int(v) for v in row) for row in xn[:, sl].tolist()]
        counts = [seen.count(c) for c in patterns]
        assert sum(counts) == n  # nothing outside the preimage
        _, pval = stats.chisquare(counts)
        assert pval > CHI2_LEVEL


def test_bad_hyper_parameters():
    with pytest.raises(ConfigError):
        BernoulliPerturbation(0.0)
    with pytest.raises(ConfigError):
        BernoulliPerturbation(1.5)
    with pytest.raises(ConfigError):
        PoolingPerturbation(1)
    with pytest.raises(ConfigError):
        PoolingPerturbation((1, 1), shape=(4, 4))
    with pytest.raises(ConfigError):
        NeighbourhoodPerturbation().contrast(torch.zeros(2, 3), 0)


def test_energy_discrepancy_accepts_discrete_perturbations_by_name():
    from ebmlab.energies import BinaryMLPEnergy

    e = BinaryMLPEnergy(8, hidden=(16,))
    x = _data(32, 8).float()
    for name, kw in (("bernoulli", {"flip_prob": 0.1}), ("neighbourhood", {}), ("pooling", {"window": 2})):
        obj = build("ed", perturbation=name, m=32, **kw)
        assert not obj.continuous
        out = obj(e, x, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out.loss)
        out.loss.backward()
