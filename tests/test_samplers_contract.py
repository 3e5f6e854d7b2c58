"""Sampler registry, hyper-parameter validation and the chain runner's options.

The per-sampler contract (shapes, dtypes, device, purity of ``step``, cached energies, reproducibility, the
global RNG) is checked for EVERY registered sampler in tests/test_contract.py.
"""
from __future__ import annotations

import inspect
import json
import math

import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.energies import Energy
from ebmlab.samplers import SAMPLERS, Sampler, available, build, sample

#: samplers that must stay registered (coverage of every registered sampler is in tests/test_contract.py)
CONTINUOUS = ["rwm", "ula", "mala", "hmc", "kinetic_langevin", "underdamped"]


class Quadratic(Energy):
    """U(x) = ½ |x|² summed over every event dimension (works for any event shape)."""

    def forward(self, x):
        return 0.5 * x.pow(2).reshape(x.shape[0], -1).sum(-1)


def test_continuous_samplers_are_registered():
    assert set(CONTINUOUS) <= set(available())
    for name in CONTINUOUS:
        assert isinstance(build(name), Sampler)
    assert SAMPLERS.get("underdamped") is SAMPLERS.get("kinetic_langevin")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        build("langevin_dance")
    for name in ("mala", "hmc", "ula", "rwm", "kinetic_langevin"):
        assert name in str(err.value)


#: every registered sampler whose constructor takes a step size (read from the signatures, not a list)
WITH_STEP_SIZE = [n for n in available() if "step_size" in inspect.signature(SAMPLERS.get(n)).parameters]


def test_step_size_samplers_are_found():
    assert set(WITH_STEP_SIZE) >= {"rwm", "ula", "mala", "hmc", "kinetic_langevin"}


@pytest.mark.parametrize("name", WITH_STEP_SIZE)
@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf"), "big", None])
def test_bad_step_size_raises(name, bad):
    with pytest.raises(ConfigError, match="step_size"):
        build(name, step_size=bad)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("hmc", {"n_leapfrog": 0}, "n_leapfrog"),
        ("hmc", {"n_leapfrog": 2.5}, "n_leapfrog"),
        ("hmc", {"mass": -1.0}, "mass"),
        ("hmc", {"mass": torch.tensor([1.0, 0.0])}, "mass"),
        ("mala", {"target_accept": 1.0}, "target_accept"),
        ("kinetic_langevin", {"friction": 0.0}, "friction"),
        ("ula", {"stepsize": 0.1}, "stepsize"),
    ],
)
def test_bad_hyper_parameters_raise(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build(name, **kwargs)


def test_mass_shape_mismatch_raises():
    with pytest.raises(ConfigError, match="mass"):
        build("hmc", mass=torch.ones(5)).init(Quadratic(), torch.zeros(4, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"steps": 0}, "steps"), ({"steps": 5, "thin": 0}, "thin"), ({"steps": 5, "burn_in": -1}, "burn_in"),
     ({"steps": 5, "adapt": True}, "burn_in"), ({"steps": 5, "adapt": "yes"}, "adapt")],
)
def test_driver_validates(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sample(Quadratic(), build("mala"), torch.zeros(3, 2), **kwargs)


def test_driver_rejects_bad_inputs():
    with pytest.raises(ConfigError, match="adapt"):
        sample(Quadratic(), build("ula"), torch.zeros(3, 2), steps=3, burn_in=3, adapt=True)
    with pytest.raises(DataError, match="x0"):
        sample(Quadratic(), build("ula"), torch.zeros(3, 2, dtype=torch.int64), steps=3)
    with pytest.raises(DataError, match="x0"):
        sample(Quadratic(), build("ula"), torch.tensor([[float("nan"), 0.0]]), steps=3)
    with pytest.raises(DataError, match="Tensor\\[batch\\]"):
        sample(lambda_energy(lambda x: x.sum(-1, keepdim=True)), build("mala"), torch.zeros(3, 2), steps=3)
    with pytest.raises(ConfigError, match="sampler"):
        sample(Quadratic(), 3, torch.zeros(3, 2), steps=3)


def lambda_energy(fn):
    from ebmlab.energies import FunctionEnergy

    return FunctionEnergy(fn)


def test_driver_thinning_keeps_every_thin_th_post_burn_in_state():
    seen = []
    x, info = sample(
        Quadratic(), build("ula"), torch.zeros(2, 2), steps=10, burn_in=4, thin=4, generator=0,
        callbacks=[lambda step, state, info: seen.append((step, state.x.clone()))],
    )
    assert [step for step, _ in seen] == list(range(14)) and x.shape[0] == 3
    for k, i in enumerate((0, 4, 8)):
        assert torch.equal(x[k], seen[4 + i][1])
    assert torch.equal(info.state.x, seen[-1][1])
    assert info.steps == 10 and info.burn_in == 4 and info.thin == 4 and info.wall_time > 0


def test_driver_calls_every_callback_with_keywords_and_rejects_bad_ones():
    calls = {"a": [], "b": []}
    sample(Quadratic(), build("mala"), torch.zeros(3, 2), steps=3, burn_in=2, generator=0,
           callbacks=[lambda **kw: calls["a"].append(kw), lambda *, step, state, info: calls["b"].append(step)])
    assert [kw["step"] for kw in calls["a"]] == [0, 1, 2, 3, 4] and calls["b"] == [0, 1, 2, 3, 4]
    assert list(calls["a"][0]) == ["step", "state", "info"]
    assert calls["a"][-1]["info"].acceptance_rate.shape == (3,)
    with pytest.raises(ConfigError, match=r"callbacks=\[fn\]"):
        sample(Quadratic(), "ula", torch.zeros(2, 2), steps=2, callbacks=lambda **kw: None)
    with pytest.raises(ConfigError, match="callable"):
        sample(Quadratic(), "ula", torch.zeros(2, 2), steps=2, callbacks=[1])


def test_driver_accepts_names_and_freezes_adapted_step():
    x, info = sample(Quadratic(), "mala", torch.zeros(16, 2), steps=20, burn_in=30, generator=0)
    assert info.adapted and info.state.step_size == info.step_size
    x, info = sample(Quadratic(), "mala", torch.zeros(16, 2), steps=20, burn_in=30, adapt=False, generator=0)
    assert not info.adapted and info.step_size == build("mala").step_size


def test_sampler_bench_quick(tmp_path):
    from ebmlab.bench.samplers import run_sampler_bench

    result = run_sampler_bench(tmp_path, quick=True)
    assert (tmp_path / "samplers.md").is_file() and (tmp_path / "samplers.json").is_file()
    saved = json.loads((tmp_path / "samplers.json").read_text())
    assert saved["rows"] and len(saved["rows"]) == len(result["rows"])
    for row in saved["rows"]:
        for key in ("median", "min", "max"):
            assert math.isfinite(row[key]) and row[key] > 0
    assert "allocator_env" in saved
