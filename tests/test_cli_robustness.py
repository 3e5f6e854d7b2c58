"""Bad input and failures on the command line: each item of issue 14's lists gives one line naming the problem and
what is allowed (or, for the CSV with a byte-order mark, reads correctly), and no failure leaves the run directory
worse than before it."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ebmlab.cli import main

TINY = ["--steps", "12", "--n-train", "200", "--n-test", "100", "--n-samples", "100", "--sample-steps", "10",
        "--resolution", "20", "--progress", "false", "--energy-params", "{hidden: [8]}",
        "--objective-params", "{steps: 2, buffer_size: 100}", "--device", "cpu", "--checkpoint-every", "4",
        "--batch-size", "32"]


def _error(capsys, argv, code=2):
    got = main(argv)
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


# --- tracebacks before -----------------------------------------------------------------------------------------
def test_npy_of_strings_and_garbage_files(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("s.npy", np.array([["a", "b"]] * 20))
    assert "must be numeric" in _error(capsys, ["train", "--data", "s.npy"])
    Path("g.npy").write_bytes(b"\x93NUMPY garbage")
    err = _error(capsys, ["train", "--data", "g.npy"])
    assert "not a valid .npy file" in err and "allow_pickle" not in err
    np.save("o.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    err = _error(capsys, ["train", "--data", "o.npy"])
    assert "never unpickles" in err and "allow_pickle=True" not in err
    Path("g.pt").write_bytes(b"not a torch file")
    err = _error(capsys, ["train", "--data", "g.pt"])
    assert "not a file written by torch.save" in err and "weights_only" not in err
    os.mkdir("d.csv")
    assert "is a directory" in _error(capsys, ["train", "--data", "d.csv"])


def test_config_values_are_type_checked(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: zero\n")
    err = _error(capsys, ["train", "--config", str(cfg)])
    assert "seed in" in err and "must be an integer" in err and "'zero'" in err
    cfg.write_text('progress: "yes"\n')
    assert "progress in" in _error(capsys, ["train", "--config", str(cfg)])
    assert "--seed must be an integer" in _error(capsys, ["train", "--seed", "zero"])
    for flag, value in (("--n-samples", "0"), ("--resolution", "0"), ("--n-train", "1"), ("--seed", "-1")):
        assert f"{flag} must be an integer >=" in _error(capsys, ["train", flag, value])
    assert "must be a finite number" in _error(capsys, ["train", "--lr", ".nan"])
    assert main(["train", "--print-config", "--data", "gray:", "--standardize", "false", "--device", "on"]) == 0
    text = capsys.readouterr().out
    assert "data: 'gray:'" in text and "standardize: false" in text and "device: 'on'" in text
    from ebmlab.cli import safe_load_yaml

    assert safe_load_yaml("[1e-3, 1.0e4, -2E+2, 1_000, 1.5]") == [0.001, 10000.0, -200.0, 1000, 1.5]


def test_duplicate_yaml_keys_are_refused(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 5\nlr: 0.1\nsteps: 7\n")
    err = _error(capsys, ["train", "--config", str(cfg)])
    assert "'steps' appears twice (line 3)" in err
    assert "appears twice" in _error(capsys, ["train", "--energy-params", "{hidden: [4], hidden: [8]}"])


def test_directories_and_files_in_the_wrong_place(capsys, tmp_path, finished):
    assert "is a directory, not a YAML file" in _error(capsys, ["train", "--config", str(tmp_path)])
    assert "is a directory" in _error(capsys, ["sample", str(finished), "--out", str(tmp_path)])
    assert "unsupported extension" in _error(capsys, ["sample", str(finished), "--out", str(tmp_path / "x.txt")])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "exists and is a file" in _error(capsys, ["bench", "samplers", "--out", str(blocker)])
    assert "exists and is a file" in _error(capsys, ["sample", str(finished), "--out", str(blocker / "x.npy")])
    assert "is a file; give a directory" in _error(capsys, ["train", "--out", str(blocker), *TINY])


def test_malformed_run_configuration(capsys, tmp_path, finished):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(finished, bad)
    (bad / "config.yaml").write_text("steps: [1, 2\nlr: {\n")
    err = _error(capsys, ["evaluate", str(bad)])
    assert "not valid YAML" in err and "line" in err
    (bad / "config.yaml").write_text("- 1\n- 2\n")
    assert "must hold a mapping of keys to values, got a list" in _error(capsys, ["evaluate", str(bad)])


def test_model_file_of_another_configuration_is_refused(capsys, tmp_path, finished):
    import shutil

    other = tmp_path / "other"
    assert main(["train", "--out", str(other), *TINY, "--energy-params", "{hidden: [6]}"]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(finished, mixed)
    shutil.copy(other / "model.safetensors", mixed / "model.safetensors")
    err = _error(capsys, ["sample", str(mixed), "--out", str(tmp_path / "s.npy")])
    assert "does not belong to this run" in err and "energy_params" in err
    # resuming with another configuration's checkpoint: refused before anything is written
    shutil.copy(other / "checkpoint.safetensors", mixed / "checkpoint.safetensors")
    before = (mixed / "config.yaml").read_bytes()
    err = _error(capsys, ["train", "--out", str(mixed), "--resume", "--steps", "20"])
    assert "belongs to another configuration" in err
    assert (mixed / "config.yaml").read_bytes() == before


def test_failed_resume_keeps_config_and_changed_settings_are_refused(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), *TINY]) == 0
    before = (out / "config.yaml").read_bytes()
    err = _error(capsys, ["train", "--out", str(out), "--resume", "--energy-params", "{hidden: [32]}"])
    assert "energy_params cannot change" in err and "keys that may change on resume: " in err and "steps" in err
    assert "--config cannot be combined" in _error(capsys, ["train", "--out", str(out), "--resume", "--config", "x"])
    assert (out / "config.yaml").read_bytes() == before
    assert main(["train", "--out", str(out), "--resume", "--steps", "16", "--progress", "false"]) == 0
    assert "steps: 16" in (out / "config.yaml").read_text()


def test_unwritable_places_give_one_line_before_training(capsys, tmp_path, monkeypatch):
    """A read-only run directory / working directory / output file system (simulated: the tests run as root, which
    ignores permissions) is reported before any training or sampling."""
    import errno
    import tempfile

    real = tempfile.mkstemp

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    err = _error(capsys, ["train", "--out", str(tmp_path / "ro"), *TINY])
    assert "cannot write to run directory" in err and "Read-only file system" in err
    monkeypatch.chdir(tmp_path)
    assert "Read-only file system" in _error(capsys, ["train", *TINY])
    assert "cannot write to output directory" in _error(capsys, ["sample", str(tmp_path), "--out", "x.npy"])
    monkeypatch.setattr(tempfile, "mkstemp", real)


@pytest.mark.parametrize("failing_write", [1, 2])
def test_full_disk_at_a_checkpoint_keeps_the_last_good_one(capsys, tmp_path, monkeypatch, failing_write):
    import errno

    import ebmlab.train.checkpoint as ck

    real = ck.save_file
    calls = {"n": 0}

    def fill_up(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == failing_write:  # this checkpoint write finds the disk full
            Path(filename).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", fill_up)
    out = tmp_path / "full"
    err = _error(capsys, ["train", "--out", str(out), *TINY], code=1)
    assert "No space left on device" in err
    assert not list(out.glob(".tmp-*"))
    monkeypatch.setattr(ck, "save_file", real)
    if failing_write == 1:  # no checkpoint yet: resuming says so, and the same command starts the run again
        assert not (out / "checkpoint.safetensors").exists()
        assert "no checkpoint at" in _error(capsys, ["train", "--out", str(out), "--resume"])
        assert main(["train", "--out", str(out), *TINY]) == 0
    else:
        assert ck.read_checkpoint_meta(out / "checkpoint.safetensors")["step"] == 4
        assert main(["train", "--out", str(out), "--resume", "--progress", "false"]) == 0


def test_api_bad_input(tmp_path):
    from ebmlab import ConfigError, DataError, EnergyModel

    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match=r"shape \(n_samples, n_features\)"):
        EnergyModel(steps=2, device="cpu").fit(torch.randn(64, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError, match="batch_size=1000000000000 would need 7.45e.03 GiB per minibatch"):
        EnergyModel(steps=2, batch_size=10 ** 12, device="cpu").fit(x)
    m = EnergyModel(steps=2, batch_size=16, energy_params={"hidden": [4]}, objective_params={"steps": 1},
                    sample_steps=2, random_state=0, device="cpu").fit(x)
    target = tmp_path / "model.bin"
    target.write_text("x")
    with pytest.raises(ConfigError, match="takes a directory"):
        m.save(target)
    with pytest.raises(DataError, match="features per row"):
        m.score_samples(torch.randn(5, 3, generator=torch.Generator().manual_seed(2)))


def test_fit_api_bad_input():
    import ebmlab
    from ebmlab import ConfigError, DataError
    from ebmlab.energies import MLPEnergy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    obj = ebmlab.objectives.build("ed")
    with pytest.raises(ConfigError, match="seed must be None or an integer >= 0, got 'abc'"):
        ebmlab.fit(MLPEnergy(2), x, obj, steps=1, seed="abc")
    with pytest.raises(ConfigError, match="energy must be a torch.nn.Module"):
        ebmlab.fit(lambda z: z.sum(1), x, obj, steps=1)
    with pytest.raises(DataError, match=r"got 1-D shape \(40,\); for one feature use x\[:, None\]"):
        ebmlab.fit(MLPEnergy(2), x[:, 0], obj, steps=1)
    with pytest.raises(DataError, match="has 3 features per row but the energy MLPEnergy was built for dim=2"):
        ebmlab.fit(MLPEnergy(2), torch.randn(40, 3, generator=g), obj, steps=1)


# --- silently accepted before ----------------------------------------------------------------------------------
def test_huge_batch_size_is_refused_at_once(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _error(capsys, ["train", *TINY, "--batch-size", "1000000000000"])
    assert "batch_size=1000000000000 exceeds the" in err and "allowed: 1.." in err
    assert not Path("runs").exists() or not any(Path("runs").iterdir())


def test_flag_prefixes_are_not_accepted(capsys):
    assert main(["train", "--step", "3"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --step 3 (did you mean --steps?)" in err and err.count("\n") == 1
    assert main(["sample", "run", "--o", "x.npy"]) == 2


def test_bom_csv_without_header_keeps_its_first_row(tmp_path):
    from ebmlab.data import load_data

    rows = np.arange(24, dtype=float).reshape(12, 2) + 0.5
    text = "\n".join(",".join(f"{v}" for v in r) for r in rows)
    (tmp_path / "b.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    x = load_data(tmp_path / "b.csv")
    assert x.shape == (12, 2) and float(x[0, 0]) == 0.5
    (tmp_path / "h.csv").write_bytes(b"\xef\xbb\xbfa,b\n" + text.encode())
    assert load_data(tmp_path / "h.csv").shape == (12, 2)


def test_evaluate_refuses_an_n_it_cannot_honour_and_keeps_metrics(capsys, finished):
    before = json.loads((finished / "metrics.json").read_text())
    err = _error(capsys, ["evaluate", str(finished), "--n", "5000"])
    assert "--n=5000 exceeds the 100 held-out test points" in err and "allowed: 1..100" in err
    assert "must be an integer >= 1" in _error(capsys, ["evaluate", str(finished), "--n", "0"])
    assert main(["evaluate", str(finished), "--n", "20"]) == 0
    after = json.loads((finished / "metrics.json").read_text())
    assert after["n_samples"] == 20 and after["train_seconds"] == before["train_seconds"] and after["steps"] == 12
    assert "n_samples=5000 exceeds" in _error(capsys, ["train", *TINY, "--n-samples", "5000"])


def test_run_name_is_confined_to_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("../../escape", "a/b", ".hidden", "/abs"):
        assert "plain directory name under runs/" in _error(capsys, ["train", *TINY, "--name", bad])
    assert not (tmp_path.parent / "escape").exists()


# --- state after failures ---------------------------------------------------------------------------------------
def test_stale_tmp_files_are_removed_and_log_is_deduplicated_on_resume(capsys, tmp_path):
    out = tmp_path / "k"
    assert main(["train", "--out", str(out), *TINY]) == 0
    (out / ".tmp-checkpoint.safetensors.abc123.safetensors").write_bytes(b"")
    # a kill after step 10: rows 9-12 were logged after the checkpoint of step 8 that we restore
    import ebmlab.train.checkpoint as ck

    groups, meta = ck.load_checkpoint(out / "checkpoint.safetensors")
    log_before = (out / "log.csv").read_text().splitlines()
    assert len(log_before) == 1 + 12
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "16", "--progress", "false"]) == 0
    err = capsys.readouterr().err
    assert "removed 1 unfinished temporary file" in err
    assert not list(out.glob(".tmp-*"))
    steps = [int(r.split(",")[0]) for r in (out / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 17))


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(capsys, tmp_path, monkeypatch):
    from ebmlab.estimator import EnergyModel

    real_fit = EnergyModel.fit

    def fit(self, X, **kw):
        def press_ctrl_c(step, **_):
            if step == 6:
                os.kill(os.getpid(), signal.SIGINT)
            return False

        kw["callbacks"] = [press_ctrl_c, *kw.get("callbacks", ())]
        return real_fit(self, X, **kw)

    monkeypatch.setattr(EnergyModel, "fit", fit)
    out = tmp_path / "c"
    assert main(["train", "--out", str(out), *TINY, "--checkpoint-every", "100"]) == 130
    err = capsys.readouterr().err
    assert "checkpoint saved at step 6" in err and f"ebmlab train --out {out} --resume" in err
    import ebmlab.train.checkpoint as ck

    assert ck.read_checkpoint_meta(out / "checkpoint.safetensors")["step"] == 6
    assert not (out / "model.safetensors").exists()
    monkeypatch.setattr(EnergyModel, "fit", real_fit)
    assert main(["train", "--out", str(out), "--resume", "--progress", "false"]) == 0


def test_failure_before_the_first_step_leaves_no_run_behind(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _error(capsys, ["train", *TINY, "--optimizer", "adamm"])
    assert "unknown optimizer 'adamm'" in err
    assert not Path("runs").exists() or not any(Path("runs").iterdir())


# --- divergence is not success ------------------------------------------------------------------------------------
@pytest.mark.parametrize("step_size", ["1.0e4", "1.0e8"])
def test_exploded_samples_exit_non_zero_and_the_run_is_not_finished(capsys, tmp_path, step_size):
    out = tmp_path / "div"
    code = main(["train", "--out", str(out), *TINY, "--sampler-params", f"{{step_size: {step_size}}}",
                 "--ema", "null"])
    err = capsys.readouterr().err.strip()
    assert code in (3,), err
    assert err.startswith("error: training diverged") and "not marked finished" in err and "\n" not in err
    assert not (out / "model.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged"]


# --- progress and paths ---------------------------------------------------------------------------------------------
def test_progress_lines_without_a_terminal(capsys, tmp_path):
    out = tmp_path / "p"
    argv = ["train", "--out", str(out), *TINY, "--steps", "40", "--progress", "true"]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    train = [ln for ln in err if ln.startswith("train: ")]
    sampling = [ln for ln in err if ln.startswith("evaluate: sampling")]
    assert len(train) == 10 and train[0].startswith("train:  10% (step 4/40)") and "100% (step 40/40)" in train[-1]
    assert len(sampling) == 10 and any("computing metrics" in ln for ln in err)


def test_data_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("d.npy", rng.normal(size=(120, 2)))
    assert main(["train", "--out", "run", *TINY, "--data", "d.npy", "--n-samples", "10"]) == 0
    import yaml

    stored = yaml.safe_load(Path("run/config.yaml").read_text())["data"]
    assert stored == str(tmp_path / "d.npy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(tmp_path / "run"), "--n", "10"]) == 0


# --- misleading messages before -------------------------------------------------------------------------------------
def test_binary_data_hint_works_as_given(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("b.npy", (np.random.default_rng(0).random((80, 4)) < 0.5).astype(float))
    err = _error(capsys, ["train", "--data", "b.npy", "--progress", "false"])
    assert "--energy ising (or binary_mlp) --sampler gibbs" in err
    argv = ["train", "--data", "b.npy", "--energy", "ising", "--sampler", "gibbs", "--steps", "5", "--n-samples", "8",
            "--sample-steps", "2", "--progress", "false", "--out", "bin", "--device", "cpu", "--batch-size", "32"]
    assert main(argv) == 0


def test_unknown_params_keys_list_the_allowed_ones(capsys):
    err = _error(capsys, ["train", "--sampler-params", "{stepsize: 0.1}"])
    assert "sampler 'ula' has no option 'stepsize'; allowed options: step_size" in err
    err = _error(capsys, ["train", "--objective-params", "{stps: 3}"])
    assert "objective 'pcd' has no option 'stps'; allowed options:" in err and "buffer_size" in err


# --- start-up -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["list"], ["train", "--step", "3"], ["sample"], ["train", "--help"],
                                  ["train", "--seed", "zero"], ["train", "--print-config", "--lr", "1e-3"],
                                  ["sample", "r", "--out", "x.txt"]])
def test_startup_does_not_import_torch(argv):
    code = ("import sys, ebmlab.cli as c\n"
            f"rc = c.main({argv!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print('RC', rc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "RC " in res.stdout, res.stderr[-500:]


def test_list_names_equal_the_registries():
    from ebmlab.cli import LIST_NAMES, live_names

    assert LIST_NAMES == live_names(), "add the new name to ebmlab.cli.LIST_NAMES"


def test_public_names_stay_importable():
    import ebmlab

    for name in ebmlab.__all__:
        assert getattr(ebmlab, name) is not None, name


def test_an_internal_error_is_one_line_with_its_own_status(capsys, monkeypatch):
    import ebmlab.cli as cli

    def broken(args):
        raise TypeError("unsupported operand\nsecond line")

    monkeypatch.setattr(cli, "cmd_list", broken)
    cli._PARSERS.clear()
    try:
        assert cli.main(["list"]) == cli.EXIT_INTERNAL
    finally:
        cli._PARSERS.clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: internal error (TypeError: unsupported operand second line)") and "\n" not in err
    assert "EBMLAB_TRACEBACK=1" in err


def test_out_of_memory_is_one_line(capsys, monkeypatch):
    import ebmlab.cli as cli

    def huge(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 80000000000 bytes. Error code 12")

    monkeypatch.setattr(cli, "cmd_list", huge)
    cli._PARSERS.clear()
    try:
        assert cli.main(["list"]) == cli.EXIT_OS
    finally:
        cli._PARSERS.clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory (an allocation of 74.5 GiB failed)") and "\n" not in err


def test_data_spec_numbers_are_read_as_in_python():
    from ebmlab.data.spec import parse_spec

    assert parse_spec("ising:side=3,coupling=1e-1")[2] == {"side": 3, "coupling": 0.1}
