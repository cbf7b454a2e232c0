"""The run's tables: right numbers, estimates labelled, best cells, seed-study layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from profiler.loadgen.capacity import Probe, SearchSpec, Slo, capacity_of
from profiler.loadgen.stopping import StageRules
from profiler.report import render_report
from profiler.report.aggregate import Cell, aggregate
from profiler.report.load import RunData, load_run
from profiler.report.tables import (
    Column,
    Entry,
    Table,
    capacity_table,
    energy_tables,
    latency_tables,
    mark_best,
    model_size,
    seed_table,
    time_tables,
)
from profiler.report.terminal import BEST_STYLE, lay_out, print_tables
from profiler.results import CapacityRecord, ResultRecord
from profiler.rundir import RunDirectory
from profiler.stats import percentile, samples_for

from . import make_record, stage_contention, write_run
from .conftest import DATA, quiet_console

CpuCells = tuple[RunData, list[Cell]]


@pytest.fixture(scope="module")
def cpu_cells() -> CpuCells:
    run = load_run(DATA / "cpu-demo")
    return run, aggregate(run.repeats)


def _rows(table: Table) -> list[dict[str, Entry]]:
    return [dict(zip([c.header for c in table.columns], row, strict=True)) for row in table.rows]


def test_latency_table_has_the_raw_samples_percentiles(cpu_cells: CpuCells) -> None:
    _run, cells = cpu_cells
    tables = latency_tables(cells)
    assert [t.title for t in tables] == [
        "Latency and throughput: closed loop, 1 user (generate, 32 new tokens)",
        "Latency and throughput: closed loop, 4 users (generate, 32 new tokens)",
    ]
    assert "repeats" not in [c.header for c in tables[0].columns]  # all one repeat: said in a note
    assert "One repeat per cell." in tables[0].notes
    records = RunDirectory(DATA / "cpu-demo").results.read()
    for record in records:
        table = tables[0 if record.load.concurrency == 1 else 1]
        (row,) = [
            r
            for r in _rows(table)
            if (r["model"].text, r["format"].text, r["tokens"].text)
            == (record.model, record.format, str(record.bucket))
        ]
        latencies = record.stage.latency_ms
        assert row["requests"].text.split()[0] == str(len(latencies))
        for q in (50, 90, 99):
            mark = "" if len(latencies) >= samples_for(q) else "*"  # too few for that percentile
            assert row[f"p{q} ms"].text == f"{percentile(latencies, q):.1f}{mark}"
            assert row[f"p{q} ms"].value == percentile(latencies, q)
        assert row["req/s"].value == record.stage.throughput_rps
        assert row["device"].text == "cpu"
        assert row["format"].text == record.engine == record.format
    failed = [r for t in tables for r in _rows(t) if r["failures"].text != "0"]
    assert [(r["model"].text, r["format"].text, r["tokens"].text, r["failures"].text) for r in failed] == [
        ("bigbird-pegasus-small", "torchscript", "4096", "2 (11%)")
    ]


def test_estimate_is_written_beside_every_energy_figure(cpu_cells: CpuCells) -> None:
    _, cells = cpu_cells
    for table in energy_tables(cells):
        for header in ("gross J/query", "net J/query", "avg power W"):
            entries = table.column(header)
            assert entries
            assert all(e.text.endswith("(estimate)") for e in entries), header
    seed = seed_table(cells, [])
    assert all(e.text.endswith("(estimate)") for e in seed.column("gross J/query"))


def test_energy_figures_are_the_records(cpu_cells: CpuCells) -> None:
    _, cells = cpu_cells
    record = RunDirectory(DATA / "cpu-demo").results.read()[0]
    table = energy_tables(cells)[0]
    row = next(
        r
        for r in _rows(table)
        if (r["model"].text, r["format"].text, r["tokens"].text)
        == (record.model, record.format, str(record.bucket))
    )
    stage = record.stage
    assert stage.window is not None
    measurement = stage.window.measurement
    assert row["gross J/query"].value == stage.gross_j_per_query
    assert row["net J/query"].value == stage.net_j_per_query
    assert row["avg power W"].value == pytest.approx(measurement.total_j / measurement.duration_s)
    assert row["gross J/query"].text == f"{stage.gross_j_per_query:.3g} (estimate)"
    assert row["peak RSS"].text.endswith("MiB")
    assert "GPU util" not in row  # nothing measured: the column is left out
    assert "GPU memory" not in row


def test_best_cell_per_column_within_each_input_length(cpu_cells: CpuCells) -> None:
    _, cells = cpu_cells
    table = latency_tables(cells)[0]
    for length in ("1024", "2048", "4096"):
        rows = [r for r in _rows(table) if r["tokens"].text == length]
        fastest = min(rows, key=lambda r: r["p50 ms"].value or 0.0)
        busiest = max(rows, key=lambda r: r["req/s"].value or 0.0)
        assert [r["p50 ms"].best for r in rows] == [r is fastest for r in rows]
        assert [r["req/s"].best for r in rows] == [r is busiest for r in rows]
        assert not any(r["failures"].best or r["tokens"].best for r in rows)
    energy = energy_tables(cells)[0]
    rows = [r for r in _rows(energy) if r["tokens"].text == "4096"]
    cheapest = min(rows, key=lambda r: r["gross J/query"].value or 0.0)
    assert [r["gross J/query"].best for r in rows] == [r is cheapest for r in rows]
    assert not any(r["avg power W"].best for r in rows)


def test_best_cell_rules_ties_lone_rows_and_direction() -> None:
    table = Table("t", [Column("x", "low"), Column("y", "high"), Column("z")])
    for values, group in (
        ((2.0, 5.0, 1.0), "a"),
        ((1.0, 5.0, 0.0), "a"),
        ((1.0, 3.0, 9.0), "a"),
        ((7.0, 1.0, 1.0), "b"),
    ):
        table.add_row([Entry(str(v), v) for v in values], group=group)
    table.add_row([Entry("-"), Entry("-"), Entry("-")], group="a")
    mark_best(table)
    assert [e.best for e in table.column("x")] == [False, True, True, False, False]
    assert [e.best for e in table.column("y")] == [True, True, False, False, False]
    assert not any(e.best for e in table.column("z"))


def test_best_cells_are_bold_green_in_the_terminal(cpu_cells: CpuCells) -> None:
    _, cells = cpu_cells
    table = latency_tables(cells)[0]
    (rich_table,) = lay_out(table, 200).parts
    (column,) = [c for c in rich_table.columns if c.header == "p50 ms"]
    cells_shown = list(column.cells)
    assert all(isinstance(c, Text) for c in cells_shown)
    styles = [c.style for c in cells_shown if isinstance(c, Text)]
    assert styles == [BEST_STYLE if e.best else "" for e in table.column("p50 ms")]


def test_seed_table_scores_beside_cost(cpu_cells: CpuCells) -> None:
    run, cells = cpu_cells
    table = seed_table(cells, run.accuracy)
    headers = [c.header for c in table.columns]
    assert headers == [
        "model", "size", "format", "tokens", "gov_report", "qasper", "p50 ms", "req/s", "gross J/query",
    ]  # fmt: skip
    rows = _rows(table)
    assert len(rows) == 12  # 2 models x 2 formats x 3 lengths, at the lightest load
    assert table.title == "Accuracy and cost (seed-study layout; cost at closed:1)"  # one load: said once
    led = next(
        r
        for r in rows
        if (r["model"].text, r["format"].text, r["tokens"].text) == ("led-small", "onnx", "4096")
    )
    assert (led["size"].text, led["gov_report"].text, led["qasper"].text) == (
        "small",
        "34.20",
        "27.30",
    )
    scripted = [r for r in rows if r["format"].text == "torchscript"]
    assert all(r["gov_report"].text == "-" for r in scripted)
    best = [r for r in rows if r["gov_report"].best]
    assert {(r["model"].text, r["tokens"].text) for r in best} == {
        ("led-small", "1024"),
        ("led-small", "2048"),
        ("led-small", "4096"),
    }


def test_seed_table_without_accuracy_says_how_to_get_it(cpu_cells: CpuCells) -> None:
    _, cells = cpu_cells
    table = seed_table(cells, [])
    assert "score" in [c.header for c in table.columns]
    assert all(e.text == "-" for e in table.column("score"))
    assert any("profiler eval" in note for note in table.notes)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("led-small", "small"),
        ("bigbird-pegasus-large", "large"),
        ("led_base_16384", "base"),
        ("my-model", "-"),
    ],
)
def test_model_size_from_name(name: str, size: str) -> None:
    assert model_size(name) == size


def test_unmeasured_energy_and_net_clamp(tmp_path: Path) -> None:
    records = [
        make_record(length=1024, source=None),
        make_record(length=2048, net_j=0.0, net_clamped=True),
        make_record(length=4096, source="rapl", idle_w=None, net_j=None),
    ]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    rows = _rows(energy_tables(cells)[0])
    assert [r["gross J/query"].text for r in rows] == ["-", "1 (estimate)", "1 (rapl)"]
    assert [r["net J/query"].text for r in rows] == ["-", "0 (estimate, clamped to 0)", "-"]


def test_engine_is_named_where_it_differs_from_the_format(tmp_path: Path) -> None:
    records = [make_record(fmt="checkpoint", engine="eager", device="cuda"), make_record(length=2048)]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    rows = _rows(latency_tables(cells)[0])
    assert [(r["format"].text, r["device"].text) for r in rows] == [
        ("checkpoint (eager)", "cuda"),
        ("onnx", "cpu"),
    ]


def _with_rules(record: ResultRecord, rules: StageRules, completed_s: list[float]) -> ResultRecord:
    return record.model_copy(
        update={"stage": record.stage.model_copy(update={"rules": rules, "completed_s": completed_s})}
    )


def test_cells_short_of_requests_or_unstable_are_marked_not_hidden(tmp_path: Path) -> None:
    rules = StageRules(stage_seconds=1, min_requests=5, window_requests=10, stability=0.1)
    steady, drifting = [100.0] * 30, [100.0 + 5 * i for i in range(30)]
    every_tenth_s = [0.1 * (i + 1) for i in range(30)]
    records = [
        _with_rules(make_record(length=1024, latency_ms=(90.0, 95.0, 99.0)), rules, [0.1, 0.2, 0.3]),
        _with_rules(make_record(length=2048, latency_ms=drifting), rules, every_tenth_s),
        _with_rules(make_record(length=3072, latency_ms=steady), rules, every_tenth_s),
        make_record(length=4096),  # written before stages had rules: nothing to judge
    ]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    (table,) = latency_tables(cells)
    rows = _rows(table)
    assert [r["requests"].text for r in rows] == ["3 few", "30 unstable", "30", "3"]
    assert [r["requests"].warn for r in rows] == [True, True, False, False]
    assert [r["p90 ms"].text.endswith("*") for r in rows] == [True, False, False, True]  # p90 needs 10
    assert all(r["p99 ms"].text.endswith("*") for r in rows)  # p99 needs 100
    assert any(note.startswith("* from fewer requests than the percentile needs") for note in table.notes)
    assert any(note.startswith("few: ") for note in table.notes)
    assert any(note.startswith("unstable: ") for note in table.notes)


def _probe(rate: float, latency: float, passed: bool) -> Probe:
    return Probe(
        stage=f"generate@1024:{rate:g}rps",
        offered_rps=rate,
        sent_rps=rate,
        throughput_rps=rate,
        latency_ms=latency,
        fail_ratio=0.0,
        good=int(rate * 10),
        goodput_rps=rate,
        window_j=20.0,
        j_per_good_query=20.0 / (rate * 10),
        energy_source="estimate",
        passed=passed,
        why=None if passed else "p99 too slow",
    )


def test_the_capacity_table_and_plot_come_from_the_searches(tmp_path: Path) -> None:
    slo, spec = Slo(latency_ms=500.0), SearchSpec()
    probes = [_probe(1.0, 100.0, True), _probe(2.0, 200.0, True), _probe(4.0, 900.0, False)]
    records = [
        CapacityRecord(
            run_id="test-run",
            cell=f"led-small|{fmt}|capacity|repeat 1|1024",
            model="led-small",
            checkpoint="/models/led-small",
            format=fmt,
            engine=fmt,
            device="cpu",
            mode="generate",
            max_new_tokens=32,
            repeat=1,
            capacity=capacity_of(1024, slo, spec, found),
            recorded_wall_s=1.7e9,
        )
        for fmt, found in (("onnx", probes), ("eager", probes[:2]))
    ]
    run_dir = write_run(tmp_path / "run", [make_record()])
    for record in records:
        RunDirectory(run_dir).capacity.append(record)
    data = load_run(run_dir)
    table = capacity_table(data.capacity)
    rows = _rows(table)
    assert [(r["format"].text, r["sustained req/s"].text, r["failed at req/s"].text) for r in rows] == [
        ("eager", ">= 2.000", "-"),  # never failed: a floor
        ("onnx", "2.000", "4.000"),
    ]
    assert rows[1]["J/good query"].text == "1 (estimate)"  # 20 J over the 20 good requests at 2 req/s
    assert rows[1]["SLO"].text == "p99 <= 500 ms"
    outputs = render_report(run_dir, None, quiet_console())
    assert run_dir / "latency_vs_offered_rate.png" in outputs.plots


def test_energy_per_token_and_per_good_query_name_their_source(tmp_path: Path) -> None:
    # 40 J over a window with 3 successful requests of 32 generated tokens each, and 1 failure.
    records = [make_record(length=1024, window_j=40.0, gross_j=10.0, failures=1)]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    (row,) = _rows(energy_tables(cells)[0])
    assert row["gross J/query"].text == "10 (estimate)"  # the window's figure: every answered query
    assert row["J/good query"].text == f"{40 / 3:.3g} (estimate)"  # the failure is paid for, not counted
    assert row["J/token"].text == f"{40 / 96:.3g} (estimate)"
    without_failures = aggregate(
        load_run(write_run(tmp_path / "quiet", [make_record(window_j=30.0, gross_j=10.0)])).repeats
    )
    headers = [c.header for c in energy_tables(without_failures)[0].columns]
    assert "J/good query" not in headers  # it would repeat gross J/query
    assert "J/token" in headers


def test_disturbed_cells_are_marked_with_what_disturbed_them(tmp_path: Path) -> None:
    records = [
        make_record(fmt="eager", length=1024, contention=stage_contention(3.04, 5.2)),
        make_record(fmt="onnx", length=1024, contention=stage_contention(0.2, 0.3)),
        make_record(fmt="onnx", length=2048),  # written before contention was measured
        make_record(fmt="eager", length=2048, repeat=1, contention=stage_contention(0.1, 0.3)),
        make_record(fmt="eager", length=2048, repeat=2, contention=stage_contention(1.6, 4.0)),
    ]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    (table,) = latency_tables(cells)
    marks = {(r["format"].text, r["tokens"].text): r["requests"] for r in _rows(table)}
    assert marks[("eager", "1024")].text == "3 disturbed"
    assert marks[("eager", "1024")].warn
    assert marks[("onnx", "1024")].text == "3"
    assert marks[("onnx", "2048")].text == "3"
    assert marks[("eager", "2048")].text == "6 disturbed"  # one disturbed repeat disturbs the cell
    assert any(note.startswith("disturbed: other processes") for note in table.notes)
    assert [note for note in table.notes if note.startswith("led-small")] == [
        "led-small eager 1024 closed:1: others used 38% of the CPUs (load 5.2)",
        "led-small eager 2048 closed:1: others used 20% of the CPUs (load 4.0)",
    ]
    # At 80 columns every note is printed whole (wrapped, no word cut off).
    console = quiet_console(width=80)
    print_tables(console, [table])
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    words = " ".join(text.split())
    for note in table.notes:
        assert note in words


def streamed(record: ResultRecord, ttft_ms: list[float], tpot_ms: list[float]) -> ResultRecord:
    stage = record.stage.model_copy(update={"ttft_ms": ttft_ms, "tpot_ms": tpot_ms})
    return record.model_copy(update={"stage": stage})


def _timed(record: ResultRecord, encode_ms: list[float]) -> ResultRecord:
    timings = {"queue_ms": [1.0] * len(encode_ms), "encode_ms": encode_ms}
    return record.model_copy(update={"stage": record.stage.model_copy(update={"server_timings_ms": timings})})


def test_the_time_table_splits_every_cell_and_adds_ttft_where_streamed(tmp_path: Path) -> None:
    records = [
        streamed(_timed(make_record(length=1024), [10.0, 20.0, 30.0]), [20.0, 30.0, 40.0], [2.0, 4.0]),
        streamed(_timed(make_record(length=1024, repeat=2), [40.0]), [50.0], []),
        make_record(length=2048),  # neither streamed nor split (an older record)
    ]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    (table,) = time_tables(cells)
    first, second = _rows(table)
    pooled = [20.0, 30.0, 40.0, 50.0]
    assert first["tokens"].text == "1024"
    assert first["TTFT p50 ms"].value == percentile(pooled, 50.0)
    assert first["TTFT p99 ms"].text.endswith("*")  # 4 samples do not carry a p99
    assert first["TPOT p50 ms"].value == 3.0
    assert first["p50 ms"].value == percentile([100.0, 110.0, 120.0] * 2, 50.0)
    assert first["server encode p50"].value == 25.0  # both repeats' requests pooled
    assert first["server queue p50"].value == 1.0
    assert first["server decode p50"].text == "-"  # not recorded
    assert (second["tokens"].text, second["TTFT p50 ms"].text, second["server encode p50"].text) == (
        "2048",
        "-",
        "-",
    )
    unstreamed = aggregate(
        load_run(write_run(tmp_path / "plain", [_timed(make_record(), [5.0] * 3)])).repeats
    )
    (plain,) = time_tables(unstreamed)
    headers = [column.header for column in plain.columns]
    assert "TTFT p50 ms" not in headers  # no level streamed: no empty client columns
    assert _rows(plain)[0]["server encode p50"].value == 5.0
