"""``render_report``: read a run directory, print its tables, write report.md, summary.csv and plots.

The one entry point the CLI calls (``profiler report RUN_DIR [--compare OTHER_RUN_DIR]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from profiler.report.aggregate import Cell, aggregate, scaling
from profiler.report.compare import compare as compare_runs
from profiler.report.compare import compare_table
from profiler.report.load import ReportError, load_run
from profiler.report.plots import write_plots
from profiler.report.tables import (
    Table,
    capacity_table,
    energy_tables,
    environment_table,
    failure_notes,
    latency_tables,
    scaling_table,
    seed_table,
    streaming_tables,
)
from profiler.report.terminal import print_tables, print_written
from profiler.report.writers import compare_csv, compare_markdown, report_markdown, summary_csv
from profiler.results import AccuracyRecord, CapacityRecord
from profiler.rundir import RunDirectory


@dataclass(frozen=True)
class ReportOutputs:
    """The files a report wrote, all inside the run directory."""

    report_md: Path
    summary_csv: Path
    plots: tuple[Path, ...]
    compare_md: Path | None = None
    compare_csv: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every file written, in the order written."""
        extra = [p for p in (self.compare_md, self.compare_csv) if p is not None]
        return [self.report_md, self.summary_csv, *self.plots, *extra]


def _write(path: Path, text: str) -> Path:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write {path}: {exc}; make the run directory writable or copy it somewhere you can write."
        ) from exc
    return path


def _sections(
    cells: list[Cell], scores: list[AccuracyRecord], capacity: list[CapacityRecord]
) -> list[tuple[str, list[Table]]]:
    """The report's sections in order, each a heading and its tables (time to first token only
    where some cell was streamed)."""
    sections = []
    if cells:
        streamed = streaming_tables(cells)
        sections += [
            ("Latency and throughput", latency_tables(cells)),
            *([("Time to first token", streamed)] if streamed else []),
            ("Energy and resources", energy_tables(cells)),
            ("Scaling with input length", [scaling_table(scaling(cells))]),
            ("Accuracy and cost", [seed_table(cells, scores)]),
        ]
    if capacity:
        sections.append(("Capacity under an SLO", [capacity_table(capacity)]))
    return sections


def render_report(run_dir: Path, compare: Path | None, console: Console) -> ReportOutputs:
    """Print a run's tables and write ``report.md``, ``summary.csv`` and the plots into ``run_dir``.

    With ``compare``, the same cells of the other run are set beside this run's (ratios other /
    this, with confidence-interval verdicts) and ``compare.md`` and ``compare.csv`` are written too,
    into ``run_dir``.

    Args:
        run_dir: a run directory written by ``profiler sweep`` (``reports/<run-id>/``).
        compare: another run directory, or None.
        console: where the tables are printed.

    Raises:
        ReportError: a directory is missing, holds no complete records or a malformed one, or the
            report cannot be written; the message says what to do.
    """
    data = load_run(run_dir)
    other = load_run(compare, role="comparison run") if compare is not None else None
    cells = aggregate(data.repeats)
    sections = _sections(cells, data.accuracy, data.capacity)
    failures = failure_notes(cells)
    environment = environment_table(data.environment, data.run_id)

    print_tables(console, [environment], show_header=False)
    for _, tables in sections:
        print_tables(console, tables)
    for line in failures:
        console.print(Text.assemble(("failures: ", "yellow"), line), soft_wrap=False)
    for note in data.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=False)

    try:
        plots = write_plots(cells, data.repeats, data.accuracy, data.capacity, run_dir)
    except OSError as exc:
        raise ReportError(
            f"cannot write plots into {run_dir}: {exc}; make the run directory writable or copy it "
            "somewhere you can write."
        ) from exc
    files = RunDirectory(run_dir)
    report = _write(
        files.report_md,
        report_markdown(
            data.run_id, run_dir, environment, data.config_text, sections, failures, plots, data.notes
        ),
    )
    summary = _write(files.summary_csv, summary_csv(cells))
    outputs = ReportOutputs(report, summary, tuple(path for _, path in plots))

    if other is not None:
        comparison = compare_runs(data.run_id, cells, other.run_id, aggregate(other.repeats))
        table = compare_table(comparison)
        print_tables(console, [table])
        outputs = ReportOutputs(
            report,
            summary,
            outputs.plots,
            _write(files.compare_md, compare_markdown(comparison, table)),
            _write(files.compare_csv, compare_csv(comparison)),
        )
    print_written(console, run_dir, outputs.files)
    return outputs
