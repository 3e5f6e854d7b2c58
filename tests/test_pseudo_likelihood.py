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


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_gradient_in_J_is_finite_difference_exact():
    d = 4
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 2, (13, d), generator=g).double()
    W = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.4
    h = torch.randn(d, generator=g, dtype=torch.float64) * 0.2

    def loss(W, h):
        J = 0.5 * (W + W.T) * (1 - torch.eye(d, dtype=torch.float64))
        return PseudoLikelihood()(Ising(J, h), x).loss  # the graph flows through Ising's buffers

    assert torch.autograd.gradcheck(loss, (W.requires_grad_(), h.requires_grad_()))


def test_non_binary_data_rejected():
    e = _random_ising(3, 0)
    with pytest.raises(DataError):
        PseudoLikelihood()(e, torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64))
