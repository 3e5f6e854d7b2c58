"""The convolutional energy and classifier for images (ebmlab.energies.conv)."""
import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab._core.random import init_parameters_
from ebmlab.energies import ClassConditionalEnergy, ClassifierEnergy, ConvClassifier, ConvEnergy, ScaledEnergy
from ebmlab.objectives import build as build_objective
from ebmlab.samplers import MALA, ULA, sample


def _energy(seed=0, **kw):
    with torch.random.fork_rng(devices=[]):
        e = ConvEnergy((1, 8, 8), channels=8, hidden=16, **kw)
    return init_parameters_(e, torch.Generator().manual_seed(seed))


def test_conv_energy_shapes_flat_input_and_validation():
    g = torch.Generator().manual_seed(0)
    e = _energy()
    x = torch.rand(5, 1, 8, 8, generator=g)
    u = e(x)
    assert u.shape == (5,)
    assert torch.allclose(e(x.reshape(5, 64)), u)
    # seeded initialisation is reproducible and different seeds differ
    assert torch.allclose(_energy(0)(x), u) and not torch.allclose(_energy(1)(x), u)
    assert e.config() == {"image_shape": [1, 8, 8], "channels": 8, "hidden": 16, "activation": "silu"}
    with pytest.raises(ConfigError, match="image_shape"):
        ConvEnergy((1, 8))
    with pytest.raises(ConfigError, match=">= 4"):
        ConvEnergy((1, 3, 3))
    with pytest.raises(DataError, match="shape"):
        e(torch.rand(2, 1, 7, 7, generator=g))


def test_conv_energy_works_with_samplers_and_objectives():
    g = torch.Generator().manual_seed(1)
    e = _energy()
    x0 = torch.rand(4, 1, 8, 8, generator=g)
    x, info = sample(e, ULA(step_size=1e-3), x0, 5, keep="last", generator=g)
    assert x.shape == x0.shape and info.n_grad_evals == 6 and not torch.equal(x, x0)
    xs, info = sample(e, MALA(step_size=1e-3), x0, 3, keep="all", generator=g)
    assert xs.shape == (3, 4, 1, 8, 8) and 0.0 < info.acceptance_rate <= 1.0
    for name in ("dsm", "ed"):
        obj = build_objective(name)
        if hasattr(obj, "prepare"):
            obj.prepare(x0)
        out = obj(e, x0, generator=g)
        e.zero_grad()
        out.loss.backward()
        # score-based losses see only grad_x U, so the output bias gets no gradient (None); the rest must be finite
        grads = [p.grad for p in e.parameters() if p.grad is not None]
        assert len(grads) >= len(list(e.parameters())) - 1, name
        assert torch.isfinite(out.loss) and all(torch.isfinite(gr).all() for gr in grads), name
        assert any(float(gr.abs().sum()) > 0 for gr in grads), name


def test_classifier_energies():
    g = torch.Generator().manual_seed(2)
    with torch.random.fork_rng(devices=[]):
        net = ConvClassifier((1, 8, 8), 10, channels=8, hidden=16)
    init_parameters_(net, g)
    x = torch.rand(6, 1, 8, 8, generator=g)
    logits = net(x)
    assert logits.shape == (6, 10)
    assert torch.allclose(ClassifierEnergy(net)(x), -torch.logsumexp(logits, 1))
    y = torch.arange(6) % 10
    assert torch.allclose(ClassConditionalEnergy(net, y)(x), -logits[torch.arange(6), y])
    with pytest.raises(DataError, match="labels"):
        ClassConditionalEnergy(net, y)(x[:3])
    # U / T: energy and gradient scale by 1 / T
    scaled = ScaledEnergy(ClassifierEnergy(net), 0.25)
    u, gr = scaled.energy_and_grad(x)
    u0, g0 = ClassifierEnergy(net).energy_and_grad(x)
    assert torch.allclose(u, 4 * u0) and torch.allclose(gr, 4 * g0, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="n_classes"):
        ConvClassifier((1, 8, 8), 1)
    with pytest.raises(ConfigError, match="temperature"):
        ScaledEnergy(net, 0.0)
