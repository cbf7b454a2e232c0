"""The terminal report at 80 and 120 columns: no line wider than the terminal, no figure, header
word or note broken, and the width used where there is room.

Reports are rendered as the CLI renders them (its console leaves long lines to the terminal,
which would wrap them anywhere), from the recorded runs and from a run with every table the
report can print (time to first token, capacity, failures, disturbed cells).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from profiler.loadgen.capacity import Probe, SearchSpec, Slo, capacity_of
from profiler.report import render_report
from profiler.report.aggregate import aggregate, scaling
from profiler.report.compare import compare, compare_table
from profiler.report.load import load_run
from profiler.report.tables import (
    Column,
    Entry,
    Table,
    capacity_table,
    energy_tables,
    environment_table,
    latency_tables,
    scaling_table,
    seed_table,
    time_tables,
)
from profiler.report.terminal import lay_out, print_tables
from profiler.results import CapacityRecord, ResultRecord
from profiler.rundir import RunDirectory

from . import make_record, stage_contention, write_run
from .conftest import copy_run

WIDTHS = (80, 120)


def cli_console(width: int) -> Console:
    """A console like the CLI's (``soft_wrap=True``: rich leaves long lines to the terminal)."""
    return Console(file=io.StringIO(), record=True, width=width, color_system=None, soft_wrap=True)


@dataclass(frozen=True)
class Printed:
    """What ``profiler report`` printed at one width, and the tables it printed."""

    width: int
    run_dir: Path
    text: str
    tables: list[Table]
    files: list[Path]


def _tables(run_dir: Path, other: Path | None) -> list[Table]:
    """Every table the report prints for the run, built from the run directory as the report is."""
    data = load_run(run_dir)
    cells = aggregate(data.repeats)
    tables = [environment_table(data.environment, data.run_id)]
    tables += latency_tables(cells) + time_tables(cells) + energy_tables(cells)
    tables += [scaling_table(scaling(cells)), seed_table(cells, data.accuracy)]
    if data.capacity:
        tables.append(capacity_table(data.capacity))
    if other is not None:
        theirs = load_run(other)
        tables.append(compare_table(compare(data.run_id, cells, theirs.run_id, aggregate(theirs.repeats))))
    return tables


def _print(run_dir: Path, other: Path | None, width: int) -> Printed:
    console = cli_console(width)
    outputs = render_report(run_dir, other, console)
    return Printed(width, run_dir, console.export_text(), _tables(run_dir, other), outputs.files)


def _intact(token: str, text: str) -> bool:
    """``token`` printed whole on one line, with whitespace or the line's end on both sides."""
    return re.search(rf"(?<!\S){re.escape(token)}(?!\S)", text) is not None


def _streamed(record: ResultRecord) -> ResultRecord:
    stage = record.stage.model_copy(update={"ttft_ms": [20.0, 31.5, 47.25], "tpot_ms": [2.5, 4.0]})
    return record.model_copy(update={"stage": stage})


def _capacity(fmt: str, passed_up_to: float) -> CapacityRecord:
    probes = [
        Probe(
            stage=f"generate@4096:{rate:g}rps",
            offered_rps=rate,
            sent_rps=rate,
            throughput_rps=rate * 0.97,
            latency_ms=80.0 * rate,
            fail_ratio=0.0,
            good=int(rate * 9.5),
            goodput_rps=rate * 0.95,
            window_j=21.0,
            j_per_good_query=21.0 / (rate * 9.5),
            energy_source="estimate",
            passed=rate <= passed_up_to,
            why=None if rate <= passed_up_to else "p99 too slow",
        )
        for rate in (1.0, 2.0, 4.0)
    ]
    return CapacityRecord(
        run_id="test-run",
        cell=f"bigbird-pegasus-small|{fmt}|capacity|repeat 1|4096",
        model="bigbird-pegasus-small",
        checkpoint="/models/bigbird-pegasus-small",
        format=fmt,
        engine=fmt,
        device="cpu",
        mode="generate",
        max_new_tokens=32,
        repeat=1,
        capacity=capacity_of(4096, Slo(latency_ms=500.0), SearchSpec(), probes),
        recorded_wall_s=1.7e9,
    )


