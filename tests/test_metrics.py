"""Metrics against brute force, POT, scipy and closed forms."""
import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy import stats

from ebmlab import ConfigError, DataError
from ebmlab.energies import FunctionEnergy, Gaussian
from ebmlab.metrics import (c2st, energy_distance, grid_density, grid_log_density, grid_log_prob, grid_log_z,
                            grid_nll, median_heuristic, mmd, sinkhorn)

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _pair(n=30, m=30, seed=0):
    g = _gen(seed)
    return torch.randn(n, 2, generator=g, dtype=F64), 0.5 * torch.randn(m, 2, generator=g, dtype=F64) + 1.0


# ---------------------------------------------------------------- sinkhorn
@pytest.mark.parametrize("reg", [1.0, 0.1])
def test_entropic_ot_matches_pot(reg):
    x, y = _pair(25, 35)
    a, b = np.full(25, 1 / 25), np.full(35, 1 / 35)
    cost = ot.dist(x.numpy(), y.numpy())  # squared Euclidean
    plan = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    ref = float((plan * cost).sum() + reg * (plan * np.log(plan / np.outer(a, b))).sum())
    ours = sinkhorn(x, y, reg=reg, debiased=False, tol=1e-10)
    assert abs(ours - ref) < 1e-7 * abs(ref), (ours, ref)


@pytest.mark.parametrize("p, metric", [(2, "sqeuclidean"), (1, "euclidean")])
def test_debiased_sinkhorn_tends_to_exact_ot(p, metric):
    """For equal-size uniform samples S_eps -> OT_0 (POT's exact EMD) as eps -> 0."""
    x, y = _pair(30, 30, seed=1)
    a = np.full(30, 1 / 30)
    exact = ot.emd2(a, a, ot.dist(x.numpy(), y.numpy(), metric=metric))
    reg = 1e-2 if p == 2 else 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # must converge
        s = sinkhorn(x, y, reg=reg, p=p, tol=1e-3)
    assert abs(s - exact) < 1e-3 * exact, (s, exact)


def test_sinkhorn_properties():
    x, y = _pair(40, 50, seed=2)
    s_xy, s_yx = sinkhorn(x, y), sinkhorn(y, x)
    assert abs(s_xy - s_yx) < 1e-6 * s_xy  # symmetry
    assert abs(sinkhorn(x, x)) < 1e-6  # S(x, x) = 0, up to the stopping tolerance
    for seed in range(3):  # positivity, also for samples of one law
        u, v = _pair(30, 30, seed=10 + seed)
        assert sinkhorn(u, u + 0.05 * v) > 0
    # a translation by delta adds exactly |delta|^2 (squared Euclidean cost, any eps):
    # the cross term of |x - y - delta|^2 is separable and integrates to 0 against equal marginals.
    vals = []
    for shift in (0.25, 0.5, 1.0, 2.0):
        delta = torch.tensor([shift, -shift], dtype=F64)
        s = sinkhorn(x, x + delta, reg=0.05)
        assert abs(s - 2 * shift**2) < 1e-6, (shift, s)  # default tol 1e-4 gives ~1e-7
        vals.append(sinkhorn(x, y + delta))
    assert all(a < b for a, b in zip(vals[1:], vals[2:]))  # grows with a shift away from x


