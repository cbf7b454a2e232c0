"""A net J/query that the energy code clamped to zero is flagged in the report.

The window is built by the real code on every side: the meter's Measurement, the server's
per-query arithmetic, the load generator's stage writer and the report's reader. Before the
window became one typed document, the writer said ``clamped`` and the reader looked for
``net_clamped``, so a clamped figure was shown as a plain 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from profiler.energy.baseline import IdleBaseline, per_query_energy
from profiler.energy.meter import Measurement
from profiler.energy.windows import WindowResult
from profiler.loadgen.results import StageRun, stage_result
from profiler.loadgen.stopping import StageRules
from profiler.report import render_report
from profiler.report.load import to_repeat
from profiler.results import ResultRecord, parse_result

from . import make_record, write_run
from .conftest import quiet_console


def _clamped_window() -> WindowResult:
    measurement = Measurement(
        name="generate@1024",
        source="estimate",
        duration_s=4.0,
        energy_j={"cpu": 10.0},  # 2.5 W loaded ...
        start_monotonic_s=100.0,
        end_monotonic_s=104.0,
        start_wall_s=1.7e9,
    )
    idle = IdleBaseline(source="estimate", duration_s=3.0, power_w={"cpu": 5.0})  # ... 5 W idle
    per_query = per_query_energy(measurement, 4, idle)
    assert per_query.clamped
    assert per_query.net_j == 0.0
    return WindowResult(measurement=measurement, completed=4, per_query=per_query, idle=idle)


def _record_with(window: WindowResult) -> ResultRecord:
    run = StageRun(0, "generate@1024", 1024, duration_s=4.0, window=window)
    stage = stage_result(run, [], None, StageRules())
    return make_record(length=1024).model_copy(update={"stage": stage})


def test_the_reader_sees_the_clamp_the_server_wrote() -> None:
    line = _record_with(_clamped_window()).model_dump_json()  # as results.jsonl holds it
    repeat = to_repeat(parse_result(json.loads(line)), line=1)
    assert repeat.net_clamped
    assert repeat.net_j_per_query == 0.0


def test_the_report_labels_a_clamped_net_figure(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [_record_with(_clamped_window())])
    console = quiet_console()
    outputs = render_report(run_dir, None, console)
    assert "| 0 (estimate, clamped to 0) |" in outputs.report_md.read_text()
    # The terminal names the source once in the header, the clamp beside the figure.
    energy = console.export_text().split("Energy and resources")[1]
    header, figures = energy.splitlines()[1], energy.splitlines()[3]
    assert "net J/query (estimate)" in header
    assert "0 (clamped to 0)" in figures
