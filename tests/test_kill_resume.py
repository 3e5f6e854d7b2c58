"""Crash safety of `ebmlab train`: SIGKILL at several moments (inside a checkpoint write, between two checkpoints,
right after a checkpoint is moved into place, and from outside at an arbitrary moment), then `--resume`: the final
model is bit-identical to the uninterrupted run with the same seed, at most one checkpoint interval is lost, and no
partial file is left behind."""
import csv
import json
import signal
import subprocess
import sys

import torch
from safetensors.torch import load_file

STEPS, EVERY = 40, 10
FLAGS = ["--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--n-train", "400", "--n-test", "60",
         "--n-samples", "50", "--sample-steps", "5", "--resolution", "10", "--energy-params", "{hidden: [8]}",
         "--objective-params", "{steps: 3, buffer_size: 64}", "--batch-size", "32", "--seed", "4",
         "--progress", "false"]

# The child runs the real CLI in a fresh interpreter; a hook chosen by the test SIGKILLs it (no cleanup, no
# finally blocks) at a precise moment.
CHILD = r"""
import json, os, signal, sys
how, k, argv = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
import ebmlab.train.checkpoint as ck
from ebmlab.objectives.contrastive_divergence import PersistentCD
calls = {"n": 0}
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if how == "in_write":          # half of the k-th checkpoint's bytes are on disk, in its temporary file
    real = ck.save_file
    def save_file(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == k:
            real(tensors, filename, metadata=metadata)
            size = os.path.getsize(filename)
            with open(filename, "r+b") as f:
                f.truncate(size // 2)
            die()
        return real(tensors, filename, metadata=metadata)
    ck.save_file = save_file
elif how == "at_step":         # during iteration k (after its sampler ran, before the optimiser step)
    real_call = PersistentCD.__call__
    def call(self, energy, batch, generator=None):
        calls["n"] += 1
        out = real_call(self, energy, batch, generator=generator)
        if calls["n"] == k:
            die()
        return out
    PersistentCD.__call__ = call
elif how == "after_replace":   # right after the k-th checkpoint was moved into place
    real_replace = os.replace
    def replace(src, dst, *a, **kw):
        real_replace(src, dst, *a, **kw)
        if str(dst).endswith("checkpoint.safetensors"):
            calls["n"] += 1
            if calls["n"] == k:
                die()
    ck.os.replace = replace
from ebmlab.cli import main
sys.exit(main(argv))
"""


def _run(how, k, argv, cwd):
    return subprocess.run([sys.executable, "-c", CHILD, how, str(k), json.dumps(argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def _checkpoint_step(run_dir):
    from ebmlab.train.checkpoint import read_checkpoint_meta

    return int(read_checkpoint_meta(run_dir / "checkpoint.safetensors")["step"])


def _log_steps(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if not r.get("watchdog")]


def test_sigkill_at_three_moments_then_resume_is_bit_identical(tmp_path):
    """One run killed three times (each stage asserts what a kill at that moment may leave), resumed after each
    kill, against the uninterrupted run: five processes in all, to keep this within CI time."""
    r = _run("none", 0, ["train", "--out", "ref", *FLAGS], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ref = _weights(tmp_path / "ref")
    run_dir = tmp_path / "run"
    stages = [  # (hook, k counted from the start of that process, step of the kill, extra argv)
        ("in_write", 2, 20, []),       # inside the write of the step-20 checkpoint
        ("at_step", 17, 27, ["--resume"]),  # mid-interval (resumed at step 10: its 17th iteration is step 27)
        ("after_replace", 1, 30, ["--resume"]),  # just after the step-30 checkpoint landed
    ]
    for how, k, killed_at, extra in stages:
        r = _run(how, k, ["train", "--out", "run", *extra] + ([] if extra else FLAGS), tmp_path)
        assert r.returncode == -signal.SIGKILL, (how, r.returncode, r.stderr[-2000:])
        assert not (run_dir / "model.safetensors").exists()
        if how == "in_write":  # the kill really hit a write: a partial temporary file is there
            assert [p.name for p in run_dir.iterdir() if p.name.startswith(".tmp-")]
        saved = _checkpoint_step(run_dir)
        assert killed_at - EVERY <= saved <= killed_at, (how, saved)  # at most one checkpoint interval lost
    r = _run("none", 0, ["train", "--out", "run", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = _weights(run_dir)
    assert got.keys() == ref.keys()
    for name in ref:
        assert torch.equal(got[name], ref[name]), name
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".tmp-")]
    assert _log_steps(run_dir) == list(range(1, STEPS + 1))  # every step once: nothing lost, nothing twice
