"""Binary neural EBM, product-Bernoulli noise and brute-force flip deltas."""
import itertools

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.energies import BernoulliNoise, BinaryMLPEnergy, bernoulli_base_probs, flip_delta


def _all_states(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def test_delta_matches_brute_force_flips():
    e = BinaryMLPEnergy(7, hidden=(16, 16), base_probs=torch.linspace(0.1, 0.9, 7)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (11, 7), generator=g).double()
    d = e.delta(x)
    u = e(x)
    for i in range(7):
        xf = x.clone()
        xf[:, i] = 1 - xf[:, i]
        torch.testing.assert_close(d[:, i], e(xf) - u, rtol=0, atol=1e-12)
    # chunked path gives the same
    torch.testing.assert_close(flip_delta(e, x, chunk_size=3), d, rtol=0, atol=1e-12)


def test_zero_network_is_the_bernoulli_base():
    p = torch.tensor([0.2, 0.5, 0.7, 0.9, 0.35], dtype=torch.float64)
    e = BinaryMLPEnergy(5, hidden=(8,), base_probs=p).double()
    with torch.no_grad():
        e.net[-1].weight.zero_()
        e.net[-1].bias.zero_()
    xs = _all_states(5)
    logp = torch.log_softmax(-e(xs), 0)
    ref = (xs * p.log() + (1 - xs) * (1 - p).log()).sum(1)
    torch.testing.assert_close(logp, ref, rtol=0, atol=1e-12)


def test_base_probs_from_data_and_validation():
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    p = bernoulli_base_probs(data, eps=0.01)
    torch.testing.assert_close(p, torch.tensor([0.99, 0.01, 0.5]))
    with pytest.raises(ConfigError):
        BinaryMLPEnergy(3, base_probs=torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ConfigError):
        BinaryMLPEnergy(3, base_probs=torch.tensor([0.5, 0.5]))
    with pytest.raises(ConfigError):
        BinaryMLPEnergy(0)
    with pytest.raises(DataError):
        bernoulli_base_probs(torch.zeros(3))


def test_from_data_and_base_probs_are_one_function():
    """ProductBernoulli.from_data(x) is ProductBernoulli(bernoulli_base_probs(x)); both validate the data."""
    data = torch.tensor([[1, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 1]], dtype=torch.float32)
    p = bernoulli_base_probs(data, eps=0.01)
    torch.testing.assert_close(p, torch.tensor([2 / 3, 0.01, 2 / 3, 0.99]))
    torch.testing.assert_close(BernoulliNoise.from_data(data, eps=0.01).probs, p)
    ints = bernoulli_base_probs(data.long())
    assert ints.dtype == torch.get_default_dtype()
    p64 = bernoulli_base_probs(data.double(), eps=0.01)
    assert p64.dtype == torch.float64
    torch.testing.assert_close(p64, p.double(), rtol=1e-6, atol=0)
    for bad in (torch.zeros(0, 3), torch.tensor([[2.0, 0.0]]), torch.tensor([[float("nan"), 1.0]]), torch.zeros(3)):
        with pytest.raises(DataError):
            bernoulli_base_probs(bad)
        with pytest.raises(DataError):
            BernoulliNoise.from_data(bad)
    with pytest.raises(ConfigError):
        bernoulli_base_probs(data, eps=0.6)


def test_bernoulli_noise_is_normalised_and_samples_its_means():
    p = torch.tensor([0.1, 0.4, 0.8, 0.6], dtype=torch.float64)
    q = BernoulliNoise(p)
    xs = _all_states(4)
    torch.testing.assert_close(q.log_prob(xs).exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(q.log_prob(xs), -q(xs) - q.log_normalizer())
    xf = xs.clone()
    xf[:, 2] = 1 - xf[:, 2]
    torch.testing.assert_close(q.delta(xs)[:, 2], q(xf) - q(xs))
    n = 20000
    s = q.sample(n, generator=torch.Generator().manual_seed(0))
    z = (s.mean(0) - p) / (p * (1 - p) / n).sqrt()
    assert z.abs().max() < 4.5  # 4 bits jointly: Bonferroni 4.5 is conservative
    fitted = BernoulliNoise.from_data(s)
    torch.testing.assert_close(fitted.probs, s.mean(0))
    with pytest.raises(ConfigError):
        BernoulliNoise(torch.tensor([1.0, 0.5]))


def test_binary_mlp_learns_dependencies_with_fit_and_pseudo_likelihood():
    """End to end through ebmlab.fit: the learned model is far closer (exact KL) than the best independent model."""
    from ebmlab.energies.ising import Ising
    from ebmlab.objectives import build
    from ebmlab.train import fit

    d = 6
    g = torch.Generator().manual_seed(0)
    J = torch.randn(d, d, generator=g) * 0.6
    J = torch.triu(J, 1)
    J = J + J.T
    true = Ising(J, torch.randn(d, generator=g) * 0.3)
    xs = _all_states(d).float()
    lp = torch.log_softmax(-true(xs), 0)
    data = xs[torch.multinomial(lp.exp(), 4000, replacement=True, generator=g)]

    def kl(energy):
        lq = torch.log_softmax(-energy(xs).detach().double(), 0)
        return float((lp.double().exp() * (lp.double() - lq)).sum())

    probs = bernoulli_base_probs(data)
    kl_independent = kl(BernoulliNoise(probs))  # the best product-Bernoulli fit (up to sampling error)
    e = BinaryMLPEnergy(d, hidden=(32, 32), base_probs=probs)
    history = fit(e, data, build("pseudo_likelihood"), steps=300, batch_size=128, lr=2e-3, seed=0)
    assert len(history.loss) == 300
    # estimation floor ~ (2^6 - 1) / (2 * 4000) = 0.008 nats; the independent model is ~0.5 nats away
    assert kl(e) < 0.05
    assert kl(e) < kl_independent / 10