def test_sinkhorn_subsampling_warns_and_is_the_subsets_value():
    """Above max_samples each sample is replaced by a random subset, with a RuntimeWarning naming the
    sizes; the value is exactly that of the subsets drawn with the generator (x's first, then y's)."""
    x, y = _pair(300, 200, seed=3)
    with pytest.warns(RuntimeWarning, match=r"x has 300 rows and y 200.*max_samples=100"):
        a = sinkhorn(x, y, max_samples=100, generator=_gen(5))
    g = _gen(5)
    xs = x[torch.randperm(300, generator=g)[:100]]
    ys = y[torch.randperm(200, generator=g)[:100]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no subsampling below the cap: no warning
        assert a == sinkhorn(xs, ys, max_samples=100)
        full = sinkhorn(x, y, max_samples=None)
        assert full == sinkhorn(x, y, max_samples=300)
    with pytest.warns(RuntimeWarning, match="max_samples"):
        assert a != sinkhorn(x, y, max_samples=100, generator=_gen(6))
    with pytest.warns(RuntimeWarning, match="max_samples"):  # default generator: seeded 0, deterministic
        assert sinkhorn(x, y, max_samples=100) == sinkhorn(x, y, max_samples=100, generator=_gen(0))
    with pytest.warns(RuntimeWarning, match="max_samples"):
        only_x = sinkhorn(x, y, max_samples=250, generator=_gen(7))  # y (200 rows) is kept whole
    assert only_x == sinkhorn(x[torch.randperm(300, generator=_gen(7))[:250]], y, max_samples=None)
    with pytest.raises(ConfigError):
        sinkhorn(x, y, max_samples=0)
    with pytest.raises(ConfigError):
        sinkhorn(x, y, generator=5)


def test_sinkhorn_errors():
    x, y = _pair(300, 200, seed=3)
    with pytest.raises(ConfigError):
        sinkhorn(x, y, reg=0.0)
    with pytest.raises(ConfigError):
        sinkhorn(x, y, p=3)
    with pytest.raises(DataError):
        sinkhorn(x, torch.zeros(5, 3))
    with pytest.raises(DataError):
        sinkhorn(x, torch.full((5, 2), float("nan")))
    with pytest.warns(RuntimeWarning, match="max_iter"):
        sinkhorn(x, y, reg=1e-3, max_iter=2)


# ---------------------------------------------------------------- mmd
def _mmd_brute(x, y, bws, kernel, unbiased):
    def k(a, b):
        d = float(np.linalg.norm(a - b))
        return sum(math.exp(-d * d / (2 * h * h)) if kernel == "gaussian" else math.exp(-d / h) for h in bws)

    x, y = x.numpy(), y.numpy()
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not unbiased or i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not unbiased or i != j)
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if unbiased:
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2 * kxy / (n * m)


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian"])
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("bandwidth", [None, 0.7, [0.3, 1.0, 3.0]])
def test_mmd_matches_brute_force(kernel, unbiased, bandwidth):
    x, y = _pair(15, 12, seed=4)
    if bandwidth is None:
        z = torch.cat([x, y]).numpy()
        dists = [np.linalg.norm(z[i] - z[j]) for i in range(len(z)) for j in range(i + 1, len(z))]
        assert abs(median_heuristic(x, y) - float(np.median(dists))) < 1e-14
        bws = [float(np.median(dists))]
    else:
        bws = bandwidth if isinstance(bandwidth, list) else [bandwidth]
    ours = mmd(x, y, bandwidth=bandwidth, kernel=kernel, unbiased=unbiased)
    assert abs(ours - _mmd_brute(x, y, bws, kernel, unbiased)) < 1e-12


def test_median_heuristic_cap_is_explicit():
    """Above max_samples pooled rows the median is that of a random subset drawn with the generator
    (default: seeded 0); max_samples=None gives the exact median; the MMD uses the default."""
    x, y = _pair(1500, 1000, seed=8)
    z = torch.cat([x, y])
    exact = float(np.median(torch.pdist(z).numpy()))
    assert median_heuristic(x, y, max_samples=None) == pytest.approx(exact, rel=1e-12)
    sub = z[torch.randperm(2500, generator=_gen(3))[:400]]
    assert median_heuristic(x, y, max_samples=400, generator=_gen(3)) == pytest.approx(
        float(np.median(torch.pdist(sub).numpy())), rel=1e-12)
    default = median_heuristic(x, y)
    assert default == median_heuristic(x, y, max_samples=2000, generator=_gen(0))
    assert default != exact and abs(default / exact - 1) < 0.02  # a subset of 2000 rows: ~1e-3 relative
    assert mmd(x, y) == mmd(x, y, bandwidth=default)
    with pytest.raises(ConfigError):
        median_heuristic(x, y, max_samples=1)
    with pytest.raises(DataError, match="columns"):
        median_heuristic(x, torch.zeros(5, 3))


