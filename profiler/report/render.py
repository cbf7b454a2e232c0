"""The report's one entry point: read a run directory or a load test's results file, build every
table once, then print them, write report.md, report.html, summary.csv and plots, or give the
whole report as one typed document (``--json``).

``profiler report SOURCE [--compare OTHER] [--json]`` calls :func:`render_report` or
:func:`report_document`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.text import Text

from profiler.report.aggregate import Cell, aggregate, scaling
from profiler.report.compare import Comparison, compare_table, config_diff
from profiler.report.compare import compare as compare_runs
from profiler.report.document import CellFigures, ReportDocument, TableDocument, sections_document
from profiler.report.html import report_html
from profiler.report.load import ReportError, RunData, load_run
from profiler.report.loadtest import load_results_file
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
    time_tables,
)
from profiler.report.terminal import print_tables, print_written
from profiler.report.writers import compare_csv, compare_markdown, report_markdown, summary_csv
from profiler.results import AccuracyRecord, CapacityRecord
from profiler.rundir import RunDirectory


@dataclass(frozen=True)
class ReportOutputs:
    """The files a report wrote, all inside the run directory (or the folder beside a results file)."""

    report_md: Path
    report_html: Path
    summary_csv: Path
    plots: tuple[Path, ...]
    compare_md: Path | None = None
    compare_csv: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every file written, in the order written."""
        extra = [p for p in (self.compare_md, self.compare_csv) if p is not None]
        return [self.report_md, self.report_html, self.summary_csv, *self.plots, *extra]


def load_source(path: Path, role: str = "run") -> RunData:
    """A sweep's run directory, or one results file written by ``locust -f loadtests/scrolls.py``."""
    return load_results_file(path, role) if path.is_file() else load_run(path, role)


def _sections(
    cells: list[Cell], scores: list[AccuracyRecord], capacity: list[CapacityRecord]
) -> list[tuple[str, list[Table]]]:
    """The report's sections in order, each a heading and its tables (time to first token only
    where some cell was streamed)."""
    sections = []
    if cells:
        sections += [
            ("Latency and throughput", latency_tables(cells)),
            ("Where the time goes", time_tables(cells)),
            ("Energy and resources", energy_tables(cells)),
            ("Scaling with input length", [scaling_table(scaling(cells))]),
            ("Accuracy and cost", [seed_table(cells, scores)]),
        ]
    if capacity:
        sections.append(("Capacity under an SLO", [capacity_table(capacity)]))
    return sections


@dataclass(frozen=True)
class Report:
    """One run's report, built once for every view (terminal, Markdown, HTML, JSON).

    Attributes:
        energy_sources: every source behind the energy figures, sorted (``estimate``: modelled).
        comparison / comparison_table: with ``--compare``, the other run's cells set beside these.
    """

    data: RunData
    cells: list[Cell]
    environment: Table
    sections: list[tuple[str, list[Table]]]
    failures: list[str]
    energy_sources: list[str]
    comparison: Comparison | None = None
    comparison_table: Table | None = None

    def document(self) -> ReportDocument:
        """The report for programs (``profiler report --json``)."""
        data = self.data
        return ReportDocument(
            run_id=data.run_id,
            source=str(data.read_from),
            kind=data.kind,
            environment=data.environment,
            config=data.config_text,
            energy_sources=self.energy_sources,
            cells=[CellFigures.of(cell) for cell in self.cells],
            sections=sections_document(self.sections),
            failures=self.failures,
            notes=data.notes,
            compare=TableDocument.of(self.comparison_table) if self.comparison_table else None,
            compare_config_diff=self.comparison.config_diff if self.comparison else None,
        )


