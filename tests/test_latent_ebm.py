"""The latent-space EBM (ebmlab.apps.LatentEBM) and ``ebmlab train --model latent_ebm``."""
import json
import math

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.apps.latent import LatentEBM, TiltedGaussianEnergy
from ebmlab.cli import main
from ebmlab.data import load_digits

SMALL = dict(latent_dim=2, hidden=32, vae_steps=40, ebm_steps=40, batch_size=64, energy_hidden=(16,), ed_m=4,
             sample_steps=20)


@pytest.fixture(scope="module")
def fitted():
    x, _ = load_digits("train")
    return LatentEBM(random_state=0, **SMALL).fit(x[:200]), x[:200]


def test_latent_ebm_shapes_and_save_load(fitted, tmp_path):
    m, x = fitted
    s = m.sample(6, random_state=1)
    assert s.shape == (6, 1, 8, 8) and float(s.min()) >= 0 and float(s.max()) <= 1
    assert torch.equal(m.sample(6, random_state=1), s)
    assert m.sample_prior(5, random_state=0).shape == (5, 1, 8, 8)
    assert m.reconstruct(x[:4]).shape == (4, 1, 8, 8)
    assert m.codes_.shape == (200, 2)
    assert math.isfinite(m.ebm_history_.loss[-1]) and math.isfinite(m.vae_history_.loss[-1])
    # the VAE learnt something: its negative ELBO fell during training
    assert m.vae_history_.loss[-1] < m.vae_history_.loss[0]
    m.save(tmp_path / "lat")
    loaded = LatentEBM.load(tmp_path / "lat")
    assert torch.allclose(loaded.sample(6, random_state=1), s, atol=1e-5)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        LatentEBM(**SMALL).fit(x[:10] * 2.0)
    with pytest.raises(ConfigError, match="not fitted"):
        LatentEBM().sample(2)


def test_latent_sampler_targets_the_tilted_prior():
    """With f ≡ 0 the latent energy is ½‖z‖²: the MALA draws must have mean 0 and variance 1 (MCSE bound)."""
    m = LatentEBM(latent_dim=2, sample_steps=60)
    energy = TiltedGaussianEnergy(2, (8,))
    with torch.no_grad():
        for p in energy.parameters():
            p.zero_()
    m.energy_ = energy
    z, info = m.sample_latent(2000, random_state=3)
    n = z.shape[0]
    assert float(z.mean(0).abs().max()) < 4 / math.sqrt(n)
    assert float((z.var(0) - 1).abs().max()) < 4 * math.sqrt(2 / (n - 1))
    assert info.acceptance_rate > 0.5


def test_train_latent_ebm_cli_writes_a_run(tmp_path):
    out = tmp_path / "run"
    params = json.dumps({"latent_dim": 2, "hidden": 32, "vae_steps": 30, "energy_hidden": [16], "ed_m": 4,
                         "sample_steps": 10})
    code = main(["train", "--model", "latent_ebm", "--steps", "20", "--n-samples", "20", "--progress", "false",
                 "--model-params", params, "--out", str(out)])
    assert code == 0
    for f in ("model.safetensors", "metrics.json", "samples.png", "reconstructions.png"):
        assert (out / f).exists(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == "digits" and metrics["n_samples"] == 20
    assert LatentEBM.load(out).sample(2, random_state=0).shape == (2, 1, 8, 8)
    # an unknown model parameter and an unused key are refused in one line each
    assert main(["train", "--model", "latent_ebm", "--model-params", '{"bogus": 1}', "--out", str(tmp_path / "b")]) != 0
    assert main(["train", "--model", "latent_ebm", "--energy", "quadratic", "--out", str(tmp_path / "c")]) != 0
