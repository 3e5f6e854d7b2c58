"""The training watchdog: a too-large learning rate recovers by rollback into the stable run's Sinkhorn band; a
divergence that no retry cures stops with a report; the last good checkpoint never holds a diverged state."""
import csv
import math

import pytest
import torch

import ebmlab
from ebmlab import ConfigError, TrainingDivergedError
from ebmlab.energies.quadratic import Quadratic
from ebmlab.metrics import sinkhorn
from ebmlab.objectives import LossOutput, Objective, build
from ebmlab.train import load_checkpoint
from ebmlab.train.checkpoint import CHECKPOINT_NAME
from ebmlab.train.watchdog import Watchdog, resolve_watchdog


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    L = torch.tensor([[1.4, 0.0], [0.6, 0.8]])
    return torch.randn(n, 2, generator=g) @ L.T + torch.tensor([1.0, -1.0])


def _sm(lr, **kw):
    """Exact score matching of a Gaussian energy with plain SGD: for lr above ~1 the first steps overflow."""
    q = Quadratic(2)
    ebmlab.fit(q, _data(1000, 0), build("sm"), steps=300, batch_size=100, lr=lr, optimizer="sgd",
               lr_schedule="cosine", seed=0, device="cpu", **kw)
    return q


def _sinkhorn(q, test):
    return sinkhorn(q.sample(400, generator=torch.Generator().manual_seed(5)), test)


def test_too_large_lr_recovers_into_the_stable_runs_sinkhorn_band(tmp_path):
    test, reference = _data(400, 1), _data(400, 2)
    floor = sinkhorn(reference, test)  # data against independent data of the same size
    band = 1.5 * floor
    stable = _sinkhorn(_sm(0.2), test)
    assert stable < band
    with pytest.raises(TrainingDivergedError):  # without the watchdog the same run fails
        _sm(2.0)
    guard = Watchdog()
    q = _sm(2.0, watchdog=guard, checkpoint_dir=tmp_path, checkpoint_every=20, log_csv=tmp_path / "log.csv")
    assert 1 <= guard.retries <= guard.max_retries
    assert _sinkhorn(q, test) < band, (_sinkhorn(q, test), stable, floor)
    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    events = [r for r in rows if r["watchdog"]]
    assert len(events) == guard.retries and "rolled back to step" in events[0]["watchdog"]
    normal = [int(r["step"]) for r in rows if not r["watchdog"]]
    assert normal[-1] == 300
    _, meta = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert meta["watchdog"]["retries"] == guard.retries
    assert math.isclose(meta["watchdog"]["lr_scale"], guard.lr_factor ** guard.retries)


def test_rollback_without_a_checkpoint_directory_uses_the_state_kept_in_memory():
    guard = Watchdog()
    q = _sm(2.0, watchdog=guard)
    assert guard.retries >= 1 and guard.rollbacks[0]["to_step"] == 0
    assert all(torch.isfinite(p).all() for p in q.parameters())
    assert torch.allclose(q.mean, _data(1000, 0).mean(0), atol=0.1)


class _Explodes(Objective):
    """mean U(x) that turns into -3.5e11 from iteration ``at`` on (or reports a stuck sampler), whatever the lr:
    a divergence no retry can cure."""

    def __init__(self, at, kind="loss"):
        self.calls, self.at, self.kind = 0, at, kind

    def __call__(self, energy, batch, generator=None):
        self.calls += 1
        u = energy(batch).mean()
        bad = self.calls >= self.at
        if self.kind == "loss":
            return LossOutput(u - 3.5e11 * bad, {"energy_gap": 0.1})
        return LossOutput(u, {"acceptance": 0.0 if bad else 0.6})


@pytest.mark.parametrize("kind", ["loss", "acceptance"])
def test_incurable_divergence_stops_with_a_report_and_keeps_a_good_checkpoint(tmp_path, kind, capsys):
    guard = Watchdog(max_retries=2, patience=5)
    with pytest.raises(TrainingDivergedError, match="used its 2 retries") as err:
        ebmlab.fit(Quadratic(2), _data(200, 0), _Explodes(30, kind), steps=100, batch_size=50, lr=0.01, seed=0,
                   device="cpu", watchdog=guard, checkpoint_dir=tmp_path, checkpoint_every=10,
                   log_csv=tmp_path / "log.csv")
    assert "retry 1" in str(err.value) and "retry 2" in str(err.value)
    assert capsys.readouterr().err.count("watchdog: step") == 2  # each rollback on the console
    _, meta = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    # the divergence starts at iteration 30 (a checkpoint step): the last good checkpoint is step 20
    assert meta["step"] == 20
    assert all(abs(v) < 1e3 for v in meta["history"]["loss"])
    with open(tmp_path / "log.csv", newline="") as f:
        assert sum(1 for r in csv.DictReader(f) if r["watchdog"]) == 2


def test_watchdog_options():
    assert resolve_watchdog("off") is None and resolve_watchdog(False) is None and resolve_watchdog(None) is None
    assert isinstance(resolve_watchdog(True), Watchdog)
    with pytest.raises(ConfigError, match="watchdog must be"):
        resolve_watchdog("sometimes")
    with pytest.raises(ConfigError, match="lr_factor"):
        Watchdog(lr_factor=1.5)


def test_pcd_with_a_far_too_large_sampler_step_is_stopped_not_reported_as_success():
    """ULA step 1e4: the negatives land hundreds of nats above the data's energy (the chains do not sample the
    model); no learning rate cures it, so the watchdog stops the run with its report."""
    from ebmlab._core.random import init_parameters_
    from ebmlab.energies import MLPEnergy
    from ebmlab.samplers import ULA

    e = init_parameters_(MLPEnergy(2, (16,)), torch.Generator().manual_seed(0))
    pcd = build("pcd", sampler=ULA(step_size=1e4), steps=5, buffer_size=256)
    with pytest.raises(TrainingDivergedError, match="do not sample the model.*used its 3 retries"):
        ebmlab.fit(e, _data(500, 0), pcd, steps=150, batch_size=64, lr=2e-3, seed=0, device="cpu", watchdog=True)
    healthy = build("pcd", sampler=ULA(step_size=0.01), steps=5, buffer_size=256)
    guard = Watchdog()
    ebmlab.fit(init_parameters_(MLPEnergy(2, (16,)), torch.Generator().manual_seed(0)), _data(500, 0), healthy,
               steps=150, batch_size=64, lr=2e-3, seed=0, device="cpu", watchdog=guard)
    assert guard.retries == 0  # a healthy PCD run is left alone
