"""ReplayBuffer: lazy filling, sampling without replacement, re-initialisation rate, updates, state."""
from __future__ import annotations

import math

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.samplers import ReplayBuffer


def uniform_noise(n, generator):
    return torch.rand(n, 3, generator=generator) * 2 - 1


def test_lazy_fill_from_noise_and_distinct_rows():
    buf = ReplayBuffer(50, 0.0, uniform_noise)
    assert len(buf) == 0 and buf.data is None
    x, idx = buf.sample(20, generator=torch.Generator().manual_seed(0))
    assert len(buf) == 50 and buf.data.shape == (50, 3)
    assert x.shape == (20, 3) and idx.shape == (20,) and idx.dtype == torch.int64
    assert len(set(idx.tolist())) == 20  # without replacement
    torch.testing.assert_close(x, buf.data[idx])  # reinit_prob = 0: the stored rows exactly
    x += 100.0  # the returned tensor does not alias the buffer
    assert bool((buf.data.abs() <= 1).all())


def test_update_writes_rows_and_persistence():
    buf = ReplayBuffer(10, 0.0, uniform_noise)
    g = torch.Generator().manual_seed(1)
    x, idx = buf.sample(10, generator=g)
    buf.update(idx, x + 5.0)
    y, idx2 = buf.sample(10, generator=g)
    order = torch.argsort(idx2)
    torch.testing.assert_close(y[order], (x + 5.0)[torch.argsort(idx)])


def test_reinit_rate_matches_reinit_prob():
    """Rows replaced by fresh noise (noise lies in [-1, 1], stored rows are moved to 10) occur with
    probability reinit_prob: binomial z-test, |z| < 4.5."""
    p, n, rounds = 0.05, 1000, 20
    buf = ReplayBuffer(n, p, uniform_noise)
    g = torch.Generator().manual_seed(2)
    x, idx = buf.sample(n, generator=g)
    fresh = 0
    for _ in range(rounds):
        buf.update(idx, torch.full_like(x, 10.0))
        x, idx = buf.sample(n, generator=g)
        fresh += int((x[:, 0] < 5).sum())
    total = n * rounds
    z = (fresh - p * total) / math.sqrt(total * p * (1 - p))
    assert abs(z) < 4.5, (fresh, total)


def test_same_generator_same_draws_and_state_dict_roundtrip():
    a = ReplayBuffer(30, 0.2, uniform_noise)
    b = ReplayBuffer(30, 0.2, uniform_noise)
    xa, ia = a.sample(8, generator=torch.Generator().manual_seed(3))
    xb, ib = b.sample(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(xa, xb) and torch.equal(ia, ib)
    a.update(ia, xa * 3)
    c = ReplayBuffer(1, 0.5, uniform_noise)
    c.load_state_dict(a.state_dict())
    assert c.buffer_size == 30 and c.reinit_prob == 0.2 and torch.equal(c.data, a.data)
    c.data[0] += 1  # a copy, not a view
    assert not torch.equal(c.data, a.data)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="buffer_size"):
        ReplayBuffer(0, 0.05, uniform_noise)
    with pytest.raises(ConfigError, match="reinit_prob"):
        ReplayBuffer(10, 1.5, uniform_noise)
    with pytest.raises(ConfigError, match="noise"):
        ReplayBuffer(10, 0.05, "uniform")
    buf = ReplayBuffer(10, 0.05, uniform_noise)
    with pytest.raises(ConfigError, match="update"):
        buf.update(torch.tensor([0]), torch.zeros(1, 3))
    with pytest.raises(ConfigError, match="n_samples must be"):
        buf.sample(11)
    x, idx = buf.sample(4)
    with pytest.raises(DataError, match="shape"):
        buf.update(idx, torch.zeros(4, 2))
    bad = ReplayBuffer(10, 0.05, lambda n, generator: torch.zeros(n + 1, 3))
    with pytest.raises(DataError, match="rows"):
        bad.sample(2)
