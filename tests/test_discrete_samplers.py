"""Discrete samplers (Gibbs, checkerboard Gibbs, Gibbs-with-gradients, Swendsen–Wang, Wolff) and the
lattice data set against exact enumeration / transfer matrices, within Monte Carlo error.

Statistical method: C independent chains from uniform random states, a burn-in long enough for
the magnetisation to relax (the ordered 3x3 torus needs ~60 sweeps to forget a uniform start:
15 sweeps left a measurable bias), then each chain's time average of the statistics; the chain averages are i.i.d., so the between-chain standard error
is an honest MCSE.  Each test checks p statistics jointly with a Bonferroni-corrected two-sided
normal quantile at family-wise level ALPHA = 1e-3: z_crit = Phi^{-1}(1 - ALPHA / (2 p)).
"""
import math
from statistics import NormalDist

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.data.lattice import ising_dataset
from ebmlab.energies import Ising, IsingLattice
from ebmlab.energies.base import Energy
from ebmlab.metrics import exact_moments
from ebmlab.samplers import (
    CheckerboardGibbs,
    Gibbs,
    GibbsWithGradients,
    SwendsenWang,
    Wolff,
    build,
    greedy_colouring,
    lattice_colouring,
    sample,
)
from ebmlab.samplers.lattice_colouring import is_proper_colouring

ALPHA = 1e-3


def z_crit(p):
    return NormalDist().inv_cdf(1 - ALPHA / (2 * p))


def spin_stats(x):
    """[s_i for all i, s_i s_j for i < j] of {0,1} states x."""
    s = 2 * x - 1
    i, j = torch.triu_indices(x.shape[1], x.shape[1], 1)
    return torch.cat([s, s[:, i] * s[:, j]], dim=1)


def exact_spin_stats(energy):
    m = exact_moments(energy, convention="spins")
    i, j = torch.triu_indices(m.mean.shape[0], m.mean.shape[0], 1)
    return torch.cat([m.mean, m.second[i, j]])


def chain_averages(sampler, energy, chains, burn, draws, seed, stat=spin_stats, check_energy=True):
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(chains, energy.n_sites, generator=g, dtype=torch.float64) < 0.5).double()
    st = sampler.init(energy, x0)
    for _ in range(burn):
        st, _ = sampler.step(energy, st, generator=g)
    acc = 0.0
    for _ in range(draws):
        st, _ = sampler.step(energy, st, generator=g)
        acc = acc + stat(st.x)
    if check_energy:  # the cached energy stays exact along the run
        assert torch.allclose(st.energy, energy(st.x), atol=1e-9)
    return acc / draws


def max_abs_z(chain_avgs, truth):
    est = chain_avgs.mean(0)
    mcse = chain_avgs.std(0) / math.sqrt(chain_avgs.shape[0])
    return float(((est - truth) / mcse).abs().max())


def random_ising(n, seed, scale=0.35):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * scale
    J = (A + A.T) / 2
    J.fill_diagonal_(0)
    return Ising(J, torch.randn(n, generator=g, dtype=torch.float64) * scale)


def sparse_ising(n, seed):
    """A ring with random couplings plus a few chords: a sparse graph with real colour blocks."""
    g = torch.Generator().manual_seed(seed)
    J = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        J[i, (i + 1) % n] = J[(i + 1) % n, i] = 0.6 * torch.randn((), generator=g, dtype=torch.float64)
    for i, j in ((0, 5), (2, 8), (3, 10)):
        J[i, j] = J[j, i] = 0.5
    return Ising(J, 0.3 * torch.randn(n, generator=g, dtype=torch.float64))


class SmallNetEnergy(Energy):
    """A non-quadratic discrete energy with only ``forward``: U(x) = a . tanh(W x + b) + c . x.

    Gibbs must fall back to evaluating U at flipped states; for Gibbs-with-gradients the gradient
    estimate d~ differs from the true delta, so only the MH correction makes it exact."""

    discrete = True

    def __init__(self, n, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n_sites = n
        self.W = torch.randn(4, n, generator=g, dtype=torch.float64)
        self.b = torch.randn(4, generator=g, dtype=torch.float64)
        self.a = 1.5 * torch.randn(4, generator=g, dtype=torch.float64)
        self.c = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)

    def forward(self, x):
        return torch.tanh(x @ self.W.T + self.b) @ self.a + x @ self.c


# (name, sampler factory, sweeps-equivalent unit: steps per sweep multiplier)
GENERAL_SAMPLERS = [
    ("gibbs_random", lambda: Gibbs("random"), 1),
    ("gibbs_systematic", lambda: Gibbs("systematic"), 1),
    ("checkerboard_greedy", lambda: CheckerboardGibbs(), 1),
    ("gwg_gradient", lambda: GibbsWithGradients(), "n"),
    ("gwg_exact_delta", lambda: GibbsWithGradients(use_delta=True), "n"),
]


