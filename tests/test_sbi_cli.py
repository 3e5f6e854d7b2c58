"""``ebmlab sbi TASK``: the C2ST table, pair plots, JSON, and one-line errors."""
import json

import pytest

from ebmlab import ConfigError
from ebmlab.cli import main


def test_sbi_command_prints_the_table_and_writes_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EBMLAB_CACHE_DIR", str(tmp_path / "cache"))
    rc = main(["sbi", "two_moons", "--simulations", "300", "--steps", "20", "--observations", "1-2",
               "--n-samples", "200", "--out", str(tmp_path / "out")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| two_moons | 300 | NLE-ed |" in text and "AUNLE" in text
    assert len(list((tmp_path / "out").glob("*_obs*.png"))) == 2
    row = json.loads((tmp_path / "out" / "two_moons_nle_ed_300.json").read_text())
    assert len(row["c2st"]) == 2 and all(0.0 <= c <= 1.0 for c in row["c2st"])


def test_sbi_command_rejects_a_bad_task(capsys):
    assert main(["sbi", "moons"]) != 0
    assert "unknown task 'moons'" in capsys.readouterr().err


def test_bench_suite_writes_markdown_and_json_with_published_numbers(tmp_path, monkeypatch):
    import ebmlab.bench.sbi as bench
    from ebmlab.bench import SUITES

    assert SUITES["sbi"] == "ebmlab.bench.sbi:run_sbi_bench"
    calls = []

    def fake_case(task, n, *, estimator, objective, **kw):
        calls.append((task, n, estimator, objective))
        return {"task": task, "simulations": n, "estimator": estimator, "objective": objective, "c2st": [0.6, 0.7],
                "c2st_mean": 0.65, "c2st_std": 0.07, "train_s": 1.0, "sample_s": 2.0, "rhat_max": [1.01, 1.02],
                "published": {"NLE": 0.773, "AUNLE": 0.543}}

    monkeypatch.setattr(bench, "run_case", fake_case)
    monkeypatch.setattr(bench, "batched_vs_separate", lambda **kw: {"k": 10, "n_samples": 1000, "batched_s": 1.0,
                                                                    "separate_s": 4.0, "speedup_median": 4.0,
                                                                    "speedup_range": [3.5, 4.5], "repeats": 2})
    res = bench.run_sbi_bench(tmp_path, quick=True)
    assert calls == [("two_moons", 1000, "nle", "ed")]
    md = (tmp_path / "sbi.md").read_text()
    assert "| two_moons | 1000 | NLE-ed | 0.650 ± 0.070 | 0.773 / – / – / 0.543 |" in md and "4.00×" in md
    assert json.loads((tmp_path / "sbi.json").read_text())["batched"]["speedup_median"] == 4.0
    assert str(tmp_path / "sbi.md") in res["files"]
    # default: the headline rows, with their options (ensemble, ED t) passed through and shown in the table
    calls.clear()
    seen = []
    monkeypatch.setattr(bench, "run_case", lambda task, n, **kw: (seen.append(kw), fake_case(task, n, **kw))[1])
    bench.run_sbi_bench(tmp_path / "default")
    assert calls == [(t, n, e, o) for t, n, e, o, _ in bench.HEADLINE]
    assert [kw["ensemble_size"] for kw in seen] == [opts["ensemble_size"] for *_, opts in bench.HEADLINE]
    assert seen[1]["objective_params"] == {"t": 0.05, "m": 16}
    calls.clear()
    bench.run_sbi_bench(tmp_path / "full", full=True)
    assert len(calls) == len(bench.HEADLINE) + 6 * 3 * 7 and ("slcp", 100_000, "npe", "dsm") in calls
    with pytest.raises(ConfigError, match="--quick or --full, not both"):
        bench.run_sbi_bench(tmp_path, quick=True, full=True)
    row = fake_case("slcp", 10_000, estimator="nle", objective="ed")
    row.update(ensemble_size=3, objective_params={"t": 0.05, "m": 16})
    assert "| slcp | 10000 | NLE-ed (t = 0.05, m = 16), ensemble of 3 | 0.650 ± 0.070 |" in bench.format_table([row])
    row.update(hidden=[256, 256, 256])
    assert "| NLE-ed (t = 0.05, m = 16), hidden (256, 256, 256), ensemble of 3 |" in bench.format_table([row])


def test_sbi_command_methods_are_the_estimators_objectives_and_bad_ensemble_size_is_refused(capsys):
    from ebmlab.sbi.cli import METHODS
    from ebmlab.sbi.estimators import OBJECTIVES_SBI

    assert METHODS == OBJECTIVES_SBI
    assert main(["sbi", "two_moons", "--ensemble-size", "0"]) != 0
    assert "--ensemble-size must be >= 1, got 0" in capsys.readouterr().err
