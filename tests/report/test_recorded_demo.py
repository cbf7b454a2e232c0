"""The report on records a real `profiler demo` wrote (led-small, eager and ONNX, 1024 and 4096
tokens, 1 and 4 users, energy from the estimate): not generated data, measured data."""

from __future__ import annotations

import csv
from pathlib import Path

from profiler.report import render_report
from profiler.rundir import RunDirectory
from profiler.stats import percentile

from .conftest import copy_run, quiet_console


def test_a_recorded_demo_run_renders(tmp_path: Path) -> None:
    run_dir = copy_run("demo-real", tmp_path)
    records = RunDirectory(run_dir).results.read()
    console = quiet_console()
    outputs = render_report(run_dir, None, console)
    text = console.export_text()
    for path in outputs.files:
        assert path.stat().st_size > 0, path
    for plot in outputs.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    assert len(rows) == len(records) == 8
    assert "(estimate)" in text
    onnx_4096 = next(
        r for r in records if r.format == "onnx" and r.bucket == 4096 and r.load.concurrency == 1
    )
    assert f"{percentile(onnx_4096.stage.latency_ms, 50):.1f}" in text
    assert "slope" in text.lower()
