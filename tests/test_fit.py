"""The training loop: convergence on a closed form, exact resume, NaN guard, checkpoints, EMA, logging, DDP."""
import csv
import math
import os

import pytest
import torch

from ebmlab._core.random import init_parameters_

import ebmlab
from ebmlab import ConfigError, DataError, TrainingDivergedError
from ebmlab.energies import MLPEnergy
from ebmlab.energies.quadratic import Quadratic
from ebmlab.objectives import LossOutput, Objective, build
from ebmlab.train import load_checkpoint
from ebmlab.train.checkpoint import CHECKPOINT_NAME


class ExactNLL(Objective):
    """mean U(x) + log Z: the exact negative log-likelihood of a Quadratic energy (MLE = sample mean/cov)."""

    def __call__(self, energy, batch, generator=None):
        return LossOutput(energy(batch).mean() + energy.log_normalizer(), {})


def _gaussian_data(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor([[1.4, 0.0], [0.6, 0.8]], dtype=dtype)
    return torch.randn(n, 2, generator=g, dtype=dtype) @ L.T + torch.tensor([1.0, -1.0], dtype=dtype)


def test_fit_reaches_the_closed_form_mle(float64):
    x = _gaussian_data(2000)
    q = Quadratic(2)
    ebmlab.fit(q, x, ExactNLL(), steps=1500, batch_size=2000, lr=0.03, seed=0)
    mean, cov = x.mean(0), torch.cov(x.T, correction=0)
    assert torch.allclose(q.mean, mean, atol=2e-3)
    assert torch.allclose(q.covariance(), cov, atol=5e-3)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    x = _gaussian_data(500, dtype=torch.float32).float()

    def run(steps, ckpt, resume=False, energy=None):
        e = energy if energy is not None else init_parameters_(MLPEnergy(2, (16, 16)), torch.Generator().manual_seed(123))
        obj = build("pcd", steps=3, buffer_size=64)
        h = ebmlab.fit(e, x, obj, steps=steps, batch_size=32, seed=5, checkpoint_dir=ckpt, checkpoint_every=5,
                       resume=resume)
        return e, h

    full, h_full = run(20, tmp_path / "a")
    run(10, tmp_path / "b")
    resumed, h_res = run(20, tmp_path / "b", resume=True)
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    assert h_res.loss == h_full.loss
    assert h_res.steps == list(range(1, 21))


def test_nan_guard_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    class NaNAt(Objective):
        def __init__(self, at):
            self.at, self.calls = at, 0

        def __call__(self, energy, batch, generator=None):
            self.calls += 1
            loss = energy(batch).mean()
            if self.calls >= self.at:
                loss = loss * float("nan")
            return LossOutput(loss, {})

    x = _gaussian_data(100, dtype=torch.float32).float()
    e = MLPEnergy(2, (8,))
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 7: the loss is nan.*last good checkpoint"):
        ebmlab.fit(e, x, NaNAt(7), steps=50, checkpoint_dir=tmp_path, checkpoint_every=2)
    groups, meta = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert meta["step"] == 6
    assert all(torch.isfinite(v).all() for v in groups["energy"].values())


def test_corrupted_checkpoint_is_a_data_error(tmp_path):
    x = _gaussian_data(100, dtype=torch.float32).float()
    e = MLPEnergy(2, (8,))
    ebmlab.fit(e, x, build("cd", steps=1), steps=4, checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupted"):
        load_checkpoint(path)
    with pytest.raises(DataError, match="corrupted"):
        ebmlab.fit(e, x, build("cd", steps=1), steps=8, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(DataError, match="no checkpoint"):
        ebmlab.fit(e, x, build("cd", steps=1), steps=8, checkpoint_dir=tmp_path / "missing", resume=True)


def test_no_temporary_files_are_left_behind(tmp_path):
    x = _gaussian_data(100, dtype=torch.float32).float()
    ebmlab.fit(MLPEnergy(2, (8,)), x, build("cd", steps=1), steps=6, checkpoint_dir=tmp_path, checkpoint_every=1)
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"batch_size": -3}, "batch_size"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"optimizer": "adamx"}, "unknown optimizer 'adamx'; valid names are: adam, adamw, rmsprop, sgd"),
        ({"ema": 1.0}, "ema must be in"),
        ({"resume": True}, "resume=True needs checkpoint_dir"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_training_options_raise_config_errors(kwargs, match):
    x = _gaussian_data(50, dtype=torch.float32).float()
    with pytest.raises(ConfigError, match=match):
        ebmlab.fit(MLPEnergy(2, (4,)), x, build("cd", steps=1), **kwargs)


@pytest.mark.parametrize("bad, match", [(float("nan"), "non-finite"), (None, "2 rows")])
def test_bad_data_raises_data_error(bad, match):
    x = _gaussian_data(50, dtype=torch.float32).float()
    if bad is None:
        x = x[:1]
    else:
        x[3, 1] = bad
    with pytest.raises(DataError, match=match):
        ebmlab.fit(MLPEnergy(2, (4,)), x, build("cd", steps=1), steps=2)


def test_ema_weights_are_loaded_at_the_end_and_csv_log_is_written(tmp_path):
    x = _gaussian_data(200, dtype=torch.float32).float()
    a = init_parameters_(MLPEnergy(2, (8,)), torch.Generator().manual_seed(0))
    b = MLPEnergy(2, (8,))
    b.load_state_dict(a.state_dict())
    ebmlab.fit(a, x, build("cd", steps=2), steps=30, seed=1)
    ebmlab.fit(b, x, build("cd", steps=2), steps=30, seed=1, ema=0.9, log_csv=tmp_path / "log.csv")
    # EMA weights differ from the raw ones but stay close to them
    diffs = [float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters())]
    assert max(diffs) > 0
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and {"step", "loss", "energy_gap", "grad_norm", "time"} <= set(rows[0])
    assert all(math.isfinite(float(r["loss"])) for r in rows)


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    x = _gaussian_data(400, seed=0, dtype=torch.float32).float()
    # different initial weights on purpose: fit must broadcast rank 0's
    e = init_parameters_(MLPEnergy(2, (8,)), torch.Generator().manual_seed(rank))
    ebmlab.fit(e, x, build("cd", steps=2), steps=10, batch_size=32, seed=0, device="cpu")
    torch.save({k: v.clone() for k, v in e.state_dict().items()}, os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_distributed_data_parallel_keeps_ranks_identical(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    for k in w0:
        assert torch.allclose(w0[k], w1[k], atol=1e-6), k
