"""`ebmlab bench diffebm`: a tiny run writes the table, JSON and figure with all four methods; `--full` is refused
outside the diffebm suite."""
import json
import math

import pytest
import torch

from ebmlab.bench.diffebm import LONG_METHOD, METHODS, config, data_scale, run_diffebm_bench, scaled_sinkhorn
from ebmlab.cli import main
from ebmlab.data import toy


def test_config_sizes():
    assert config(False, full=True)["seeds"] == tuple(range(10))
    assert len(config(False)["seeds"]) < 10 and config(True)["steps"] < config(False)["steps"]
    assert config(True)["datasets"] == ("8gaussians_unit", "grid", "swissroll", "checkerboard", "2spirals")


def test_scaled_sinkhorn_is_scale_free():
    a, b = toy("grid", 150, generator=1), toy("grid", 150, generator=2)
    s = data_scale("grid")
    assert 3.5 < s < 4.7  # nine modes at {-5, 0, 5}², std √.3: per-coordinate variance 50/3 + .3
    assert math.isclose(scaled_sinkhorn(a, b, s), scaled_sinkhorn(3 * a, 3 * b, 3 * s), rel_tol=1e-6)
    assert math.isnan(scaled_sinkhorn(torch.full((5, 2), float("nan")), b, s))


def test_tiny_run_writes_every_method(tmp_path):
    sizes = {"datasets": ("grid",), "seeds": (0,), "steps": 3, "sde_steps": 4, "n_train": 300, "n_sinkhorn": 80,
             "resolution": 30}
    res = run_diffebm_bench(tmp_path, sizes=sizes, progress=False)
    for name in ("diffebm.json", "diffebm.md", "diffebm.png"):
        assert (tmp_path / name).stat().st_size > 0
    def no_nan(token):
        raise AssertionError(f"diffebm.json is not standard JSON: {token}")

    data = json.loads((tmp_path / "diffebm.json").read_text(), parse_constant=no_nan)
    assert data["summary"]["grid"]["diffebm"]["sinkhorn"]["std"] is None  # one seed: no std, written as null
    assert {r["method"] for r in data["rows"]} == set(METHODS) | {LONG_METHOD}  # pcd_5x runs on grid
    assert all(math.isfinite(r["sinkhorn"]) and r["sinkhorn"] > 0 for r in data["rows"])
    assert data["verdict"]["grid"]["diffebm"] == res["summary"]["grid"]["diffebm"]["sinkhorn"]["mean"]
    text = (tmp_path / "diffebm.md").read_text()
    assert "| diffebm |" in text and "| pcd |" in text and "DiffEBM ≤ PCD" in text
    with pytest.raises(KeyError, match="unknown size 'nsteps'"):
        run_diffebm_bench(tmp_path, sizes={"nsteps": 1})


def test_full_flag_only_for_diffebm_and_sbi(tmp_path, capsys):
    assert main(["bench", "objectives", "--full", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--full applies to the diffebm and sbi suites" in err and "\n" not in err.strip()
    assert main(["bench", "diffebm", "--full", "--quick", "--out", str(tmp_path)]) == 2
    assert "with --quick" in capsys.readouterr().err
