"""A new run against its baseline: the config diff, matching, ratios new / baseline,
confidence-interval verdicts."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from profiler.report.aggregate import Cell, aggregate
from profiler.report.compare import ONE_REPEAT, OUTSIDE, WITHIN, compare, compare_table, config_diff, verdict
from profiler.report.load import load_run
from profiler.results import ResultRecord
from profiler.stats import mean_ci, percentile

from . import make_record, write_run
from .conftest import Rendered


def _cells(directory: Path, records: list[ResultRecord]) -> list[Cell]:
    return aggregate(load_run(write_run(directory, records)).repeats)


def _run(directory: Path, p50s: list[float], device: str = "cpu", **kw: Any) -> list[Cell]:
    records = [
        make_record(repeat=i + 1, latency_ms=[p - 1.0, p, p + 1.0], device=device, **kw)
        for i, p in enumerate(p50s)
    ]
    return _cells(directory, records)


def test_verdict_rules() -> None:
    apart, a, b = verdict([100.0, 101.0, 99.0], [150.0, 151.0, 149.0])
    assert apart == OUTSIDE
    assert a == mean_ci([100.0, 101.0, 99.0])
    assert b == mean_ci([150.0, 151.0, 149.0])
    assert verdict([100.0, 130.0], [110.0, 140.0])[0] == WITHIN
    assert verdict([100.0], [150.0, 151.0]) == (ONE_REPEAT, None, mean_ci([150.0, 151.0]))
    assert verdict([100.0, 101.0], [150.0])[0] == ONE_REPEAT


def test_ratios_and_verdicts_per_cell(tmp_path: Path) -> None:
    new = _run(tmp_path / "a", [150.0, 152.0, 148.0], throughput_rps=8.0, gross_j=3.0)
    baseline = _run(tmp_path / "b", [100.0, 102.0, 98.0], throughput_rps=10.0, gross_j=2.0)
    result = compare("a", new, "b", baseline)
    assert (result.new_run, result.baseline_run) == ("a", "b")
    (pair,) = result.matched
    p50 = pair.metrics["p50_ms"]
    pooled_new = [x for p in (150.0, 152.0, 148.0) for x in (p - 1, p, p + 1)]
    pooled_baseline = [x for p in (100.0, 102.0, 98.0) for x in (p - 1, p, p + 1)]
    assert p50.new == percentile(pooled_new, 50)
    assert p50.baseline == percentile(pooled_baseline, 50)
    assert p50.ratio == percentile(pooled_new, 50) / percentile(pooled_baseline, 50)
    assert p50.verdict == OUTSIDE
    assert p50.baseline_ci == mean_ci([100.0, 102.0, 98.0])
    assert pair.metrics["throughput_rps"].ratio == 0.8
    assert pair.metrics["gross_j_per_query"].ratio == 1.5
    # Throughput and J/query were identical across repeats: zero-width intervals, clearly apart.
    assert pair.metrics["gross_j_per_query"].verdict == OUTSIDE

    table = compare_table(result)
    assert table.title == "Compare: a (new) vs b (baseline); ratio = new / baseline"
    row = table.rows[0]
    texts = [e.text for e in row]
    assert [c.header for c in table.columns][4:6] == ["p50 ms baseline", "p50 ms new"]
    assert texts[4:6] == [f"{p50.baseline:.1f}", f"{p50.new:.1f}"]
    assert p50.ratio > 1  # the new run is slower: above 1
    assert texts[6:9] == [f"{p50.ratio:.2f}x", OUTSIDE, "0.80x"]
    assert texts[9:11] == ["1.50x (estimate)", OUTSIDE]
    assert row[8].warn  # throughput outside CI: its ratio is flagged


def test_overlapping_repeats_are_within_ci(tmp_path: Path) -> None:
    new = _run(tmp_path / "a", [100.0, 120.0])
    baseline = _run(tmp_path / "b", [110.0, 125.0])
    (pair,) = compare("a", new, "b", baseline).matched
    assert pair.metrics["p50_ms"].verdict == WITHIN


def test_single_repeat_says_so(tmp_path: Path) -> None:
    new = _run(tmp_path / "a", [100.0])
    baseline = _run(tmp_path / "b", [150.0, 151.0])
    (pair,) = compare("a", new, "b", baseline).matched
    assert pair.metrics["p50_ms"].verdict == "n/a (1 repeat)"
    assert pair.metrics["p50_ms"].ratio is not None


def test_cpu_run_matches_gpu_run_and_unmatched_cells_are_listed(tmp_path: Path) -> None:
    new = _cells(tmp_path / "a", [make_record(length=n) for n in (1024, 2048)])
    baseline = _cells(
        tmp_path / "b", [make_record(length=n, device="cuda", source="nvml-counter") for n in (2048, 4096)]
    )
    result = compare("a", new, "b", baseline)
    assert [p.key.length for p in result.matched] == [2048]
    assert [c.key.length for c in result.only_new] == [1024]
    assert [c.key.length for c in result.only_baseline] == [4096]
    table = compare_table(result)
    assert table.rows[0][9].text == "1.00x (estimate)"
    notes = " ".join(table.notes)
    assert "J/query sources differ: estimate (new) vs nvml-counter (baseline)" in notes
    assert "onnx/cpu (new) vs onnx/cuda (baseline)" in notes
    assert "Only in the new run (1 cells): led-small onnx onnx/cpu: 1024@closed:1" in notes
    assert "Only in the baseline run (1 cells): led-small onnx onnx/cuda: 4096@closed:1" in notes


def test_compare_files_of_the_recorded_runs(cpu_report: Rendered) -> None:
    assert cpu_report.outputs.compare_csv is not None
    assert cpu_report.outputs.compare_md is not None
    with cpu_report.outputs.compare_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # gpu-h100 has led-small x {onnx, torchscript} x {1024, 2048} at 4 users, as cpu-demo does.
    assert [(r["format"], r["input_length"], r["load"]) for r in rows] == [
        ("onnx", "1024", "closed:4"),
        ("onnx", "2048", "closed:4"),
        ("torchscript", "1024", "closed:4"),
        ("torchscript", "2048", "closed:4"),
    ]
    for row in rows:
        assert row["engine_new"].endswith("/cpu")
        assert row["engine_baseline"].endswith("/cuda")
        assert float(row["p50_ms_ratio"]) == float(row["p50_ms_new"]) / float(row["p50_ms_baseline"])
        assert row["p50_ms_verdict"] == "n/a (1 repeat)"  # cpu-demo has one repeat
        assert row["p50_ms_ci_new_low"] == ""
        assert row["p50_ms_ci_baseline_low"] != ""
    text = cpu_report.outputs.compare_md.read_text()
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    ratios = [
        [c.strip() for c in line.strip("|").split("|")][header.index("J/query ratio")] for line in lines[2:]
    ]
    assert len(ratios) == 4
    assert all(ratio.endswith("x (estimate)") for ratio in ratios)  # cpu-demo's joules are estimated
    assert "J/query sources differ: estimate (new) vs nvml-counter (baseline)" in text
    assert "Only in the new run (20 cells)" in text
    # The config diff comes first: baseline's lines the new run lacks as -, the new run's own as +.
    data = Path(__file__).parent / "data"
    baseline = (data / "gpu-h100" / "config.toml").read_text(encoding="utf-8").splitlines()
    new = (data / "cpu-demo" / "config.toml").read_text(encoding="utf-8").splitlines()
    diff = text.split("## Config changes, baseline -> new\n\n```diff\n", 1)[1].split("```", 1)[0]
    assert text.index("```diff") < text.index("| model")
    assert diff.startswith("--- gpu-h100/config.toml (baseline)\n+++ cpu-demo/config.toml (new)\n")
    changed = diff.splitlines()[2:]
    removed = {line[1:] for line in changed if line.startswith("-")}
    added = {line[1:] for line in changed if line.startswith("+")}
    assert set(baseline) - set(new) <= removed <= set(baseline)
    assert set(new) - set(baseline) <= added <= set(new)
    assert '+run_id = "cpu-demo"' in changed
    terminal = cpu_report.text
    assert terminal.index("Config changes, baseline -> new") < terminal.index("Compare: cpu-demo (new)")
    assert '-run_id = "gpu-h100"' in terminal
    assert "p50 verdict" in terminal


def test_config_diff_says_when_there_is_nothing_to_diff() -> None:
    assert config_diff("config.toml", "b", "x = 1\n", "a", "x = 1\n") == [
        "config.toml: the same in both runs"
    ]
    assert config_diff("config.toml", "b", None, "a", "x = 1\n") == [
        "no config.toml recorded for b: the configs cannot be compared"
    ]
    assert config_diff("config.toml", "b", "x = 1\ny = 2\n", "a", "x = 3\ny = 2\n") == [
        "--- b/config.toml (baseline)",
        "+++ a/config.toml (new)",
        "@@ -1,2 +1,2 @@",
        "-x = 1",
        "+x = 3",
        " y = 2",
    ]
