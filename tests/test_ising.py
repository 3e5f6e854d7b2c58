"""Ising energies: energies against brute-force loops, delta against explicit flips, the
exponential-family view, gradients, the ones-and-agreements parametrisation, learnable variants, errors."""
import itertools

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.energies import Ising, IsingLattice, from_spins, to_spins


def random_ising(n, seed, scale=0.5, spins="pm1", learnable=False):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * scale
    J = (A + A.T) / 2
    J.fill_diagonal_(0)
    h = torch.randn(n, generator=g, dtype=torch.float64) * scale
    return Ising(J, h, spins=spins, learnable=learnable), J, h


def lattice_bonds(side, periodic):
    """Nearest-neighbour pairs, each once, by explicit enumeration (independent of the class)."""
    bonds = set()
    for r in range(side):
        for c in range(side):
            for dr, dc in ((0, 1), (1, 0)):
                rr, cc = r + dr, c + dc
                if not periodic and (rr >= side or cc >= side):
                    continue
                a, b = r * side + c, (rr % side) * side + (cc % side)
                bonds.add((min(a, b), max(a, b)))
    return sorted(bonds)


def loop_energy_lattice(x_row, side, coupling, field, periodic):
    s = [2 * v - 1 for v in x_row]
    return -coupling * sum(s[a] * s[b] for a, b in lattice_bonds(side, periodic)) - field * sum(s)


def random_states(n_rows, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n_rows, n, generator=g) < 0.5).to(dtype)


