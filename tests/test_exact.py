"""Exact enumeration and Kaufman's formula against independent brute-force computations."""
import itertools
import math

import pytest
import torch

from ebmlab import ConfigError
from ebmlab.energies import Ising, IsingLattice
from ebmlab.energies.base import Energy
from ebmlab.metrics import (
    enumerate_states,
    exact_expectation,
    exact_log_prob,
    exact_log_z,
    exact_marginals,
    exact_moments,
    kaufman_log_z,
)

ONSAGER_LOG_Z_PER_SITE_AT_CRITICAL = 0.92969539834  # ln2/2 + 2G/pi (Onsager 1944, at beta_c = ln(1+sqrt2)/2)


def lattice_bonds(side, periodic):
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


def brute_lattice(side, coupling, field, periodic):
    """log Z, P(x_i = 1) and E[s_i s_j] by python loops over itertools.product (no ebmlab code)."""
    n = side * side
    bonds = lattice_bonds(side, periodic)
    weights, states = [], []
    for s in itertools.product([-1, 1], repeat=n):
        e = coupling * sum(s[a] * s[b] for a, b in bonds) + field * sum(s)
        weights.append(math.exp(e))
        states.append(s)
    z = sum(weights)
    marg = [sum(w for w, s in zip(weights, states) if s[i] == 1) / z for i in range(n)]
    ss01 = sum(w * states_k[0] * states_k[1] for w, states_k in zip(weights, states)) / z
    return math.log(z), marg, ss01


@pytest.mark.parametrize("side,periodic", [(2, False), (3, False), (3, True)])
def test_lattice_log_z_and_marginals_vs_brute_force(side, periodic):
    coupling, field = 0.41, 0.13
    model = IsingLattice(side, coupling, field, periodic=periodic)
    log_z, marg, ss01 = brute_lattice(side, coupling, field, periodic)
    assert exact_log_z(model).item() == pytest.approx(log_z, abs=1e-10)
    assert torch.allclose(exact_marginals(model), torch.tensor(marg, dtype=torch.float64), atol=1e-12)
    m = exact_moments(model, convention="spins")
    assert m.second[0, 1].item() == pytest.approx(ss01, abs=1e-12)


def test_general_ising_vs_brute_force_both_conventions():
    g = torch.Generator().manual_seed(0)
    n = 6
    A = torch.randn(n, n, generator=g, dtype=torch.float64) * 0.6
    J = (A + A.T) / 2
    J.fill_diagonal_(0)
    h = torch.randn(n, generator=g, dtype=torch.float64) * 0.4
    for spins in ("pm1", "01"):
        model = Ising(J, h, spins=spins)
        ws, xs = [], []
        for x in itertools.product([0, 1], repeat=n):
            s = [2 * v - 1 for v in x] if spins == "pm1" else list(x)
            e = sum(J[i, j].item() * s[i] * s[j] for i in range(n) for j in range(i + 1, n)) + sum(
                h[i].item() * s[i] for i in range(n))
            ws.append(math.exp(e))
            xs.append(x)
        z = sum(ws)
        ex = [sum(w * x[i] for w, x in zip(ws, xs)) / z for i in range(n)]
        exx = [[sum(w * x[i] * x[j] for w, x in zip(ws, xs)) / z for j in range(n)] for i in range(n)]
        assert exact_log_z(model).item() == pytest.approx(math.log(z), abs=1e-10)
        m = exact_moments(model)
        assert torch.allclose(m.mean, torch.tensor(ex, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(m.second, torch.tensor(exx, dtype=torch.float64), atol=1e-12)
        # conventions agree: E[s s^T] = 4 E[x x^T] - 2 E[x] 1^T - 2 1 E[x]^T + 1
        ms = exact_moments(model, convention="spins")
        mx = m.mean
        assert torch.allclose(ms.second, 4 * m.second - 2 * mx[:, None] - 2 * mx[None, :] + 1, atol=1e-12)
        assert torch.allclose(ms.mean, 2 * mx - 1, atol=1e-12)
        lp = exact_log_prob(model, enumerate_states(n))
        assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("beta", [0.05, 0.3, 0.4406868, 0.7, 1.5])
def test_kaufman_matches_enumeration_on_4x4(beta):
    # 2^16 states: the real test of the finite-lattice formula (with gamma_0 < 0 below beta_c)
    assert kaufman_log_z(4, beta) == pytest.approx(exact_log_z(IsingLattice(4, beta)).item(), abs=1e-9)


def test_kaufman_matches_enumeration_on_odd_3x3():
    for beta in (0.2, 0.5):
        assert kaufman_log_z(3, beta) == pytest.approx(exact_log_z(IsingLattice(3, beta)).item(), abs=1e-9)


def test_kaufman_approaches_onsager():
    beta_c = math.log(1 + math.sqrt(2)) / 2
    err = [abs(kaufman_log_z(L, beta_c) / L**2 - ONSAGER_LOG_Z_PER_SITE_AT_CRITICAL) for L in (16, 64, 256)]
    assert err[0] > err[1] > err[2] and err[2] < 2e-5
    with pytest.raises(ConfigError):
        kaufman_log_z(4, 0.0)


def test_enumerate_states_order_and_uniqueness():
    x = enumerate_states(4)
    assert x.shape == (16, 4) and x.dtype == torch.float64
    assert len({tuple(r) for r in x.tolist()}) == 16
    assert x[5].tolist() == [1.0, 0.0, 1.0, 0.0]  # state k has x_i = bit i of k


def test_log_z_gradient_is_expected_statistics():
    # d log Z / d theta = E[T(x)] for U = -theta . T
    model = IsingLattice(3, 0.3, -0.2, learnable=True)
    log_z = exact_log_z(model)
    log_z.backward()
    grad = torch.stack([model.coupling.grad, model.field.grad]).to(torch.float64)
    expected = exact_expectation(model, lambda x: model.statistics(x.float()).double())
    assert torch.allclose(grad, expected, atol=1e-4)
    assert log_z.dtype == torch.float64


class Tiny(Energy):
    """A discrete energy with only forward (no n_sites attribute)."""

    discrete = True

    def forward(self, x):
        return -(x.sum(-1) ** 2) * 0.1


def test_errors_and_n_sites_argument():
    with pytest.raises(ConfigError, match="n_sites"):
        exact_log_z(Tiny())
    ref = math.log(sum(math.exp(0.1 * sum(x) ** 2) for x in itertools.product([0, 1], repeat=5)))
    assert exact_log_z(Tiny(), n_sites=5).item() == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ConfigError, match="2\\^25"):
        exact_log_z(IsingLattice(5, 0.3))
    with pytest.raises(ConfigError, match="convention"):
        exact_moments(IsingLattice(3, 0.3), convention="pm")