@pytest.fixture(scope="module")
def every_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with streamed cells, failures, a disturbed cell, two repeats and capacity searches."""
    records = [
        _streamed(make_record("bigbird-pegasus-small", fmt, length, repeat=repeat, failures=failures))
        for fmt, failures in (("torchscript", 2), ("onnx", 0))
        for length in (1024, 4096)
        for repeat in (1, 2)
    ]
    records.append(
        make_record("led-small", "eager", 4096, contention=stage_contention(3.0, 4.0), source="rapl")
    )
    run_dir = write_run(tmp_path_factory.mktemp("every") / "every-table", records)
    for fmt, up_to in (("onnx", 2.0), ("torchscript", 4.0)):
        RunDirectory(run_dir).capacity.append(_capacity(fmt, up_to))
    return run_dir


@pytest.fixture(scope="module", params=WIDTHS)
def printed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, every_table: Path
) -> list[Printed]:
    """cpu-demo compared with gpu-h100, gpu-h100, demo-real and the every-table run at one width."""
    width: int = request.param
    root = tmp_path_factory.mktemp(f"w{width}")
    cpu, gpu, real = (copy_run(name, root) for name in ("cpu-demo", "gpu-h100", "demo-real"))
    return [
        _print(cpu, gpu, width),
        _print(gpu, None, width),
        _print(real, None, width),
        _print(every_table, None, width),
    ]


def test_no_line_is_wider_than_the_terminal(printed: list[Printed]) -> None:
    for report in printed:
        lines = report.text.splitlines()
        # The run directory is printed once, on its own line, never folded: the one line that may
        # be as long as the path is.
        directory = f"wrote into {report.run_dir}:"
        assert directory in lines
        wide = [line for line in lines if cell_len(line.rstrip()) > report.width and line != directory]
        assert wide == [], report.run_dir.name


def _shared(column: Column, entries: tuple[Entry, ...], flowing: str) -> bool:
    """Whether the column's one text was printed once in the title, as ``header: text``."""
    return len({e.text for e in entries}) == 1 and f"{column.header}: {entries[0].text}" in flowing


def test_every_figure_is_printed_whole(printed: list[Printed]) -> None:
    for report in printed:
        flowing = " ".join(report.text.split())
        for table in report.tables:
            for column, entries in zip(table.columns, zip(*table.rows, strict=True), strict=True):
                if column.wrap or _shared(column, entries, flowing):
                    continue  # prose wraps between words (below); a shared text is in the title
                for entry in entries:
                    whole = _intact(entry.text, report.text)
                    # or the figure alone, its label (the energy source) printed once in the header
                    labelled = entry.label is not None and _intact(entry.figure, report.text)
                    assert whole or (labelled and _intact(f"({entry.label})", report.text)), (
                        report.width,
                        table.title,
                        column.header,
                        entry.text,
                    )


def test_headers_titles_notes_and_prose_wrap_only_between_words(printed: list[Printed]) -> None:
    for report in printed:
        flowing = " ".join(report.text.split())
        for table in report.tables:
            assert table.title in flowing
            for note in table.notes:
                assert note in flowing, (report.width, note)
            for column, entries in zip(table.columns, zip(*table.rows, strict=True), strict=True):
                if not _shared(column, entries, flowing):
                    for word in column.header.split():
                        assert _intact(word, report.text), (report.width, table.title, word)
                for entry in entries if column.wrap else ():
                    assert all(_intact(word, report.text) for word in entry.text.split()), entry.text


def test_every_written_file_is_named_whole(printed: list[Printed]) -> None:
    for report in printed:
        for path in report.files:
            assert _intact(path.name, report.text), path


def test_a_source_shared_by_a_column_is_named_once_in_its_header(printed: list[Printed]) -> None:
    for report in printed:
        energy = [t for t in report.tables if t.title.startswith("Energy and resources")]
        for table in energy:
            parts = lay_out(table, report.width).parts
            headers = {str(c.header): [str(cell) for cell in c.cells] for p in parts for c in p.columns}
            gross = table.column("gross J/query")
            sources = {e.label for e in gross}
            if len(sources) == 1:  # one source: in the header, the bare figures below it
                assert headers[f"gross J/query ({sources.pop()})"] == [e.figure for e in gross]
            else:  # mixed sources (RAPL beside an estimate): each figure keeps its own
                assert headers["gross J/query"] == [e.text for e in gross]
                assert any(e.label == "rapl" for e in gross)


def _parts(report: Printed) -> list[int]:
    return [len(lay_out(table, report.width).parts) for table in report.tables]


def test_the_width_is_used_where_there_is_room(printed: list[Printed]) -> None:
    # At 120 columns every table of the recorded runs is one table; at 80 the widest are stacked,
    # and the rule under each stacked part's header is printed once per part.
    for report in printed:
        rules = [line for line in report.text.splitlines() if line.startswith("───")]
        assert len(rules) == sum(_parts(report)) - 1  # the environment table has no header
        if report.width >= 120 and report.run_dir.name != "every-table":
            assert set(_parts(report)) == {1}, report.run_dir.name
    if printed[0].width == 80:
        assert max(_parts(printed[0])) > 1


def test_a_stacked_table_repeats_its_key_columns_and_keeps_the_column_order() -> None:
    table = Table("t", [Column("model", numeric=False, key=True), *(Column(f"f{i}") for i in range(6))])
    for model in ("bigbird-pegasus-small", "led-small"):
        table.add_row([Entry(model), *(Entry(f"{i * 1111.5:,.1f}") for i in range(6))])
    console = cli_console(60)
    print_tables(console, [table])
    lines = console.export_text().splitlines()
    headers = [line.split() for line in lines if line.startswith("model")]
    assert len(headers) == len(lay_out(table, 60).parts) > 1
    assert [word for header in headers for word in header[1:]] == [f"f{i}" for i in range(6)]
    assert max(cell_len(line) for line in lines) <= 60
    assert sum(line.startswith("bigbird-pegasus-small ") for line in lines) == len(headers)