def test_spin_conversion_roundtrip():
    x = random_states(5, 7, 0)
    s = to_spins(x)
    assert set(s.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(from_spins(s), x)


@pytest.mark.parametrize("spins", ["pm1", "01"])
def test_ising_energy_matches_pairwise_loop(spins):
    model, J, h = random_ising(6, 1, spins=spins)
    x = random_states(20, 6, 2)
    for row, u in zip(x.tolist(), model(x).tolist()):
        s = [2 * v - 1 for v in row] if spins == "pm1" else row
        ref = -sum(J[i, j].item() * s[i] * s[j] for i in range(6) for j in range(i + 1, 6)) - sum(
            h[i].item() * s[i] for i in range(6)
        )
        assert u == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("spins", ["pm1", "01"])
def test_ising_delta_matches_explicit_flips(spins):
    model, _, _ = random_ising(8, 3, spins=spins)
    x = random_states(16, 8, 4)
    d = model.delta(x)
    u = model(x)
    for i in range(8):
        xf = x.clone()
        xf[:, i] = 1 - xf[:, i]
        assert torch.allclose(d[:, i], model(xf) - u, atol=1e-12)
    idx = torch.randint(8, (16,), generator=torch.Generator().manual_seed(5))
    assert torch.allclose(model.site_delta(x, idx), d[torch.arange(16), idx], atol=1e-12)


@pytest.mark.parametrize("periodic,side", [(True, 3), (True, 4), (False, 2), (False, 3)])
def test_lattice_energy_and_delta_brute_force(periodic, side):
    coupling, field = 0.37, -0.21
    model = IsingLattice(side, coupling, field, periodic=periodic)
    n = side * side
    x = random_states(12, n, 6)
    u = model(x)
    for row, val in zip(x.tolist(), u.tolist()):
        assert val == pytest.approx(loop_energy_lattice(row, side, coupling, field, periodic), abs=1e-12)
    d = model.delta(x)
    for i in range(n):
        xf = x.clone()
        xf[:, i] = 1 - xf[:, i]
        assert torch.allclose(d[:, i], model(xf) - u, atol=1e-12)
    idx = torch.randint(n, (12,), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(model.site_delta(x, idx), d[torch.arange(12), idx], atol=1e-12)
    # dense view: the same model as a general Ising, and n_bonds right
    assert torch.allclose(model.to_ising()(x), u, atol=1e-12)
    assert model.n_bonds == len(lattice_bonds(side, periodic))
    assert torch.equal(model.J, model.J.T) and float(model.J.diagonal().abs().max()) == 0.0


def test_statistics_theta_consistency():
    model, _, _ = random_ising(7, 8)
    x = random_states(30, 7, 9)
    assert torch.allclose(model(x), -model.statistics(x) @ model.theta, atol=1e-12)
    assert model.statistics(x).shape == (30, model.theta.shape[0])
    lat = IsingLattice(4, 0.3, 0.1)
    x = random_states(30, 16, 10)
    assert torch.allclose(lat(x), -lat.statistics(x) @ lat.theta.to(torch.float64), atol=1e-12)
    # only the couplings actually present are statistics of a sparse Ising
    J = torch.zeros(4, 4, dtype=torch.float64)
    J[0, 1] = J[1, 0] = 0.5
    sparse = Ising(J)
    assert sparse.theta.shape == (1 + 4,)


@pytest.mark.parametrize("make", [lambda: random_ising(6, 11)[0], lambda: random_ising(6, 11, spins="01")[0],
                                  lambda: IsingLattice(3, 0.4, 0.2), lambda: IsingLattice(3, 0.4, 0.2, periodic=False)])
def test_analytic_gradient_matches_autograd(make):
    model = make()
    g = torch.Generator().manual_seed(12)
    x = torch.rand(5, model.n_sites, generator=g, dtype=torch.float64)  # the relaxation
    u, grad = model.energy_and_grad(x)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(model(xr).sum(), xr)
    assert torch.allclose(u, model(x), atol=1e-12)
    assert torch.allclose(grad, ref, atol=1e-12)
    # on {0,1} states the gradient estimate (1 - 2x) * grad U is exactly delta (quadratic energy)
    xb = random_states(5, model.n_sites, 13)
    _, gb = model.energy_and_grad(xb)
    assert torch.allclose((1 - 2 * xb) * gb, model.delta(xb), atol=1e-12)


@pytest.mark.parametrize("periodic", [True, False])
def test_from_ones_and_agreements_equals_that_parametrisation_up_to_constant(periodic):
    side, alpha, beta = 3, 0.7, -0.45
    model = IsingLattice.from_ones_and_agreements(side, alpha, beta, periodic=periodic)
    bonds = lattice_bonds(side, periodic)
    diffs = []
    for row in itertools.product([0.0, 1.0], repeat=side * side):
        log_p_seed = alpha * sum(row) + beta * sum(1.0 for a, b in bonds if row[a] == row[b])
        u = model(torch.tensor([row], dtype=torch.float64)).item()
        diffs.append(log_p_seed + u)  # log p = -U + const
    assert max(diffs) - min(diffs) < 1e-10
    n = side * side
    assert diffs[0] == pytest.approx(alpha * n / 2 + beta * len(bonds) / 2, abs=1e-10)


def test_learnable_ising_stays_symmetric_and_gets_gradients():
    model, J, h = random_ising(5, 14, learnable=True)
    assert torch.allclose(model.J, J) and torch.allclose(model.h, h)
    x = random_states(8, 5, 15)
    loss = model(x).mean()
    loss.backward()
    assert model.weight.grad is not None and model.bias.grad is not None
    with torch.no_grad():
        model.weight += torch.randn(5, 5, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    J_now = model.J.detach()
    assert torch.allclose(J_now, J_now.T) and float(J_now.diagonal().abs().max()) == 0.0
    assert model.theta.requires_grad
    lat = IsingLattice(3, 0.2, 0.0, learnable=True)
    lat(random_states(4, 9, 17, dtype=torch.float32)).sum().backward()
    assert lat.coupling.grad is not None and lat.field.grad is not None
    assert set(dict(lat.named_parameters())) == {"coupling", "field"}


def test_discrete_flag_and_dtype_follow_input():
    model = IsingLattice(3, 0.3)
    assert model.discrete and Ising(torch.zeros(3, 3)).discrete
    for dt in (torch.float32, torch.float64):
        x = random_states(4, 9, 18, dtype=dt)
        assert model(x).dtype == dt and model.delta(x).dtype == dt and model.energy_and_grad(x)[1].dtype == dt


def test_bad_inputs_raise():
    with pytest.raises(ConfigError, match="symmetric"):
        Ising(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ConfigError, match="diagonal"):
        Ising(torch.eye(3))
    with pytest.raises(ConfigError, match="square"):
        Ising(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="h must have shape"):
        Ising(torch.zeros(3, 3), h=torch.zeros(4))
    with pytest.raises(ConfigError, match="spins"):
        Ising(torch.zeros(3, 3), spins="ising")
    with pytest.raises(ConfigError, match="finite"):
        Ising(torch.full((2, 2), float("nan")))
    with pytest.raises(ConfigError, match="side"):
        IsingLattice(2, 0.3)  # periodic 2x2 would double every bond
    with pytest.raises(ConfigError, match="scalars"):
        IsingLattice(3, [0.1, 0.2])
    with pytest.raises(DataError, match=r"\[batch, 9\]"):
        IsingLattice(3, 0.3)(torch.zeros(2, 8))
    with pytest.raises(DataError):
        Ising(torch.zeros(3, 3)).delta(torch.zeros(3))
