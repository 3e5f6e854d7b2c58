"""2-D toy data: shapes, seeding, RNG hygiene, exact moments, densities and bounds."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ebmlab import ConfigError
from ebmlab.data import toy, toy_bounds, toy_density, toy_names
from ebmlab.energies import GaussianMixture

F64 = torch.float64
NAMES = toy_names()


def test_names():
    assert set(NAMES) == {"8gaussians", "8gaussians_unit", "grid", "2spirals", "checkerboard", "swissroll",
                          "pinwheel", "circles", "rings", "moons"}


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_seeding(name):
    for n in (1, 7, 500):
        x = toy(name, n, generator=0)
        assert x.shape == (n, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert toy(name, 10, generator=0, dtype=F64).dtype == F64
    torch.testing.assert_close(toy(name, 300, generator=3), toy(name, 300, generator=3), rtol=0, atol=0)
    assert not torch.equal(toy(name, 300, generator=3), toy(name, 300, generator=4))
    # seed=s and a generator seeded with s give the same draws; a generator is advanced
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(toy(name, 300, generator=g), toy(name, 300, generator=3), rtol=0, atol=0)
    assert not torch.equal(toy(name, 300, generator=g), toy(name, 300, generator=3))


def test_global_rngs_untouched():
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    for name in NAMES:
        toy(name, 100, generator=1)
        toy(name, 100)  # no seed: a fresh OS-seeded generator, still not the global one
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]


def test_unseeded_draws_differ():
    assert not torch.equal(toy("moons", 50), toy("moons", 50))


@pytest.mark.parametrize("bad", [dict(name="nope", n_samples=5), dict(name="moons", n_samples=0),
                                 dict(name="moons", n_samples=2.5), dict(name="moons", n_samples=5, generator="1"),
                                 dict(name="moons", n_samples=5, generator=1.5)])
def test_bad_arguments(bad):
    with pytest.raises(ConfigError):
        toy(**bad)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError, match="checkerboard"):
        toy("spiral", 10)
    with pytest.raises(ConfigError, match="8gaussians_unit"):
        toy_density("moons")
    with pytest.raises(ConfigError):
        toy_bounds("nope")


def _z_max(k):
    return stats.norm.ppf(1 - 1e-3 / (2 * k))


def _moment_z(x, mean, cov):
    """z-scores (|estimate - truth| / MCSE) of the 2 means and 3 second moments."""
    x = x.to(F64)
    n = x.shape[0]
    zs = list(((x.mean(0) - mean).abs() / (x.std(0) / math.sqrt(n))).tolist())
    second = cov + torch.outer(mean, mean)
    for i, j in [(0, 0), (0, 1), (1, 1)]:
        p = x[:, i] * x[:, j]
        zs.append(abs(float(p.mean() - second[i, j])) / (float(p.std()) / math.sqrt(n)))
    return zs


def test_8gaussians_exact_moments():
    # centres 4 (cos, sin)(k pi/4) / 1.414, std .5 / 1.414: mean 0, cov = (r^2 / 2 + s^2) I
    r, s = 4 / 1.414, 0.5 / 1.414
    cov = (r * r / 2 + s * s) * torch.eye(2, dtype=F64)
    zs = _moment_z(toy("8gaussians", 40000, generator=11, dtype=F64), torch.zeros(2, dtype=F64), cov)
    assert max(zs) < _z_max(5), zs


@pytest.mark.parametrize("name", ["8gaussians", "8gaussians_unit", "grid"])
def test_draws_match_exact_density(name):
    dens = toy_density(name)
    assert isinstance(dens, GaussianMixture)
    x = toy(name, 40000, generator=12, dtype=F64)
    zs = _moment_z(x, dens.mean(), dens.covariance())
    assert max(zs) < _z_max(5 * 3), zs
    # mean log-density of the draws equals minus the differential entropy: check against a
    # Monte Carlo estimate from the density's own sampler (two-sample z-test)
    y = dens.sample(40000, generator=torch.Generator().manual_seed(13), dtype=F64)
    lx, ly = dens.log_prob(x), dens.log_prob(y)
    z = abs(float(lx.mean() - ly.mean())) / math.sqrt(float(lx.var() + ly.var()) / 40000)
    assert z < _z_max(3)


def test_density_definitions():
    unit = toy_density("8gaussians_unit")
    torch.testing.assert_close(unit.means.norm(dim=1), torch.full((8,), math.sqrt(2.0), dtype=F64))
    torch.testing.assert_close(unit.covs, torch.eye(2, dtype=F64).expand(8, 2, 2))
    grid = toy_density("grid")
    assert sorted(map(tuple, grid.means.tolist())) == [(a, b) for a in (-5.0, 0.0, 5.0) for b in (-5.0, 0.0, 5.0)]
    torch.testing.assert_close(grid.covs, 0.3 * torch.eye(2, dtype=F64).expand(9, 2, 2))
    assert float(toy_density("8gaussians").log_normalizer()) == 0.0


def test_checkerboard_structure_and_uniform_x1():
    x = toy("checkerboard", 40000, generator=14, dtype=F64)
    x1 = x[:, 0]
    assert float(x1.min()) >= -4 and float(x1.max()) < 4 and float(x[:, 1].min()) >= -4 and float(x[:, 1].max()) < 4
    # x1 ~ U[-4, 4): mean 0, variance 64/12
    n = x1.numel()
    assert abs(float(x1.mean())) / math.sqrt(64 / 12 / n) < _z_max(3)
    assert stats.kstest(x1.numpy(), stats.uniform(loc=-4, scale=8).cdf).pvalue > 1e-3
    # every point lies on a square of the same colour of the 2x2-cell checkerboard
    parity = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)).remainder(2)
    assert bool((parity == parity[0]).all())
    # x2 is uniform on the union of 4 half-columns: |x2| mean 2
    assert abs(float(x[:, 1].abs().mean()) - 2.0) / math.sqrt(16 / 12 / n) < _z_max(3)


@pytest.mark.parametrize("name", ["swissroll", "circles", "moons"])
def test_matches_sklearn_definition(name):
    """Our torch re-implementations vs scikit-learn's make_* (FFJORD's definition), two-sample z-tests
    on the 2 means and 3 second moments (independent draws, seeded)."""
    from sklearn import datasets

    n = 20000
    rs = np.random.RandomState(0)
    if name == "swissroll":
        ref = datasets.make_swiss_roll(n_samples=n, noise=1.0, random_state=rs)[0][:, [0, 2]] / 5
    elif name == "circles":
        ref = datasets.make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=rs)[0] * 3
    else:
        ref = datasets.make_moons(n_samples=n, noise=0.1, random_state=rs)[0] * 2 + np.array([-1, -0.2])
    ref = torch.as_tensor(ref, dtype=F64)
    ours = toy(name, n, generator=15, dtype=F64)

    def stats_of(x):
        return torch.stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 0] * x[:, 1], x[:, 1] ** 2], 1)

    a, b = stats_of(ours), stats_of(ref)
    z = (a.mean(0) - b.mean(0)).abs() / torch.sqrt((a.var(0) + b.var(0)) / n)
    assert float(z.max()) < _z_max(5 * 3), z


def test_pinwheel_and_spirals_and_rings_structure():
    pw = toy("pinwheel", 5000, generator=16, dtype=F64)
    r = pw.norm(dim=1) / 2  # radius of the feature vector (f0, f1): f0 ~ N(1, .3^2), f1 ~ N(0, .1^2)
    assert abs(float(r.median()) - 1.0) < 0.05
    sp = toy("2spirals", 4000, generator=17, dtype=F64)
    assert float(sp.norm(dim=1).max()) < (3 * math.pi + 0.5 * math.sqrt(2)) / 3 + 0.6  # radius r <= 3 pi
    rings = toy("rings", 4000, generator=18, dtype=F64)
    radii = rings.norm(dim=1)
    for r0 in (0.75, 1.5, 2.25, 3.0):  # 4 rings with a quarter of the points each
        frac = float(((radii - r0).abs() < 0.3).double().mean())
        assert abs(frac - 0.25) < 0.03


@pytest.mark.parametrize("name", NAMES)
def test_bounds_hold_999_permille_of_mass(name):
    (x0, x1), (y0, y1) = toy_bounds(name)
    assert x0 < x1 and y0 < y1
    x = toy(name, 100000, generator=19, dtype=F64)
    outside = ((x[:, 0] < x0) | (x[:, 0] > x1) | (x[:, 1] < y0) | (x[:, 1] > y1)).double().mean()
    assert float(outside) < 1e-3
