"""JEM (ebmlab.apps.JEM): API, persistence, the divergence guard, accuracy on digits, calibration/OOD metrics."""
import numpy as np
import pytest
import torch

from ebmlab import ConfigError, TrainingDivergedError
from ebmlab.apps import JEM, EnergyGuard, auroc, expected_calibration_error
from ebmlab.data import load_digits

SMALL = dict(channels=8, hidden=32, steps=15, batch_size=32, sgld_steps=3, buffer_size=100, sample_steps=5)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    return x, y, xt, yt


def test_jem_api_shapes_reproducibility_and_save_load(digits, tmp_path):
    x, y, xt, _ = digits
    m = JEM(random_state=3, **SMALL).fit(x[:200], y[:200])
    assert m.fit(x[:200], y[:200]) is m
    p = m.predict_proba(xt[:20])
    assert p.shape == (20, 10) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert set(m.predict(xt[:20])) <= set(m.classes_.tolist())
    s = m.score_samples(xt[:20])
    assert s.shape == (20,) and np.allclose(s, torch.logsumexp(m.logits(xt[:20]), 1).numpy())
    assert m.objective_.buffer.data.shape == (100, 1, 8, 8)  # the replay buffer was used
    again = JEM(random_state=3, **SMALL).fit(x[:200], y[:200])
    assert np.allclose(again.predict_proba(xt[:20]), p)
    draws = m.sample(4, label=3, random_state=0)
    assert draws.shape == (4, 1, 8, 8) and torch.isfinite(draws).all()
    assert torch.equal(m.sample(4, label=3, random_state=0), draws)
    assert m.sample(2, random_state=1).shape == (2, 1, 8, 8)
    with pytest.raises(ConfigError, match="label"):
        m.sample(2, label=11)
    m.save(tmp_path / "jem")
    loaded = JEM.load(tmp_path / "jem")
    assert np.allclose(loaded.predict_proba(xt[:20]), p, atol=1e-6)
    assert torch.allclose(loaded.sample(4, label=3, random_state=0), draws, atol=1e-5)
    assert torch.equal(loaded.objective_.buffer.data, m.objective_.buffer.data)
    with pytest.raises(ConfigError, match="not fitted"):
        JEM().predict(xt[:2])


def test_energy_guard_unit():
    guard = EnergyGuard(10.0)
    assert guard(step=1, loss=0.0, stats={"energy_data": -9.0, "energy_neg": 9.0}) is False
    with pytest.raises(TrainingDivergedError, match="step 7.*SGLD negatives.*energy_reg"):
        guard(step=7, loss=0.0, stats={"energy_data": 0.0, "energy_neg": -11.0})
    with pytest.raises(TrainingDivergedError, match="data is nan"):
        guard(step=2, loss=0.0, stats={"energy_data": float("nan")})


def test_diverging_jem_is_caught_and_never_saved(digits, tmp_path):
    """A learning rate far too large without the energy penalty makes the energies run away (JEM's issues #4/#8):
    fit raises TrainingDivergedError naming the step, and the estimator stays unfitted, so nothing can be saved."""
    x, y, _, _ = digits
    m = JEM(random_state=0, **{**SMALL, "steps": 60, "lr": 1.0, "energy_reg": 0.0})
    with pytest.raises(TrainingDivergedError, match="diverged at step"):
        m.fit(x[:200], y[:200])
    assert not hasattr(m, "classifier_")
    with pytest.raises(ConfigError, match="not fitted"):
        m.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    # with the training loop's watchdog: rolled back and retried at a smaller lr, then stopped; still unfitted
    from ebmlab.train.watchdog import Watchdog

    w = JEM(random_state=0, watchdog=Watchdog(max_retries=1, lr_factor=0.5),
            **{**SMALL, "steps": 60, "lr": 1.0, "energy_reg": 0.0})
    with pytest.raises(TrainingDivergedError, match="diverged"):
        w.fit(x[:200], y[:200])
    assert not hasattr(w, "classifier_")


def test_jem_accuracy_on_digits(digits):
    """A short JEM run (hybrid loss, SGLD negatives) still classifies held-out digits well (measured: 0.93 and
    0.925 test accuracy, AUROC 0.98 / 0.99 against noise, for random_state 0 / 1)."""
    x, y, xt, yt = digits
    m = JEM(random_state=0, channels=16, hidden=64, steps=200, sgld_steps=5, buffer_size=500, lr=3e-3).fit(x, y)
    acc = m.score(xt, yt)
    assert acc > 0.85, acc
    assert "energy_neg" in m.history_.stats[-1]
    # in-distribution digits get a higher -U than uniform noise
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert auroc(m.score_samples(xt), m.score_samples(noise)) > 0.9


def test_calibration_and_auroc_metrics():
    y = np.array([0, 1, 1, 0])
    perfect = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert expected_calibration_error(perfect, y) == pytest.approx(0.0)
    # confident (0.9) and right half the time: ECE = |0.5 - 0.9|
    half = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    assert expected_calibration_error(half, y) == pytest.approx(0.4)
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=40)
    brute = np.mean([(ai > bj) + 0.5 * (ai == bj) for ai in a for bj in b])
    assert auroc(a, b) == pytest.approx(brute)


def test_jem_cli_writes_a_run_and_refuses_to_save_a_diverged_one(tmp_path):
    from ebmlab.cli import EXIT_DIVERGED, main

    out = tmp_path / "ok"
    small = ["--channels", "8", "--hidden", "32", "--sample-steps", "5", "--sgld-steps", "2", "--buffer-size", "64"]
    assert main(["jem", "--steps", "8", *small, "--out", str(out)]) == 0
    for f in ("model.safetensors", "metrics.json", "reliability.png", "ood_hist.png", "samples.png"):
        assert (out / f).exists(), f
    assert JEM.load(out).predict_proba(load_digits("test")[0][:3]).shape == (3, 10)
    bad = tmp_path / "bad"
    code = main(["jem", "--steps", "60", "--lr", "1.0", "--energy-reg", "0", *small, "--out", str(bad)])
    assert code == EXIT_DIVERGED
    assert not (bad / "model.safetensors").exists()


def test_bench_apps_smoke(tmp_path, monkeypatch):
    """`ebmlab bench apps` end to end at toy sizes: every part runs, the tables and checks are written."""
    import json

    import ebmlab.bench.apps as bench

    tiny = dict(seeds=[0], jem_steps=4, sgld_steps=2, jem_sample_steps=2, prior_steps=3, map_steps=3, n_test=6,
                n_val=6, vae_steps=3, ebm_steps=3, latent_sample_steps=30, n_latent=8)
    monkeypatch.setattr(bench, "QUICK", tiny)
    monkeypatch.setattr(bench, "TIK_LAMS", [1.0])
    monkeypatch.setattr(bench, "TV_WEIGHTS", {"denoise": [1.0], "inpaint": [0.1]})
    monkeypatch.setattr(bench, "PRIOR_WEIGHTS", [1.0])
    out = bench.run_apps_bench(tmp_path, quick=True)
    for f in out["files"]:
        assert (tmp_path / f.split("/")[-1]).exists(), f
    result = json.loads((tmp_path / "apps.json").read_text())
    assert set(result["checks"]) == set(out["checks"]) and len(out["checks"]) == 9
    seed0 = result["per_seed"][0]
    assert 0.0 <= seed0["jem"]["jem"]["accuracy"] <= 1.0
    assert set(seed0["inverse"]) >= {"denoise", "inpaint"}
    assert set(seed0["latent"]["by_kl_weight"]) == {"1.0", "0.1"}
    assert "## Checks" in (tmp_path / "apps.md").read_text()
