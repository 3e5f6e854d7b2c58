"""Data parallelism over 2 gloo processes: equality with one process at the same global batch, sharded PCD buffers
with independent rank streams, exact resume with the same number of ranks, resume with another number of ranks."""
import os
import socket

import pytest
import torch

import ebmlab
from ebmlab._core.random import init_parameters_
from ebmlab.energies import MLPEnergy
from ebmlab.energies.quadratic import Quadratic
from ebmlab.objectives import build
from ebmlab.train import load_checkpoint
from ebmlab.train.checkpoint import CHECKPOINT_NAME
from ebmlab.train.distributed import rank_seed

#: 2-process vs 1-process weights after 40 Adam steps of exact score matching in float64: the only difference is the
#: order of summation of the global-batch mean (two half-batch means averaged by all_reduce), ~1e-16 relative per step
EQUALITY_RTOL = 1e-9


def _data(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor([[1.4, 0.0], [0.6, 0.8]], dtype=dtype)
    return torch.randn(n, 2, generator=g, dtype=dtype) @ L.T + torch.tensor([1.0, -1.0], dtype=dtype)


def _sm_fit():
    q = Quadratic(2, dtype=torch.float64)
    ebmlab.fit(q, _data(256), build("sm"), steps=40, batch_size=64, lr=0.05, seed=3, device="cpu")
    return {k: v.detach().clone() for k, v in q.state_dict().items()}


def _pcd(steps, ckpt, resume=False, mix=None):
    x = _data(512, dtype=torch.float32).float()
    e = init_parameters_(MLPEnergy(2, (8,)), torch.Generator().manual_seed(0))
    ebmlab.fit(e, x, build("pcd", steps=3, buffer_size=64), steps=steps, batch_size=32, seed=11, device="cpu",
               checkpoint_dir=ckpt, checkpoint_every=5, resume=resume, buffer_mix_every=mix)
    return {k: v.detach().clone() for k, v in e.state_dict().items()}


def _draws(distributed=True):
    from ebmlab.energies.analytic import Gaussian
    from ebmlab.samplers import MALA, sample

    target = Gaussian(torch.zeros(2, dtype=torch.float64), torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=torch.float64))
    x0 = torch.linspace(-3, 3, 16, dtype=torch.float64).reshape(8, 2)
    return sample(target, MALA(step_size=0.5), x0, 200, burn_in=50, generator=21, distributed=distributed)


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    x, info = _draws()
    results = {"sm": _sm_fit(), "draws": x, "acc": info.acceptance_per_chain, "ess": info.ess, "rhat": info.rhat}
    results["full"] = _pcd(20, os.path.join(out, "full"))
    _pcd(10, os.path.join(out, "half"))
    results["resumed"] = _pcd(20, os.path.join(out, "half"), resume=True)
    _pcd(10, os.path.join(out, "mixed"), mix=2)
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(out)), nprocs=2, join=True)
    return out, [torch.load(out / f"rank{r}.pt") for r in range(2)]


def test_two_processes_learn_what_one_process_learns_with_the_same_global_batch(two_ranks):
    _, (r0, r1) = two_ranks
    one = _sm_fit()
    for k in one:
        assert torch.equal(r0["sm"][k], r1["sm"][k]), k  # ranks hold identical weights
        assert torch.allclose(r0["sm"][k], one[k], rtol=EQUALITY_RTOL, atol=1e-12), (k, r0["sm"][k], one[k])
    assert not torch.equal(one["mean"], Quadratic(2, dtype=torch.float64).state_dict()["mean"])  # it did train


def test_pcd_buffer_is_sharded_with_independent_rank_streams(two_ranks):
    out, _ = two_ranks
    groups, meta = load_checkpoint(out / "full" / CHECKPOINT_NAME)
    buf = groups["objective"]["buffer"]
    assert buf.shape == (64, 2) and meta["world_size"] == 2  # the global buffer_size, concatenated shards
    assert not torch.allclose(buf[:32], buf[32:])
    gens = groups["rng"]["gen"]
    assert gens.shape[0] == 2 and not torch.equal(gens[0], gens[1])
    assert rank_seed(11, 0) == 11 and len({rank_seed(11, r) for r in range(4)} | {12, 13}) == 6


def test_resume_with_the_same_ranks_is_exact_and_with_one_rank_continues(two_ranks, tmp_path):
    out, (r0, r1) = two_ranks
    for k in r0["full"]:
        assert torch.equal(r0["full"][k], r0["resumed"][k]), k
        assert torch.equal(r0["full"][k], r1["full"][k]), k
    # a 2-process checkpoint continued by one process: the global buffer is kept whole
    import shutil

    shutil.copytree(out / "mixed", tmp_path / "mixed")
    before, _ = load_checkpoint(tmp_path / "mixed" / CHECKPOINT_NAME)
    w = _pcd(15, tmp_path / "mixed", resume=True)
    groups, meta = load_checkpoint(tmp_path / "mixed" / CHECKPOINT_NAME)
    assert meta["step"] == 15 and meta["world_size"] == 1 and groups["objective"]["buffer"].shape == (64, 2)
    assert all(torch.isfinite(v).all() for v in w.values())
    assert not torch.equal(before["objective"]["buffer"], groups["objective"]["buffer"])


