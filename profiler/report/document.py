"""The report as one typed document (``profiler report --json``), and each cell's unrounded figures
(also ``summary.csv``'s rows).

The document carries the same sections and tables the terminal, ``report.md`` and ``report.html``
show (each entry's text with the number behind it), plus every cell's figures unrounded, so a
program reads the numbers without parsing text. docs/report.md describes each field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from profiler.documents import Document
from profiler.environment import Environment
from profiler.report.aggregate import Cell
from profiler.report.tables import Better, Table


class CellFigures(Document):
    """One cell, its repeats aggregated, figures unrounded; None where not measured. One row of
    ``summary.csv``, in the same order.

    Attributes:
        concurrency / rate_rps: closed-loop users, or the open-loop rate; the other is None.
        p50_ci_low_ms / p50_ci_high_ms: 95% interval of the mean p50 over repeats (two or more).
        energy_source: where the joules came from; ``estimate`` means modelled, not metered.
        others_cpu_share / disturbed: from the cell's most disturbed repeat.
    """

    model: str
    format: str
    engine: str
    device: str
    mode: str
    max_new_tokens: int | None
    global_attention: str
    input_length: int
    arrival: str
    concurrency: int | None
    rate_rps: float | None
    repeats: int
    requests: int
    failures: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    p50_ci_low_ms: float | None
    p50_ci_high_ms: float | None
    throughput_rps: float | None
    tokens_per_s: float | None
    gross_j_per_query: float | None
    net_j_per_query: float | None
    net_clamped: bool
    avg_power_w: float | None
    energy_source: str | None
    gpu_util_pct: float | None
    gpu_memory_bytes: int | None
    peak_rss_bytes: int | None
    others_cpu_share: float | None
    disturbed: bool | None

    @classmethod
    def of(cls, cell: Cell) -> CellFigures:
        s, lat, ci = cell.key.series, cell.latency, cell.p50_ci
        closed = s.load.arrival == "closed"
        return cls(
            model=s.model,
            format=s.format,
            engine=s.engine,
            device=s.device,
            mode=s.mode,
            max_new_tokens=s.max_new_tokens,
            global_attention=s.global_attention,
            input_length=cell.key.length,
            arrival=s.load.arrival,
            concurrency=int(s.load.level) if closed else None,
            rate_rps=None if closed else s.load.level,
            repeats=len(cell.repeats),
            requests=cell.requests,
            failures=cell.failures,
            p50_ms=lat.p50 if lat else None,
            p90_ms=lat.p90 if lat else None,
            p99_ms=lat.p99 if lat else None,
            mean_ms=lat.mean if lat else None,
            p50_ci_low_ms=ci.low if ci else None,
            p50_ci_high_ms=ci.high if ci else None,
            throughput_rps=cell.throughput_rps,
            tokens_per_s=cell.tokens_per_s,
            gross_j_per_query=cell.gross_j_per_query,
            net_j_per_query=cell.net_j_per_query,
            net_clamped=cell.net_clamped,
            avg_power_w=cell.avg_power_w,
            energy_source=cell.energy_source,
            gpu_util_pct=cell.gpu_util_pct,
            gpu_memory_bytes=cell.gpu_memory_bytes,
            peak_rss_bytes=cell.peak_rss_bytes,
            others_cpu_share=cell.contention.others_share if cell.contention else None,
            disturbed=cell.disturbed if cell.contention else None,
        )


class ColumnDocument(Document):
    """A table's column: its header, whether it holds figures, and which way is better (None:
    never highlighted)."""

    header: str
    numeric: bool
    better: Better | None


class EntryDocument(Document):
    """One table cell: the text shown, the number behind it (None for text), and its marks."""

    text: str
    value: float | None
    best: bool
    warn: bool


class TableDocument(Document):
    """A table as every view shows it: title, columns, rows of entries, notes below."""

    title: str
    columns: list[ColumnDocument]
    rows: list[list[EntryDocument]]
    notes: list[str]

    @classmethod
    def of(cls, table: Table) -> TableDocument:
        return cls(
            title=table.title,
            columns=[
                ColumnDocument(header=c.header, numeric=c.numeric, better=c.better) for c in table.columns
            ],
            rows=[
                [EntryDocument(text=e.text, value=e.value, best=e.best, warn=e.warn) for e in row]
                for row in table.rows
            ],
            notes=list(table.notes),
        )


class SectionDocument(Document):
    """A heading of the report and its tables."""

    title: str
    tables: list[TableDocument]


class ReportDocument(Document):
    """``profiler report --json``: everything the report shows, for programs.

    Attributes:
        source: the run directory or load test results file reported.
        kind: ``run`` (a sweep's run directory) or ``loadtest`` (one locust results file).
        config: the sweep's ``config.toml`` as written, or a load test's settings as JSON.
        energy_sources: every energy source the figures came from (``estimate``: modelled).
        cells: every cell's figures, unrounded.
        sections: the report's sections in order, as the terminal shows them.
        compare: with ``--compare``, the comparison table.
        compare_config_diff: with ``--compare``, the unified diff of the baseline's config to the
            new run's, line by line (or the one line saying there is none).
    """

    #: The layout's version; a change that breaks a reader gets a new one.
    schema_version: Literal[1] = 1
    run_id: str
    source: str
    kind: Literal["run", "loadtest"]
    environment: Environment | None
    config: str | None
    energy_sources: list[str]
    cells: list[CellFigures]
    sections: list[SectionDocument]
    failures: list[str]
    notes: list[str]
    compare: TableDocument | None
    compare_config_diff: list[str] | None = None


def sections_document(sections: Sequence[tuple[str, Sequence[Table]]]) -> list[SectionDocument]:
    """The report's sections as documents."""
    return [
        SectionDocument(title=title, tables=[TableDocument.of(t) for t in tables])
        for title, tables in sections
    ]