def _steps(unit, n, sweeps):
    return sweeps * (n if unit == "n" else unit)


@pytest.mark.parametrize("name,make,unit", GENERAL_SAMPLERS, ids=[s[0] for s in GENERAL_SAMPLERS])
@pytest.mark.parametrize("model", ["dense10", "sparse12"])
def test_general_samplers_match_exact_moments(name, make, unit, model):
    energy = random_ising(10, 1) if model == "dense10" else sparse_ising(12, 2)
    n = energy.n_sites
    truth = exact_spin_stats(energy)
    avgs = chain_averages(make(), energy, chains=600, burn=_steps(unit, n, 40), draws=_steps(unit, n, 40), seed=3)
    assert max_abs_z(avgs, truth) < z_crit(truth.numel())


@pytest.mark.parametrize("sampler", [CheckerboardGibbs(), Gibbs("systematic")], ids=["checkerboard", "gibbs"])
def test_samplers_on_01_convention(sampler):
    # spins="01": the checkerboard takes its generic delta path (no +-1 spin sweep)
    base = sparse_ising(12, 2)
    energy = Ising(base.J, base.h, spins="01")
    truth = exact_spin_stats(energy)
    avgs = chain_averages(sampler, energy, chains=600, burn=40, draws=40, seed=11)
    assert max_abs_z(avgs, truth) < z_crit(truth.numel())


@pytest.mark.parametrize("name,make,unit", [("gibbs_random", lambda: Gibbs("random"), 1),
                                            ("gwg_gradient", lambda: GibbsWithGradients(), "n")])
def test_samplers_on_non_quadratic_energy_without_delta(name, make, unit):
    energy = SmallNetEnergy(8, 4)
    truth = exact_spin_stats(energy)
    avgs = chain_averages(make(), energy, chains=600, burn=_steps(unit, 8, 40), draws=_steps(unit, 8, 40), seed=5)
    assert max_abs_z(avgs, truth) < z_crit(truth.numel())


LATTICE_SAMPLERS = [
    ("gibbs_random", lambda: Gibbs("random"), 1),
    ("checkerboard", lambda: CheckerboardGibbs(), 1),
    ("gwg", lambda: GibbsWithGradients(), "n"),
    ("swendsen_wang", lambda: SwendsenWang(), 1),
    ("wolff", lambda: Wolff(), 3),
]


@pytest.mark.parametrize("name,make,unit", LATTICE_SAMPLERS, ids=[s[0] for s in LATTICE_SAMPLERS])
@pytest.mark.parametrize("side,periodic,coupling,field,burn", [(3, True, 0.4, 0.15, 80), (3, False, 0.5, -0.1, 80),
                                                              (4, True, 0.35, 0.0, 20)])
def test_lattice_samplers_match_exact_moments(name, make, unit, side, periodic, coupling, field, burn):
    # burn-in in sweeps: with a field the magnetisation of a uniform start relaxes slowly (80);
    # at zero field a uniform start is already symmetric (20)
    energy = IsingLattice(side, coupling, field, periodic=periodic).double()
    n = energy.n_sites
    truth = exact_spin_stats(energy)
    avgs = chain_averages(make(), energy, chains=500, burn=_steps(unit, n, burn), draws=_steps(unit, n, 30), seed=6)
    assert max_abs_z(avgs, truth) < z_crit(truth.numel())


