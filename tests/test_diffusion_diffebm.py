"""DiffEBM: joint EBM + diffusion-sampler training, its gradient stopping, and `ebmlab train --model diffebm`."""
import json
import math

import pytest
import torch

from ebmlab import ConfigError
from ebmlab.data import toy
from ebmlab.diffusion.diffebm import PointwiseConvEnergy, DiffEBM, train_diffebm_run

DATA = toy("8gaussians_unit", 512, generator=0)


def test_conv_energy_is_three_1x1_convolutions():
    e = PointwiseConvEnergy(2, hidden=8, generator=torch.Generator().manual_seed(0))
    convs = [m for m in e.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 3 and all(c.kernel_size == (1,) for c in convs)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    assert e(x).shape == (5,)
    # a 1×1 convolution on vectors is a dense layer: row-wise independent
    assert torch.allclose(e(x[2:3]), e(x)[2:3], atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "prodigy"])
def test_fit_runs_and_is_reproducible(optimizer):
    kw = dict(hidden=16, sde_steps=5, control_hidden=(16,), optimizer=optimizer)
    a = DiffEBM(2, **kw).fit(DATA, steps=4, batch_size=32, seed=3)
    b = DiffEBM(2, **kw).fit(DATA, steps=4, batch_size=32, seed=3)
    assert a.history_ == b.history_
    assert all(math.isfinite(v) for h in a.history_.values() for v in h)
    x = a.sample(10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (10, 2) and bool(torch.isfinite(x).all())
    assert a.sampler_.energy is a.energy_


def test_gradients_are_stopped_across_the_two_models():
    """alpha = 1 and eta = 1: each model's loss is the LV of the other's detached part; with the EBM's learning rate
    tiny, the control moves and the EBM barely; the LV path weights carry no graph into the EBM's parameters."""
    from ebmlab.diffusion import VPSchedule, simulate, FourierControl

    sch = VPSchedule(5)
    e = PointwiseConvEnergy(2, hidden=8, generator=torch.Generator().manual_seed(0))
    c = FourierControl(2, sch, hidden=(8,), generator=torch.Generator().manual_seed(1))
    p = simulate(c, e, sch, 16, 2, mode="log_variance", generator=torch.Generator().manual_seed(2))
    p.log_weight.var().backward()
    assert all(q.grad is None for q in e.parameters())  # the EBM gets nothing from the sampler's LV loss
    assert any(q.grad is not None and float(q.grad.abs().sum()) > 0 for q in c.parameters())


def test_bad_options():
    with pytest.raises(ConfigError, match="eta"):
        DiffEBM(2, eta=1.5)
    with pytest.raises(ConfigError, match="optimizer must be one of adam, prodigy"):
        DiffEBM(2, optimizer="sgd")
    with pytest.raises(ConfigError, match="data has 3 columns"):
        DiffEBM(2).fit(torch.zeros(10, 3), steps=1)
    with pytest.raises(ConfigError, match="optimizer_params 'dcoef' are not options of prodigy; allowed: .*d_coef"):
        DiffEBM(2, optimizer="prodigy", optimizer_params={"dcoef": 0.1})
    with pytest.raises(ConfigError, match="grad_clip"):
        DiffEBM(2, grad_clip=0.0)


def test_optimizer_params_and_grad_clip_reach_the_optimizer():
    """Prodigy's options change the run (d0 is its initial step size, 1e-6 by default); a tiny grad_clip stops
    the energy from moving."""
    kw = dict(hidden=16, sde_steps=5, control_hidden=(16,))
    base = DiffEBM(2, optimizer="prodigy", **kw).fit(DATA, steps=6, batch_size=32, seed=3)
    small = DiffEBM(2, optimizer="prodigy", optimizer_params={"d0": 0.1, "safeguard_warmup": True},
                    **kw).fit(DATA, steps=6, batch_size=32, seed=3)
    assert base.history_["ebm_loss"][0] == small.history_["ebm_loss"][0]  # same start, same first batch
    assert base.history_["ebm_loss"][-1] != small.history_["ebm_loss"][-1]
    # fit builds the energy first from Generator().manual_seed(seed): the same initial weights as here
    init = PointwiseConvEnergy(2, hidden=16, generator=torch.Generator().manual_seed(3)).state_dict()

    def moved(model):
        return max(float((v - init[k]).abs().max()) for k, v in model.energy_.state_dict().items())

    adam = DiffEBM(2, **kw).fit(DATA, steps=3, batch_size=32, seed=3)
    clipped = DiffEBM(2, grad_clip=1e-14, **kw).fit(DATA, steps=3, batch_size=32, seed=3)
    assert moved(adam) > 5e-4  # Adam steps of size ~lr = 1e-3
    assert moved(clipped) < 1e-6  # gradient norm 1e-14: Adam's step is ~lr * 1e-14 / eps(1e-8)


def test_train_run_writes_a_run_directory(tmp_path):
    from ebmlab.cli import DEFAULTS

    cfg = dict(DEFAULTS, model="diffebm", data="8gaussians_unit", steps=3, batch_size=32, n_train=256, n_test=256,
               n_samples=200, resolution=30, progress=False,
               model_params={"sde_steps": 4, "hidden": 8, "control_hidden": [8]})
    run_dir, metrics = train_diffebm_run(cfg, out=tmp_path / "run")
    for f in ("config.yaml", "log.csv", "metrics.json", "ebm.safetensors", "sampler.safetensors", "samples.png",
              "energy.png", "energy_true.png", "loss.png"):
        assert (run_dir / f).exists(), f
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    assert metrics["sinkhorn"] > 0
    bad = dict(cfg, model_params={"gamma": 1})
    with pytest.raises(ConfigError, match="no model_params 'gamma'; allowed: hidden"):
        train_diffebm_run(bad, out=tmp_path / "run2")
    with pytest.raises(ConfigError, match="does not use objective"):
        train_diffebm_run(dict(cfg, objective="dsm"), out=tmp_path / "run3")


def test_divergence_is_an_error_naming_the_iteration():
    """An absurd learning rate blows the energy up after the first update: the next iteration's path weights or
    loss are not finite, and fit stops with TrainingDivergedError instead of returning a broken model."""
    from ebmlab import TrainingDivergedError

    model = DiffEBM(2, hidden=16, sde_steps=5, control_hidden=(16,), lr=1e4)
    with pytest.raises(TrainingDivergedError, match=r"DiffEBM diverged at iteration \d+: "):
        model.fit(DATA, steps=60, batch_size=32, seed=3)
    assert not hasattr(model, "energy_")