def _gauss_kernel_mean(mean, var, h):
    """E exp(-|Z|^2 / (2 h^2)) for Z ~ N(mean, var I) in d dims."""
    d = mean.numel()
    return (1 + var / h**2) ** (-d / 2) * math.exp(-0.5 * float(mean @ mean) / (var + h**2))


def test_mmd_unbiased_matches_closed_form_for_two_gaussians():
    """MMD^2 between N(0, s1^2 I) and N(mu, s2^2 I) in closed form; 20 independent replicates,
    |mean - truth| / MCSE below the 0.999 normal quantile."""
    s1, s2, h = 1.0, 1.5, 1.2
    mu = torch.tensor([0.5, -0.3], dtype=F64)
    zero = torch.zeros(2, dtype=F64)
    truth = (_gauss_kernel_mean(zero, 2 * s1**2, h) + _gauss_kernel_mean(zero, 2 * s2**2, h)
             - 2 * _gauss_kernel_mean(mu, s1**2 + s2**2, h))
    g = _gen(5)
    reps = torch.tensor([mmd(s1 * torch.randn(300, 2, generator=g, dtype=F64),
                             mu + s2 * torch.randn(300, 2, generator=g, dtype=F64), bandwidth=h)
                         for _ in range(20)], dtype=F64)
    z = abs(float(reps.mean()) - truth) / (float(reps.std()) / math.sqrt(20))
    assert z < stats.t.ppf(1 - 1e-3 / 2, df=19), (float(reps.mean()), truth)