def test_distributed_sampling_splits_chains_and_gathers_draws_and_diagnostics(two_ranks):
    from ebmlab.energies.analytic import Gaussian
    from ebmlab.samplers import MALA, sample

    _, (r0, r1) = two_ranks
    assert r0["draws"].shape == (200, 8, 2) and torch.equal(r0["draws"], r1["draws"])  # every rank has all draws
    assert torch.equal(r0["ess"], r1["ess"]) and r0["acc"].shape == (8,)
    # rank r ran chains [4r, 4r + 4) with its own stream: exactly what one process does with that stream
    target = Gaussian(torch.zeros(2, dtype=torch.float64), torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=torch.float64))
    x0 = torch.linspace(-3, 3, 16, dtype=torch.float64).reshape(8, 2)
    for r in range(2):
        part, _ = sample(target, MALA(step_size=0.5), x0[4 * r:4 * r + 4], 200, burn_in=50,
                         generator=rank_seed(21, r))
        assert torch.equal(part, r0["draws"][:, 4 * r:4 * r + 4])
    assert (r0["rhat"] < 1.1).all() and (r0["ess"] > 50).all()
    one, info = _draws()  # one process: the same option runs all chains on rank 0's stream, ess/rhat filled in
    plain, _ = sample(target, MALA(step_size=0.5), x0, 200, burn_in=50, generator=rank_seed(21, 0))
    assert torch.equal(one, plain) and info.ess is not None and info.ess.shape == (2,)


def test_global_batch_must_divide_over_ranks():
    # one process: any batch works; the check itself is exercised with a fake world through the same arithmetic
    from ebmlab import ConfigError
    import importlib

    fit_module = importlib.import_module("ebmlab.train.fit")

    class Two:
        @staticmethod
        def init_from_env(device):
            return False

        @staticmethod
        def rank():
            return 0

        @staticmethod
        def world_size():
            return 2

    real = fit_module.dist_utils
    fit_module.dist_utils = Two
    try:
        with pytest.raises(ConfigError, match="divisible by the number of processes"):
            ebmlab.fit(Quadratic(2), _data(64).float(), build("sm"), steps=1, batch_size=33, device="cpu")
    finally:
        fit_module.dist_utils = real


def test_cli_nproc_trains_and_samples_under_torchrun(tmp_path):
    """`ebmlab train --nproc 2` and `ebmlab sample --nproc 2` start torchrun; rank 0 writes one run directory."""
    import subprocess
    import sys

    import numpy as np

    flags = ["--steps", "20", "--n-train", "200", "--n-test", "60", "--n-samples", "50", "--sample-steps", "5",
             "--resolution", "10", "--energy-params", "{hidden: [8]}", "--objective-params",
             "{steps: 3, buffer_size: 64}", "--batch-size", "32", "--progress", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ebmlab.cli", "train", "--nproc", "2", "--out", "run", *flags],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[:3000] + "\n[...]\n" + r.stderr[-3000:]  # a worker's own message comes first
    assert r.stdout.count("run directory: run") == 1  # rank 0 reports, once
    _, meta = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert meta["world_size"] == 2 and meta["step"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    r = subprocess.run([sys.executable, "-m", "ebmlab.cli", "sample", "run", "--n", "40", "--nproc", "2", "--out",
                        "s.npy"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[:3000] + "\n[...]\n" + r.stderr[-3000:]
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (40, 2) and np.isfinite(x).all()


def test_torchrun_worker_entry_point_keeps_the_exit_status_and_message(tmp_path):
    """``python -m ebmlab.train.launch`` (what torchrun starts) ends by ``os._exit`` after flushing: the CLI's exit
    status and its one-line error must survive that."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "EBMLAB_TORCHRUN_ARGV": json.dumps(["train", "--model", "nope"])}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, "-m", "ebmlab.train.launch"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: unknown model 'nope'; valid models are: ebm, gebm, latent_ebm, diffebm"
    env["EBMLAB_TORCHRUN_ARGV"] = json.dumps(["train", "--print-config"])
    r = subprocess.run([sys.executable, "-m", "ebmlab.train.launch"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0 and "steps:" in r.stdout  # buffered stdout (a pipe) is flushed before os._exit


def test_torchrun_module_cli_directly(tmp_path):
    """``torchrun ... -m ebmlab.cli train`` (the several-machines form of the README): rank 0 reports once, the run
    directory holds a 2-process checkpoint, and the worker's ``os._exit`` keeps the exit status 0."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "ebmlab.cli", "train", "--out", "run", "--steps", "4", "--n-train", "200", "--n-test", "60",
                        "--n-samples", "20", "--sample-steps", "3", "--resolution", "10", "--energy-params",
                        "{hidden: [8]}", "--objective", "sm", "--batch-size", "32", "--progress", "false"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[:3000] + "\n[...]\n" + r.stderr[-3000:]
    assert r.stdout.count("run directory: run") == 1
    _, meta = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert meta["world_size"] == 2 and meta["step"] == 4
