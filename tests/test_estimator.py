"""EnergyModel facade: sklearn conventions, fit/sample/score/log_prob, save/load."""
import math

import numpy as np
import pytest
import torch

from ebmlab import ConfigError, DataError, EnergyModel


def _blob(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.5]) + torch.tensor([2.0, -1.0])


def test_constructor_only_stores_parameters():
    m = EnergyModel(objective="no-such-objective", steps=-5)  # validation happens in fit
    assert m.get_params()["objective"] == "no-such-objective"
    assert not hasattr(m, "energy_")
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        m.fit(_blob())
    with pytest.raises(ConfigError, match="unknown objective 'no-such-objective'"):
        m.set_params(steps=5).fit(_blob())
    with pytest.raises(ConfigError, match="unknown parameter 'stepz'"):
        m.set_params(stepz=3)


def test_unfitted_model_says_so():
    with pytest.raises(ConfigError, match="not fitted"):
        EnergyModel().sample(3)


def test_fit_sample_score_log_prob_save_load(tmp_path):
    x = _blob()
    m = EnergyModel(energy_params={"hidden": [32, 32]}, objective="pcd", steps=150, batch_size=64,
                    objective_params={"n_steps": 10, "buffer_size": 500}, sampler_params={"step_size": 0.02},
                    sample_steps=100, seed=0, device="cpu")
    assert m.fit(x.numpy()) is m  # numpy input accepted
    assert m.n_features_in_ == 2 and len(m.history_.loss) == 150
    s1 = m.sample(50, seed=3)
    s2 = m.sample(50, seed=3)
    assert s1.shape == (50, 2) and torch.equal(s1, s2)
    scores = m.score_samples(x[:10])
    assert scores.shape == (10,) and torch.isfinite(scores).all()
    lp = m.log_prob(x[:10])
    # log_prob - score_samples is the constant -log Z
    assert torch.allclose(lp - scores, (lp - scores)[0].expand(10), atol=1e-4)
    m.save(tmp_path / "model")
    m2 = EnergyModel.load(tmp_path / "model")
    assert torch.allclose(m2.score_samples(x[:10]), scores)
    assert m2.get_params() == m.get_params()
    with pytest.raises(DataError, match="features per row"):
        m.score_samples(torch.zeros(3, 5))


def test_log_prob_in_high_dimension_is_refused_with_a_reason():
    x = torch.randn(100, 3)
    m = EnergyModel(energy_params={"hidden": [8]}, steps=2, objective_params={"n_steps": 1}, device="cpu").fit(x)
    with pytest.raises(ConfigError, match="log_prob needs a tractable normaliser"):
        m.log_prob(x[:3])


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no model at"):
        EnergyModel.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither"):
        EnergyModel.load(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="corrupted"):
        EnergyModel.load(tmp_path / "bad")


def test_bad_data_is_refused():
    with pytest.raises(DataError, match="non-finite"):
        EnergyModel(steps=1).fit(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(DataError, match="at least 2 rows"):
        EnergyModel(steps=1).fit(np.zeros((1, 2)))