def test_mmd_blocks_and_errors():
    x, y = _pair(2500, 40, seed=6)  # more rows than one block
    ours = mmd(x, y, bandwidth=1.0)
    kxx = torch.exp(-torch.cdist(x, x) ** 2 / 2)
    kyy = torch.exp(-torch.cdist(y, y) ** 2 / 2)
    kxy = torch.exp(-torch.cdist(x, y) ** 2 / 2)
    n, m = len(x), len(y)
    ref = (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()
    assert abs(ours - float(ref)) < 1e-10
    with pytest.raises(ConfigError):
        mmd(x, y, kernel="cosine")
    with pytest.raises(ConfigError):
        mmd(x, y, bandwidth=-1.0)
    with pytest.raises(DataError):
        mmd(torch.zeros(4, 2), torch.zeros(4, 2))  # median heuristic 0


# ---------------------------------------------------------------- energy distance
def test_energy_distance_brute_force_and_scipy():
    x, y = _pair(13, 9, seed=7)
    xn, yn = x.numpy(), y.numpy()

    def mean_dist(a, b, skip_diag):
        vals = [np.linalg.norm(a[i] - b[j]) for i in range(len(a)) for j in range(len(b)) if not (skip_diag and i == j)]
        return sum(vals) / (len(a) * (len(b) - 1) if skip_diag else len(a) * len(b))

    v = 2 * mean_dist(xn, yn, False) - mean_dist(xn, xn, False) - mean_dist(yn, yn, False)
    u = 2 * mean_dist(xn, yn, False) - mean_dist(xn, xn, True) - mean_dist(yn, yn, True)
    assert abs(energy_distance(x, y) - v) < 1e-12
    assert abs(energy_distance(x, y, unbiased=True) - u) < 1e-12
    # scipy (1-D) returns sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) of the empirical laws
    assert abs(energy_distance(x[:, 0], y[:, 0]) - stats.energy_distance(xn[:, 0], yn[:, 0]) ** 2) < 1e-12
    assert abs(energy_distance(x, x)) < 1e-12
    with pytest.raises(DataError):
        energy_distance(x, torch.zeros(4, 3))


# ---------------------------------------------------------------- grid
def test_grid_nll_matches_exact_nll_of_a_gaussian():
    e = Gaussian([0.5, -1.0], [[1.0, 0.4], [0.4, 0.8]])  # Z = 1, U = -log p
    x = e.sample(1000, generator=_gen(8), dtype=F64)
    exact = float(e(x).mean())
    bounds = ((-9.5, 10.5), (-11.0, 9.0))
    assert abs(grid_nll(e, x, bounds, resolution=400) - exact) < 1e-3
    assert abs(grid_log_z(e, bounds, resolution=400)) < 1e-3
    # an unnormalised version (U + 7) gives the same NLL; blocks do not change the result
    shifted = FunctionEnergy(lambda z: e(z) + 7.0)
    assert abs(grid_nll(shifted, x, bounds, resolution=400, batch_size=1000) - exact) < 1e-3
    assert abs(grid_log_z(shifted, bounds, 400, batch_size=777) - grid_log_z(shifted, bounds, 400)) < 1e-10
    # points outside the box still get -U(x) - log Z
    far = torch.tensor([[30.0, 30.0]], dtype=F64)
    lp = grid_log_prob(e, far, bounds, resolution=200)
    assert abs(float(lp[0]) - float(-e(far)[0] - grid_log_z(e, bounds, 200))) < 1e-9


def test_grid_density_orientation_and_normalisation():
    e = Gaussian([1.0, -2.0], [[0.3, 0.0], [0.0, 0.6]])
    bounds = ((-4.0, 6.0), (-7.0, 3.0))
    xs, ys, dens = grid_density(e, bounds, resolution=101)
    assert xs.shape == ys.shape == dens.shape == (101, 101)
    cell = (10 / 101) ** 2
    assert abs(float(dens.sum()) * cell - 1.0) < 1e-10
    i, j = np.unravel_index(int(dens.argmax()), dens.shape)
    assert abs(float(xs[i, j]) - 1.0) < 0.1 and abs(float(ys[i, j]) + 2.0) < 0.1
    assert float(xs[0, 1] - xs[0, 0]) > 0 and float(ys[1, 0] - ys[0, 0]) > 0  # rows are y, columns x
    # density at a midpoint equals the exact Gaussian density there (the box holds ~all mass)
    pt = torch.stack([xs[i, j], ys[i, j]])[None]
    assert abs(float(dens[i, j]) - math.exp(float(e.log_prob(pt)[0]))) < 1e-3 * float(dens[i, j])


def test_grid_log_density_is_the_shared_grid():
    """One pass gives the log-density (rows y, columns x), log Z and the float64 midpoints; grid_density
    and grid_log_z are the same numbers; a float32 energy keeps exact float64 midpoints."""
    e = Gaussian([1.0, -2.0], [[0.3, 0.1], [0.1, 0.6]])
    bounds = ((-4.0, 6.0), (-7.0, 3.0))
    grid = grid_log_density(e, bounds, resolution=60)
    assert grid.log_density.shape == (60, 60) and grid.cell_area == pytest.approx((10 / 60) ** 2, rel=1e-14)
    torch.testing.assert_close(grid.xs, -4.0 + (10 / 60) * (torch.arange(60, dtype=F64) + 0.5), rtol=0, atol=1e-14)
    torch.testing.assert_close(grid.ys, -7.0 + (10 / 60) * (torch.arange(60, dtype=F64) + 0.5), rtol=0, atol=1e-14)
    assert grid.log_z == pytest.approx(grid_log_z(e, bounds, 60), abs=1e-12)
    assert float(torch.exp(grid.log_density).sum()) * grid.cell_area == pytest.approx(1.0, abs=1e-12)
    i, j = 17, 41  # row i is y = ys[i], column j is x = xs[j]
    pt = torch.tensor([[float(grid.xs[j]), float(grid.ys[i])]], dtype=F64)
    assert float(grid.log_density[i, j]) == pytest.approx(float(-e(pt)[0]) - grid.log_z, abs=1e-12)
    _, _, dens = grid_density(e, bounds, resolution=60)
    torch.testing.assert_close(dens, torch.exp(grid.log_density), rtol=0, atol=0)
    g32 = grid_log_density(FunctionEnergy(lambda z: e(z.double()).float()).float(), bounds, resolution=60)
    assert g32.xs.dtype == F64
    torch.testing.assert_close(g32.xs, grid.xs, rtol=0, atol=0)
    with pytest.raises(DataError, match="non-finite"):
        grid_log_density(FunctionEnergy(lambda z: torch.full((z.shape[0],), float("inf"))), (-3, 3))


def test_grid_errors():
    e = Gaussian([0.0, 0.0], 1.0)
    for bad in [((1.0, -1.0), (0.0, 1.0)), (0.0,), ((0.0, float("inf")), (0.0, 1.0)), "box"]:
        with pytest.raises(ConfigError):
            grid_log_z(e, bad)
    with pytest.raises(ConfigError):
        grid_log_z(e, (-3, 3), resolution=1)
    with pytest.raises(DataError):
        grid_nll(e, torch.zeros(3, 3), (-3, 3))
    with pytest.raises(DataError, match="non-finite"):
        grid_log_z(FunctionEnergy(lambda z: torch.full((z.shape[0],), float("nan"))), (-3, 3))


# ---------------------------------------------------------------- c2st
def test_c2st_same_law_is_chance_and_shift_gives_bayes_accuracy():
    g = _gen(9)
    n = 1000
    x = torch.randn(n, 2, generator=g, dtype=F64)
    same = c2st(x, torch.randn(n, 2, generator=g, dtype=F64))
    # accuracy over 2n held-out points: sd ~ sqrt(.25 / 2n) = .011; tolerance .05 (~4.5 sd)
    assert abs(same - 0.5) < 0.05, same
    # N(0, I) vs N((2, 0), I): Bayes-optimal accuracy Phi(|delta| / 2) = Phi(1) = .841; 2 x 500 points
    # (sd of the accuracy ~ sqrt(.84 * .16 / 1000) = .012, plus the MLP's small excess error)
    shifted = c2st(x[:500], torch.randn(500, 2, generator=g, dtype=F64) + torch.tensor([2.0, 0.0], dtype=F64))
    assert abs(shifted - stats.norm.cdf(1.0)) < 0.05, shifted
    far = c2st(x[:200], torch.randn(200, 2, generator=g, dtype=F64) + 20.0)
    assert far > 0.99
    with pytest.raises(DataError):
        c2st(x[:3], x[:3], n_folds=5)


def test_c2st_generator_is_an_int_seed_or_a_torch_generator():
    from ebmlab.metrics.c2st import sklearn_random_state

    # an int is sklearn's random_state as is (generator=1 is sbibm's seed=1); a generator gives one draw from it
    assert sklearn_random_state(7) == 7
    draw = int(torch.randint(0, 2**31, (1,), generator=_gen(3)).item())
    assert sklearn_random_state(_gen(3)) == draw
    g = _gen(4)
    assert sklearn_random_state(g) != sklearn_random_state(g)  # the generator advances
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ConfigError, match="generator"):
            sklearn_random_state(bad)
    x = torch.randn(40, 2, generator=_gen(5), dtype=F64)
    y = torch.randn(40, 2, generator=_gen(6), dtype=F64) + 1.0
    a = c2st(x, y, generator=_gen(8), n_folds=2)
    assert a == c2st(x, y, generator=_gen(8), n_folds=2)
    assert a == c2st(x, y, generator=sklearn_random_state(_gen(8)), n_folds=2)
