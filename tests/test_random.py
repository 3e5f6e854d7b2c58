"""Randomness helpers: seeded initialisation from an explicit generator, fresh seeds; the global RNG is untouched."""
import math

import torch

from ebmlab._core.random import fresh_seed, init_parameters_


def test_init_parameters_follows_pytorchs_default_law_from_an_explicit_generator():
    net = torch.nn.Sequential(torch.nn.Linear(50, 400), torch.nn.Linear(400, 3), torch.nn.Conv2d(4, 8, 3))
    before = torch.get_rng_state()  # (constructing layers draws from the global RNG; re-initialising must not)
    init_parameters_(net, torch.Generator().manual_seed(0))
    first = [p.detach().clone() for p in net.parameters()]
    init_parameters_(net, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, p) for a, p in zip(first, net.parameters()))
    init_parameters_(net, torch.Generator().manual_seed(1))
    assert not torch.equal(first[0], net[0].weight)
    assert torch.equal(torch.get_rng_state(), before)
    # U(-b, b) with b = 1/sqrt(fan_in): max |w| close to b, variance b^2 / 3 (20,000 draws: sd of the ratio ~ 0.011)
    for layer, fan_in in ((net[0], 50), (net[1], 400), (net[2], 4 * 9)):
        b = 1 / math.sqrt(fan_in)
        w = layer.weight.detach().reshape(-1)
        assert float(w.abs().max()) <= b and float(w.abs().max()) > 0.95 * b
        if w.numel() >= 10_000:
            assert abs(float(w.var()) / (b * b / 3) - 1) < 0.06
        assert float(layer.bias.detach().abs().max()) <= b


def test_fresh_seeds_differ_and_fit_in_63_bits():
    seeds = {fresh_seed() for _ in range(20)}
    assert len(seeds) == 20 and all(0 <= s < 2**63 for s in seeds)
