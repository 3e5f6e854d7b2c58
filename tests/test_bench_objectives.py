"""``ebmlab bench objectives`` on a tiny configuration: files are written and every value is finite."""
import json
import math

import pytest

from ebmlab import ConfigError
from ebmlab.bench.objectives import continuous_objectives, run_objective_bench

TINY = {"n_train": 200, "n_eval": 60, "n_sinkhorn": 40, "resolution": 30}


def test_continuous_objectives_skip_discrete_only():
    names = continuous_objectives()
    assert {"ed", "nce", "mcmc_mle", "cd"} <= set(names)
    assert "pseudo_likelihood" not in names


def test_tiny_bench_writes_finite_tables(tmp_path):
    result = run_objective_bench(tmp_path, quick=True, seeds=(0,), steps=3, failure_steps=3,
                                 objectives=["ed", "nce"], datasets=["8gaussians_unit"], sizes=TINY)
    for name in ("objectives.json", "objectives.md", "objectives_energies.png", "failure_weights.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    on_disk = json.loads((tmp_path / "objectives.json").read_text())
    rows = on_disk["main"]["rows"]
    assert {r["objective"] for r in rows} == {"ed", "nce"}
    for r in rows:
        for key in ("sinkhorn", "grid_nll", "log_density_mse", "wall_time_s"):
            assert math.isfinite(r[key]), (r, key)
    assert math.isfinite(on_disk["main"]["floors"]["8gaussians_unit"])
    methods = {r["method"] for r in result["failure_weights"]}
    assert methods == {"ed", "nce", "ed (t=16)"}
    assert all(0.0 <= r["left_weight"] <= 1.0 for r in result["failure_weights"])
    assert {(r["w"], r["m"]) for r in result["failure_stabilisation"]} == {(w, m) for w in (0.0, 1.0) for m in (1, 4, 32)}
    md = (tmp_path / "objectives.md").read_text()
    assert "Failure mode (a)" in md and "Failure mode (b)" in md and "| ed |" in md


def test_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="unknown continuous objective 'pseudo_likelihood'"):
        run_objective_bench(tmp_path, objectives=["pseudo_likelihood"], failure_modes=False)
    with pytest.raises(ConfigError, match="unknown data set 'mnist'"):
        run_objective_bench(tmp_path, datasets=["mnist"], failure_modes=False)
    with pytest.raises(ConfigError, match="sizes may set"):
        run_objective_bench(tmp_path, sizes={"bins": 3})
