"""The ebmlab command: train -> run directory, sample, evaluate, resume, and one-line errors for bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest

from ebmlab.cli import main

TINY = ["--steps", "30", "--n-train", "400", "--n-test", "200", "--n-samples", "200", "--sample-steps", "30",
        "--resolution", "40", "--progress", "false", "--energy-params", "{hidden: [16, 16]}",
        "--objective-params", "{steps: 5, buffer_size: 200}", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_complete_run_directory(run_dir):
    for name in ("config.yaml", "checkpoint.safetensors", "model.safetensors", "log.csv", "metrics.json",
                 "samples.png", "energy.png", "loss.png"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("sinkhorn", "sinkhorn_data", "mmd", "grid_nll", "energy_distance"):
        assert np.isfinite(metrics[key]), key


def test_sample_and_evaluate(run_dir, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--n", "25", "--out", str(out), "--steps", "10"]) == 0
    x = np.load(out)
    assert x.shape == (25, 2) and np.isfinite(x).all()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--n", "100"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_samples"] == 100 and np.isfinite(metrics["sinkhorn"])


def test_resume_continues_the_run(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), *TINY, "--steps", "10"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--steps", "20", "--progress", "false"]) == 0
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 20 and rows[-1].startswith("20,")


def test_print_config_reflects_flags(capsys):
    assert main(["train", "--print-config", "--objective", "cd", "--steps", "7"]) == 0
    text = capsys.readouterr().out
    assert "objective: cd" in text and "steps: 7" in text and "objective_params: {}" in text


def _error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--data", "9gaussians"], "unknown data set '9gaussians'"),
        (["train", "--objective", "cdd"], "unknown objective 'cdd'; valid names are"),
        (["train", "--sampler", "lngevin"], "unknown sampler 'lngevin'; valid names are"),
        (["train", "--steps", "0"], "steps must be an integer >= 1"),
        (["train", "--steps", "ten"], "--steps must be an integer"),
        (["train", "--sampler-params", "{step_size: -0.1}"], "step_size must be a finite number > 0"),
        (["train", "--lr", "-1"], "lr must be a finite number > 0"),
        (["sample", "/nonexistent/run", "--out", "x.npy"], "run directory /nonexistent/run does not exist"),
        (["evaluate", "/nonexistent/run"], "does not exist"),
        (["bench", "nothing"], "unknown benchmark suite 'nothing'"),
        (["train", "--model", "gan"], "unknown model 'gan'; valid models are: ebm"),
        (["train", "--model-params", "{latent_dim: 4}"], "model_params apply to --model"),
        (["train", "--config", "/nonexistent.yaml"], "config file /nonexistent.yaml does not exist"),
    ],
)
def test_bad_input_gives_one_line_errors(capsys, argv, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert match in _error_line(capsys, argv + (["--progress", "false"] if argv[0] == "train" else []))


def test_bad_data_files(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nan = tmp_path / "nan.npy"
    x = np.random.default_rng(0).normal(size=(50, 2))
    x[3, 0] = np.nan
    np.save(nan, x)
    assert "non-finite" in _error_line(capsys, ["train", "--data", str(nan), "--progress", "false"])
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(50))
    assert "2-D" in _error_line(capsys, ["train", "--data", str(flat), "--progress", "false"])


def test_corrupted_checkpoint_and_existing_run(capsys, run_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage")
    assert "corrupted" in _error_line(capsys, ["sample", str(bad), "--out", str(tmp_path / "o.npy")])
    assert "already holds a run" in _error_line(capsys, ["train", "--out", str(run_dir), "--progress", "false"])


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "ebmlab.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "train" in res.stdout and "bench" in res.stdout


def test_train_and_sample_a_discrete_ising_model(tmp_path):
    out = tmp_path / "ising"
    argv = ["train", "--out", str(out), "--data", "ising:side=3,coupling=0.3", "--energy", "ising", "--sampler",
            "gibbs", "--steps", "40", "--n-train", "300", "--n-test", "100", "--n-samples", "100", "--sample-steps",
            "5", "--objective-params", "{steps: 1, buffer_size: 200}", "--lr", "0.02", "--progress", "false",
            "--device", "cpu"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["coupling_rmse"] < metrics["coupling_rmse_zero_model"]
    assert np.isfinite(metrics["nll"])
    assert main(["sample", str(out), "--n", "6", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (6, 9) and set(np.unique(s)) <= {0.0, 1.0}


def test_binary_data_needs_a_discrete_model(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ["--n-train", "300", "--n-test", "100", "--progress", "false"]  # the check needs the data, not many rows
    err = _error_line(capsys, ["train", "--data", "ising:side=3,coupling=0.3", *small])
    assert "binary" in err and "--energy ising" in err
    err = _error_line(capsys, ["train", "--data", "ising:side=3,coupling=0.3", "--energy", "ising", *small])
    assert "choose a discrete sampler" in err


def test_model_keys_are_the_facade_parameters():
    """One list of model options: the command's keys for the model are EnergyModel's constructor parameters
    (``random_state`` spelled ``seed``), so a new facade option cannot be forgotten by the command."""
    from ebmlab import EnergyModel
    from ebmlab.cli import DEFAULTS
    from ebmlab.run import _model_from_config, model_config_keys

    keys = model_config_keys()
    assert "seed" in keys and "random_state" not in keys and len(keys) == len(EnergyModel.parameter_names())
    assert set(keys) <= set(DEFAULTS), sorted(set(keys) - set(DEFAULTS))
    m = _model_from_config(DEFAULTS)
    assert m.random_state == DEFAULTS["seed"] and m.standardize == DEFAULTS["standardize"]
