"""Pseudo-likelihood against brute-force conditional probabilities."""
import itertools

import pytest
import torch

from ebmlab import DataError
from ebmlab.energies import BinaryMLPEnergy, FunctionEnergy
from ebmlab.energies.ising import Ising
from ebmlab.objectives import PseudoLikelihood, build


def _all_states(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def _brute_force_nlpl(energy, x):
    """-mean_b sum_i log p(x_i | x_-i) from the joint table of all 2^d states."""
    d = x.shape[1]
    xs = _all_states(d)
    logp = torch.log_softmax(-energy(xs).detach(), 0)
    index = {tuple(int(v) for v in row): k for k, row in enumerate(xs.tolist())}
    total = 0.0
    for row in x.tolist():
        for i in range(d):
            r0, r1 = list(row), list(row)
            r0[i], r1[i] = 0.0, 1.0
            l0, l1 = logp[index[tuple(int(v) for v in r0)]], logp[index[tuple(int(v) for v in r1)]]
            own = l1 if row[i] == 1 else l0
            total -= float(own - torch.logaddexp(l0, l1))
    return total / x.shape[0]


def _random_ising(d, seed):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.5
    J = torch.triu(J, 1)
    J = J + J.T
    h = torch.randn(d, generator=g, dtype=torch.float64) * 0.3
    return Ising(J, h)


def test_matches_brute_force_conditionals_ising_and_generic_path():
    e = _random_ising(6, 0)
    x = torch.randint(0, 2, (17, 6), generator=torch.Generator().manual_seed(1)).double()
    ref = _brute_force_nlpl(e, x)
    pl = PseudoLikelihood()
    assert abs(float(pl(e, x).loss) - ref) < 1e-10  # uses Ising.delta
    no_delta = FunctionEnergy(lambda z: e(z))  # no delta: flipped copies are evaluated
    assert abs(float(PseudoLikelihood(chunk_size=5)(no_delta, x).loss) - ref) < 1e-10


def test_matches_brute_force_binary_mlp_and_gradients_agree():
    e = BinaryMLPEnergy(5, hidden=(8,), base_probs=torch.full((5,), 0.3, dtype=torch.float64)).double()
    x = torch.randint(0, 2, (9, 5), generator=torch.Generator().manual_seed(2)).double()
    out = build("pseudo_likelihood")(e, x)
    assert abs(float(out.loss.detach()) - _brute_force_nlpl(e, x)) < 1e-10
    # gradient through delta == gradient through the brute-force flip path
    out.loss.backward()
    g1 = [p.grad.clone() for p in e.parameters()]
    e.zero_grad()
    PseudoLikelihood()(FunctionEnergy(e.forward), x).loss.backward()
    for a, p in zip(g1, e.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12)


def test_gradient_in_J_is_finite_difference_exact():
    """Autograd gradient of the loss in a learnable Ising model's (W, h), J = (W + W^T)/2 off the diagonal,
    against central finite differences of every entry."""
    d = 4
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 2, (13, d), generator=g).double()
    W = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.4
    h = torch.randn(d, generator=g, dtype=torch.float64) * 0.2
    e = Ising(torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64), learnable=True)
    with torch.no_grad():
        e.weight.copy_(W)
        e.bias.copy_(h)
    PseudoLikelihood()(e, x).loss.backward()
    step = 1e-6
    for param in (e.weight, e.bias):
        fd = torch.zeros_like(param)
        for k in range(param.numel()):
            with torch.no_grad():
                param.view(-1)[k] += step
                up = float(PseudoLikelihood()(e, x).loss)
                param.view(-1)[k] -= 2 * step
                down = float(PseudoLikelihood()(e, x).loss)
                param.view(-1)[k] += step
            fd.view(-1)[k] = (up - down) / (2 * step)
        torch.testing.assert_close(param.grad, fd, rtol=1e-6, atol=1e-8)
    assert float(e.weight.grad.abs().max()) > 1e-3  # a non-trivial gradient


def test_non_binary_data_rejected():
    e = _random_ising(3, 0)
    with pytest.raises(DataError):
        PseudoLikelihood()(e, torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64))
