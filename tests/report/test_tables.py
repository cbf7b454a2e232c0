"""The run's tables: right numbers, estimates labelled, best cells, seed-study layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from profiler.report.aggregate import Cell, aggregate
from profiler.report.load import RunData, load_run
from profiler.report.tables import (
    Column,
    Entry,
    Table,
    energy_tables,
    latency_tables,
    mark_best,
    model_size,
    seed_table,
    streaming_tables,
)
from profiler.report.terminal import BEST_STYLE, to_rich
from profiler.results import ResultRecord
from profiler.rundir import RunDirectory
from profiler.stats import percentile

from . import make_record, write_run
from .conftest import DATA

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
        for q in (50, 90, 99):
            assert row[f"p{q} ms"].text == f"{percentile(latencies, q):.1f}"
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
    rich_table = to_rich(table)
    index = [c.header for c in table.columns].index("p50 ms")
    cells_shown = list(rich_table.columns[index].cells)
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


def streamed(record: ResultRecord, ttft_ms: list[float], tpot_ms: list[float]) -> ResultRecord:
    stage = record.stage.model_copy(update={"ttft_ms": ttft_ms, "tpot_ms": tpot_ms})
    return record.model_copy(update={"stage": stage})


def test_streamed_cells_get_a_time_to_first_token_table(tmp_path: Path) -> None:
    records = [
        streamed(make_record(length=1024), [20.0, 30.0, 40.0], [2.0, 4.0]),
        streamed(make_record(length=1024, repeat=2), [50.0], []),
        make_record(length=2048),
    ]
    cells = aggregate(load_run(write_run(tmp_path / "run", records)).repeats)
    (table,) = streaming_tables(cells)
    (row,) = _rows(table)  # the cell that was not streamed has no row
    pooled = [20.0, 30.0, 40.0, 50.0]
    assert row["tokens"].text == "1024"
    assert row["TTFT p50 ms"].value == percentile(pooled, 50.0)
    assert row["TTFT p99 ms"].value == percentile(pooled, 99.0)
    assert row["TPOT p50 ms"].value == 3.0
    assert row["p50 ms"].value == percentile([100.0, 110.0, 120.0] * 2, 50.0)
    unstreamed = aggregate(load_run(write_run(tmp_path / "plain", [make_record()])).repeats)
    assert streaming_tables(unstreamed) == []
