"""DiffusionSampler: fit / sample / log_z / ELBO / ESS / save-load, errors."""
import math

import pytest
import torch

from ebmlab import ConfigError
from ebmlab._core.errors import TrainingDivergedError
from ebmlab.diffusion import DiffusionSampler
from ebmlab.energies import FunctionEnergy, Gaussian

TARGET = Gaussian([1.0, -1.0], [0.5, 1.5])
OFFSET = 0.8  # log Z = -0.8


def _energy():
    class Shifted(torch.nn.Module):
        def forward(self, x):
            return TARGET(x) + OFFSET

        def energy_and_grad(self, x):
            u, g = TARGET.energy_and_grad(x)
            return u + OFFSET, g

    return Shifted()


@pytest.fixture(scope="module")
def fitted():
    s = DiffusionSampler(_energy(), 2, sde_steps=10, hidden=(32, 32))
    return s.fit(steps=150, batch_size=128, lr=5e-3, seed=0)


@pytest.mark.parametrize("loss", ["log_variance", "kl"])
def test_training_reduces_the_loss(loss):
    s = DiffusionSampler(_energy(), 2, sde_steps=10, hidden=(32,)).fit(steps=60, batch_size=64, lr=5e-3, seed=1,
                                                                       loss=loss)
    h = s.history_["loss"] if loss == "log_variance" else [-e for e in s.history_["elbo"]]
    assert sum(h[-10:]) / 10 < 0.7 * sum(h[:10]) / 10
    assert s.fit_info_["energy_evals"] == 60 * 64 * 11


def test_log_z_elbo_and_ess(fitted):
    g = torch.Generator().manual_seed(5)
    est, se = fitted.log_z(20000, generator=g)
    assert 0 < se < 0.05
    assert abs(est - (-OFFSET)) < 4 * se
    elbo = fitted.elbo(5000, generator=g)
    assert elbo < -OFFSET + 0.02 and elbo > -OFFSET - 1.0  # ELBO ≤ log Z (up to MC error), and informative
    ess = fitted.effective_sample_size(5000, generator=g)
    assert 0.3 * 5000 < ess <= 5000


def test_resampled_draws_match_the_target_moments(fitted):
    x = fitted.sample(20000, generator=torch.Generator().manual_seed(6), resample=True).double()
    se = torch.sqrt(TARGET.cov.diagonal() / 20000) * 3  # resampling inflates the variance; ESS > n/3 above
    assert torch.all((x.mean(0) - TARGET.mean).abs() < 4 * se)
    raw = fitted.sample(7, generator=torch.Generator().manual_seed(6))
    assert raw.shape == (7, 2) and raw.dtype == torch.float32


def test_same_seed_same_fit_and_save_load_roundtrip(fitted, tmp_path):
    again = DiffusionSampler(_energy(), 2, sde_steps=10, hidden=(32, 32)).fit(steps=150, batch_size=128, lr=5e-3,
                                                                                seed=0)
    assert again.history_["loss"] == fitted.history_["loss"]
    fitted.save(tmp_path / "s")
    loaded = DiffusionSampler.load(tmp_path / "s", _energy())
    a = fitted.log_z(500, generator=torch.Generator().manual_seed(9))
    b = loaded.log_z(500, generator=torch.Generator().manual_seed(9))
    assert a == b
    assert loaded.seed_ == 0


def test_nan_path_weights_stop_training_naming_the_step():
    calls = {"n": 0}

    def u(x):
        calls["n"] += 1
        out = 0.5 * (x * x).sum(-1)
        return out * float("nan") if calls["n"] > 3 else out

    s = DiffusionSampler(FunctionEnergy(u), 2, sde_steps=5, use_energy_grad=False)
    with pytest.raises(TrainingDivergedError, match="diverged at training step 3"):
        s.fit(steps=10, batch_size=8, seed=0)


def test_bad_options_are_one_line_config_errors(fitted):
    with pytest.raises(ConfigError, match="loss must be one of log_variance, kl"):
        DiffusionSampler(_energy(), 2).fit(steps=1, loss="lv")
    with pytest.raises(ConfigError, match="steps must be an integer"):
        DiffusionSampler(_energy(), 2).fit(steps=0)
    with pytest.raises(ConfigError, match="not fitted"):
        DiffusionSampler(_energy(), 2).sample(3)
    with pytest.raises(ConfigError, match="hidden must be"):
        DiffusionSampler(_energy(), 2, hidden=(0,))
    with pytest.raises(ConfigError, match="resample must be true or false"):
        fitted.sample(3, resample="yes")
    with pytest.raises(ConfigError, match="sde_steps"):
        DiffusionSampler(_energy(), 2, sde_steps=0)
    with pytest.raises(ConfigError, match="score_interpolation=True needs use_energy_grad=True"):
        DiffusionSampler(_energy(), 2, use_energy_grad=False, score_interpolation=True)


def test_prior_std_rescaling_keeps_log_z_exact():
    s = DiffusionSampler(_energy(), 2, sde_steps=10, hidden=(16,), prior_std=2.0)
    s.fit(steps=40, batch_size=64, lr=5e-3, seed=2)
    est, se = s.log_z(20000, generator=torch.Generator().manual_seed(3))
    assert 0 < se < 0.1 and abs(est - (-OFFSET)) < 4 * se


def test_score_interpolation_fit_saves_loads_and_estimates_log_z(tmp_path):
    """The interpolated control trains, survives save/load (the option is in the checkpoint) and its log Ẑ is
    within 4 SE of the exact log Z."""
    s = DiffusionSampler(_energy(), 2, sde_steps=10, hidden=(32, 32), score_interpolation=True, score_clip=10.0)
    s.fit(steps=60, batch_size=128, lr=5e-3, seed=1, grad_clip=1.0)
    h = s.history_["loss"]
    assert sum(h[-10:]) < sum(h[:10])
    s.save(tmp_path / "s")
    loaded = DiffusionSampler.load(tmp_path / "s", _energy())
    assert loaded.options["score_interpolation"] is True
    a = s.log_z(4000, generator=torch.Generator().manual_seed(5))
    assert loaded.log_z(4000, generator=torch.Generator().manual_seed(5)) == a
    assert abs(a[0] - (-OFFSET)) < 4 * a[1]
