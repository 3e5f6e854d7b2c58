"""Smoke test of ``ebmlab bench diffusion-samplers`` on a tiny grid configuration."""
import json

import pytest

from ebmlab import ConfigError
from ebmlab.bench import diffusion_samplers as ds


def test_tiny_grid_run_writes_tables_at_equal_budget(tmp_path, monkeypatch):
    full = ds._targets(True)
    grid = [c for c in full if c["name"] == "grid"][0]
    grid["sampler"] = {"sde_steps": 8}
    grid["fit"] = {"steps": 3, "batch_size": 32, "lr": 3e-3}
    monkeypatch.setattr(ds, "_targets", lambda quick: [grid])
    monkeypatch.setattr(ds, "_sizes", lambda quick: (200, 50, 100, 1000))
    out = ds.run_diffusion_sampler_bench(tmp_path, quick=True)
    assert len(out["files"]) == 3 and all((tmp_path / f).exists() for f in
                                          ("diffusion_samplers.md", "diffusion_samplers.json", "diffusion_samplers.png"))
    res = json.loads((tmp_path / "diffusion_samplers.json").read_text())
    t = res["targets"][0]
    budget = t["budget"]
    assert budget == 3 * 32 * 9 + 200 * 9
    rows = t["rows"]
    assert set(rows) == set(ds.METHODS)
    for m in ("mala", "kinetic_langevin", "ais"):
        # equal budgets up to the rounding of steps / temperatures (and the chains' initial gradient)
        assert abs(rows[m]["energy_evals"] - budget) <= 0.1 * budget + 3 * 100, (m, rows[m]["energy_evals"], budget)
    for m in ds.METHODS:
        assert 0.0 <= rows[m]["max_mode_error"] <= 1.0 - 1.0 / 9 + 1e-9
        assert rows[m]["sinkhorn"] >= 0.0
    assert "log_z_error" in rows["diffusion"] and "log_z_error" in rows["ais"] and "log_z_error" not in rows["mala"]
    md = (tmp_path / "diffusion_samplers.md").read_text()
    assert "| diffusion |" in md and "| ais |" in md and "Sinkhorn" in md


def test_unknown_target_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope"):
        ds.run_diffusion_sampler_bench(tmp_path, quick=True, targets=["nope"])


def test_targets_flag_is_checked_and_only_for_diffusion_samplers(tmp_path, capsys):
    from ebmlab.cli import main

    assert main(["bench", "gebm", "--targets", "grid", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--targets applies to the diffusion-samplers suite only" in err and "\n" not in err.strip()
    assert main(["bench", "diffusion-samplers", "--targets", "grid,nope", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown diffusion-samplers target(s) ['nope']" in err and "funnel-10d" in err
    assert main(["bench", "diffusion-samplers", "--targets", " , ", "--out", str(tmp_path)]) == 2
    assert "--targets must name at least one target" in capsys.readouterr().err