def transfer_matrix_nn_correlation(side, coupling):
    """E[s_i s_j] of nearest neighbours on the side x side torus: (1 / n_bonds) d log Z / d coupling,
    log Z = log tr(T^side) with the row-to-row transfer matrix T (2^side states per row)."""
    K = torch.tensor(coupling, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([[1.0 if (k >> i) & 1 else -1.0 for i in range(side)] for k in range(2**side)],
                        dtype=torch.float64)
    horiz = (rows * torch.roll(rows, 1, 1)).sum(1)
    vert = rows @ rows.T
    T = torch.exp(K * (0.5 * horiz[:, None] + vert + 0.5 * horiz[None, :]))
    log_z = torch.log(torch.trace(torch.linalg.matrix_power(T, side)))
    (dk,) = torch.autograd.grad(log_z, K)
    return float(dk) / (2 * side * side)


def nn_correlation_stat(side):
    def stat(x):
        s = (2 * x - 1).reshape(-1, side, side)
        return (0.5 * ((s * torch.roll(s, -1, 2)).mean((1, 2)) + (s * torch.roll(s, -1, 1)).mean((1, 2)))).unsqueeze(1)

    return stat


def test_checkerboard_on_odd_periodic_5x5_is_exact_and_two_colours_would_be_wrong():
    side, coupling = 5, 0.35
    exact = transfer_matrix_nn_correlation(side, coupling)
    assert exact == pytest.approx(0.514, abs=5e-4)  # the transfer-matrix value, also printed by bench ising-samplers
    energy = IsingLattice(side, coupling).double()
    stat = nn_correlation_stat(side)
    crit = z_crit(3)  # three comparisons below

    board = chain_averages(CheckerboardGibbs(), energy, chains=800, burn=30, draws=100, seed=7, stat=stat)
    ref = chain_averages(Gibbs("random"), energy, chains=800, burn=30, draws=100, seed=8, stat=stat)
    assert max_abs_z(board, torch.tensor([exact])) < crit
    se = math.sqrt(board.var(0).item() / 800 + ref.var(0).item() / 800)
    assert abs(board.mean().item() - ref.mean().item()) / se < crit

    # the common 2-colour checkerboard on an odd torus: rejected as a colouring, and (forced) it
    # samples the wrong law — the same test detects it, so the test above has power.
    two = (lattice_colouring(side, periodic=False))  # (r + c) mod 2
    with pytest.raises(ConfigError, match="proper colouring"):
        CheckerboardGibbs(colours=two).init(energy, torch.zeros(2, 25, dtype=torch.float64))
    masks = torch.stack([two == 0, two == 1])

    class Forced(CheckerboardGibbs):
        def init(self, energy, x0):
            st = super().init(energy, x0)
            return st.replace(extra={"colour_masks": masks})

    bad = chain_averages(Forced(), energy, chains=800, burn=30, draws=100, seed=9, stat=stat, check_energy=False)
    assert max_abs_z(bad, torch.tensor([exact])) > 10
    assert bad.mean().item() == pytest.approx(0.475, abs=0.01)  # the 2-colour sweep's biased value, measured


def test_colourings_are_proper():
    for side in (3, 4, 5, 7, 8):
        for periodic in (True, False):
            c = lattice_colouring(side, periodic)
            J = IsingLattice(side, 1.0, periodic=periodic).J
            assert is_proper_colouring(J, c)
            assert int(c.max()) + 1 == (3 if periodic and side % 2 else 2)
    energy = sparse_ising(12, 2)
    c = greedy_colouring(energy.J)
    assert is_proper_colouring(energy.J, c) and int(c.max()) + 1 <= 4


def test_ising_dataset_matches_exact_moments_and_is_reproducible():
    energy = IsingLattice(3, 0.45, 0.1).double()
    chains, per_chain = 800, 5
    x = ising_dataset(3, 0.45, chains * per_chain, field=0.1, n_chains=chains, sweeps=2, burn_in=20, generator=0,
                      dtype=torch.float64)
    assert x.shape == (chains * per_chain, 9) and x.dtype == torch.float64
    assert bool(((x == 0) | (x == 1)).all())
    avgs = spin_stats(x).reshape(per_chain, chains, -1).mean(0)  # rows are (kept sweep, chain)
    truth = exact_spin_stats(energy)
    assert max_abs_z(avgs, truth) < z_crit(truth.numel())
    y = ising_dataset(3, 0.45, 50, field=0.1, n_chains=10, sweeps=2, burn_in=5, generator=1)
    assert torch.equal(y, ising_dataset(3, 0.45, 50, field=0.1, n_chains=10, sweeps=2, burn_in=5, generator=1))
    assert y.dtype == torch.float32
    with pytest.raises(ConfigError):
        ising_dataset(3, -0.3, 10, method="checkerboard+sw")
    with pytest.raises(ConfigError):
        ising_dataset(3, 0.3, 0)


# ---------------------------------------------------------------------------------------------
# contract
CONTRACT = [
    ("gibbs", lambda: Gibbs("random"), "ising"),
    ("gibbs_systematic", lambda: Gibbs("systematic"), "lattice"),
    ("checkerboard_gibbs", lambda: CheckerboardGibbs(), "lattice"),
    ("checkerboard_gibbs_dense", lambda: CheckerboardGibbs(), "ising"),
    ("gwg", lambda: GibbsWithGradients(), "ising"),
    ("gwg_delta", lambda: GibbsWithGradients(use_delta=True), "lattice"),
    ("swendsen_wang", lambda: SwendsenWang(), "lattice"),
    ("wolff", lambda: Wolff(), "lattice"),
]


def contract_energy(kind, dtype):
    if kind == "lattice":
        return IsingLattice(3, 0.4, 0.1).to(dtype)
    return random_ising(6, 10).to(dtype)


@pytest.mark.parametrize("name,make,kind", CONTRACT, ids=[c[0] for c in CONTRACT])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_contract(name, make, kind, dtype):
    energy = contract_energy(kind, dtype)
    sampler = make()
    chains, n = 7, energy.n_sites
    x0 = (torch.rand(chains, n, generator=torch.Generator().manual_seed(0)) < 0.5).to(dtype)
    x0_copy = x0.clone()
    st = sampler.init(energy, x0)
    saved = (st.x.clone(), st.energy.clone())
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(42)
        s = st
        for _ in range(3):
            s, info = sampler.step(energy, s, generator=g)
        runs.append(s.x)
        assert s.x.shape == (chains, n) and s.x.dtype == dtype
        assert s.energy.shape == (chains,)
        assert bool(((s.x == 0) | (s.x == 1)).all())
        assert torch.allclose(s.energy, energy(s.x).to(s.energy.dtype), atol=1e-4)
        assert info.acceptance_rate.shape == (chains,)
        assert bool(((info.acceptance_rate >= 0) & (info.acceptance_rate <= 1)).all())
        assert info.accepted.dtype == torch.bool and info.divergent.shape == (chains,)
    assert torch.equal(runs[0], runs[1])  # same generator -> same output
    assert torch.equal(x0, x0_copy)  # inputs not mutated
    assert torch.equal(st.x, saved[0]) and torch.equal(st.energy, saved[1])  # old state untouched
    assert getattr(sampler, "discrete", False)


def test_registry_and_driver():
    for name in ("gibbs", "checkerboard_gibbs", "gwg", "swendsen_wang", "wolff"):
        assert build(name).name == name
    assert build("gibbs", scan="systematic").scan == "systematic"
    energy = IsingLattice(3, 0.3)
    x0 = torch.zeros(4, 9)
    xs, info = sample(energy, Gibbs(), x0, steps=5, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (5, 4, 9)


class Continuous(Energy):
    def forward(self, x):
        return (x**2).sum(-1)


def test_bad_inputs_raise():
    lattice = IsingLattice(3, 0.3)
    x = torch.zeros(2, 9)
    with pytest.raises(ConfigError, match="discrete"):
        Gibbs().init(Continuous(), torch.zeros(2, 3))
    with pytest.raises(DataError, match="0 and 1"):
        Gibbs().init(lattice, torch.full((2, 9), 0.5))
    with pytest.raises(DataError, match=r"\[batch, 9\]"):
        Gibbs().init(lattice, torch.zeros(2, 8))
    with pytest.raises(DataError):
        Gibbs().init(lattice, torch.zeros(9))
    with pytest.raises(ConfigError, match="scan"):
        Gibbs(scan="diagonal")
    with pytest.raises(ConfigError, match="IsingLattice"):
        SwendsenWang().init(random_ising(9, 0), x)
    with pytest.raises(ConfigError, match="coupling >= 0"):
        Wolff().init(IsingLattice(3, -0.3), x)
    with pytest.raises(ConfigError, match="delta"):
        GibbsWithGradients(use_delta=True).init(SmallNetEnergy(9, 0), x)
    with pytest.raises(ConfigError, match="interaction graph"):
        CheckerboardGibbs().init(SmallNetEnergy(9, 0), x) if hasattr(SmallNetEnergy, "delta") else \
            CheckerboardGibbs().colouring(SmallNetEnergy(9, 0))
    with pytest.raises(ConfigError, match="entries"):
        CheckerboardGibbs(colours=torch.zeros(4, dtype=torch.long)).init(lattice, x)
    with pytest.raises(ConfigError):
        CheckerboardGibbs(colours=torch.tensor([0.5, 1.0]))
    with pytest.raises(ConfigError, match="use_delta"):
        GibbsWithGradients(use_delta="yes")


class Counting(SmallNetEnergy):
    """SmallNetEnergy that counts forward and energy_and_grad calls."""

    def __init__(self, n, seed):
        super().__init__(n, seed)
        self.forwards = 0
        self.grads = 0

    def forward(self, x):
        self.forwards += 1
        return super().forward(x)

    def energy_and_grad(self, x):
        self.grads += 1
        self.forwards -= 1  # the base implementation calls forward once
        return super().energy_and_grad(x)


def test_evaluation_counts():
    x0 = torch.zeros(5, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    energy = Counting(6, 1)
    sampler = GibbsWithGradients()
    st = sampler.init(energy, x0)
    assert (energy.grads, energy.forwards) == (1, 0)
    for _ in range(4):
        st, info = sampler.step(energy, st, generator=g)
        assert info.n_grad_evals == 1
    assert (energy.grads, energy.forwards) == (5, 0)  # one energy_and_grad per step, cached
    energy = Counting(6, 1)
    sampler = Gibbs()
    st = sampler.init(energy, x0)
    st, info = sampler.step(energy, st, generator=g)
    assert energy.forwards == 1 + 6 and info.n_grad_evals == 6  # one evaluation per site update