def build_report(source: Path, compare: Path | None) -> Report:
    """Read ``source`` (and ``compare``) and build every table.

    Raises:
        ReportError: a source is missing, is neither a run directory nor a results file, or holds
            no complete record or a malformed one; the message says what to do.
    """
    data = load_source(source)
    other = load_source(compare, role="comparison run") if compare is not None else None
    cells = aggregate(data.repeats)
    found = {s for c in cells if c.energy_source for s in c.energy_source.split("/")}
    found |= {r.capacity.energy_source for r in data.capacity if r.capacity.energy_source}
    report = Report(
        data=data,
        cells=cells,
        environment=environment_table(data.environment, data.run_id),
        sections=_sections(cells, data.accuracy, data.capacity),
        failures=failure_notes(cells),
        energy_sources=sorted(found),
    )
    if other is None:
        return report
    comparison = compare_runs(data.run_id, cells, other.run_id, aggregate(other.repeats))
    comparison = replace(
        comparison,
        config_diff=config_diff(
            data.config_name, other.run_id, other.config_text, data.run_id, data.config_text
        ),
    )
    return replace(report, comparison=comparison, comparison_table=compare_table(comparison))


def report_document(source: Path, compare: Path | None) -> ReportDocument:
    """The whole report as one typed document; nothing is printed or written."""
    return build_report(source, compare).document()


def _write(path: Path, text: str) -> Path:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write {path}: {exc}; make the run directory writable or copy it somewhere you can write."
        ) from exc
    return path


def _print(console: Console, report: Report) -> None:
    print_tables(console, [report.environment], show_header=False)
    for _, tables in report.sections:
        print_tables(console, tables)
    for line in report.failures:
        console.print(Text.assemble(("failures: ", "yellow"), line), soft_wrap=False)
    for note in report.data.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=False)
    if report.comparison is not None and report.comparison_table is not None:
        console.print(Text("Config changes, baseline -> new", style="bold"))
        for line in report.comparison.config_diff:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            console.print(Text(line, style=style), soft_wrap=False)
        print_tables(console, [report.comparison_table])


def render_report(source: Path, compare: Path | None, console: Console) -> ReportOutputs:
    """Print a run's tables and write ``report.md``, ``report.html``, ``summary.csv`` and the plots.

    A run directory's report goes into it; a results file's into a folder beside it
    (``reports/loadtest-X.json`` -> ``reports/loadtest-X-report/``). With ``compare``, the
    baseline, its cells are set beside this (the new) run's, ratios new / baseline with
    confidence-interval verdicts, under the diff of the two runs' configs; ``compare.md`` and
    ``compare.csv`` are written too.

    Args:
        source: a run directory written by ``profiler sweep`` (``reports/<run-id>/``), or a
            results file written by ``locust -f loadtests/scrolls.py``.
        compare: another run directory or results file, or None.
        console: where the tables are printed.

    Raises:
        ReportError: as :func:`build_report`, or the report cannot be written.
    """
    report = build_report(source, compare)
    data = report.data
    _print(console, report)
    directory = data.directory
    try:
        directory.mkdir(exist_ok=True)  # a results file's report folder; a run directory exists
        plots = write_plots(report.cells, data.repeats, data.accuracy, data.capacity, directory)
    except OSError as exc:
        raise ReportError(
            f"cannot write plots into {directory}: {exc}; make the run directory writable or copy it "
            "somewhere you can write."
        ) from exc
    files = RunDirectory(directory)
    markdown = report_markdown(
        data.run_id,
        data.read_from,
        report.environment,
        data.config_name,
        data.config_language,
        data.config_text,
        report.sections,
        report.failures,
        plots,
        data.notes,
    )
    page = report_html(
        run_id=data.run_id,
        source=data.read_from,
        environment=report.environment,
        config_name=data.config_name,
        config_text=data.config_text,
        energy_sources=report.energy_sources,
        sections=report.sections,
        failures=report.failures,
        plots=plots,
        notes=data.notes,
        comparison=report.comparison_table,
    )
    outputs = ReportOutputs(
        _write(files.report_md, markdown),
        _write(files.report_html, page),
        _write(files.summary_csv, summary_csv(report.cells)),
        tuple(path for _, path in plots),
    )
    if report.comparison is not None and report.comparison_table is not None:
        outputs = ReportOutputs(
            outputs.report_md,
            outputs.report_html,
            outputs.summary_csv,
            outputs.plots,
            _write(files.compare_md, compare_markdown(report.comparison, report.comparison_table)),
            _write(files.compare_csv, compare_csv(report.comparison)),
        )
    print_written(console, directory, outputs.files)
    return outputs
