"""Markdown and CSV: ``report.md`` and ``summary.csv`` for a run, ``compare.md`` and ``compare.csv``
for a comparison. Markdown renders the same :class:`~profiler.report.tables.Table` objects the
terminal shows; CSV holds unrounded figures, one row per cell, with the energy source in a column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from profiler.report.aggregate import Cell
from profiler.report.compare import METRICS, Comparison
from profiler.report.tables import Entry, Table

BEST_NOTE = (
    "**Bold**: the best figure of its column among the cells of the same input length and load level "
    "(lowest latency and J/query, highest throughput and score)."
)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_entry(entry: Entry) -> str:
    text = _escape(entry.text)
    return f"**{text}**" if entry.best and text != "-" else text


def markdown_table(table: Table, heading: str | None = "###") -> str:
    """A GitHub-flavoured Markdown table with its title as a heading and its notes below."""
    lines = [f"{heading} {table.title}", ""] if heading else []
    lines.append("| " + " | ".join(_escape(c.header) for c in table.columns) + " |")
    lines.append("| " + " | ".join("---:" if c.numeric else "---" for c in table.columns) + " |")
    lines.extend("| " + " | ".join(_md_entry(e) for e in row) + " |" for row in table.rows)
    lines.append("")
    for note in table.notes:
        lines.extend([note, ""])
    return "\n".join(lines)


def report_markdown(
    run_id: str,
    run_dir: Path,
    environment: Table,
    config_text: str | None,
    sections: Sequence[tuple[str, Sequence[Table]]],
    failures: Sequence[str],
    plots: Sequence[tuple[str, Path]],
    notes: Sequence[str],
) -> str:
    """The whole ``report.md``: environment, then each section's tables, failures, plots and notes."""
    parts = [f"# Report: {run_id}", "", f"Run directory: `{run_dir}`. {BEST_NOTE}", "", "## Environment", ""]
    env = markdown_table(environment, heading=None)
    parts.append(env)
    if config_text is not None:
        parts.extend(
            [
                "<details><summary>config.toml</summary>",
                "",
                "```toml",
                config_text.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
        )
    for heading, tables in sections:
        parts.extend([f"## {heading}", ""])
        parts.extend(markdown_table(table) for table in tables)
    if failures:
        parts.extend(["## Failures", ""])
        parts.extend(f"- {_escape(line)}" for line in failures)
        parts.append("")
    if plots:
        parts.extend(["## Plots", ""])
        for title, path in plots:
            parts.extend([f"![{title}]({path.name})", ""])
    if notes:
        parts.extend(["## Notes", ""])
        parts.extend(f"- {_escape(note)}" for note in notes)
        parts.append("")
    return "\n".join(parts)


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


SUMMARY_COLUMNS = (
    "model",
    "format",
    "engine",
    "device",
    "mode",
    "max_new_tokens",
    "global_attention",
    "input_length",
    "arrival",
    "concurrency",
    "rate_rps",
    "repeats",
    "requests",
    "failures",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "p50_ci_low_ms",
    "p50_ci_high_ms",
    "throughput_rps",
    "tokens_per_s",
    "gross_j_per_query",
    "net_j_per_query",
    "net_clamped",
    "avg_power_w",
    "energy_source",
    "gpu_util_pct",
    "gpu_memory_bytes",
    "peak_rss_bytes",
    "others_cpu_share",
    "disturbed",
)


def summary_csv(cells: Iterable[Cell]) -> str:
    """``summary.csv``: one row per cell, figures unrounded; ``energy_source`` says if J are an estimate."""
    rows = []
    for cell in cells:
        s, lat, ci = cell.key.series, cell.latency, cell.p50_ci
        closed = s.load.arrival == "closed"
        rows.append(
            [
                s.model,
                s.format,
                s.engine,
                s.device,
                s.mode,
                s.max_new_tokens,
                s.global_attention,
                cell.key.length,
                s.load.arrival,
                int(s.load.level) if closed else None,
                None if closed else s.load.level,
                len(cell.repeats),
                cell.requests,
                cell.failures,
                lat.p50 if lat else None,
                lat.p90 if lat else None,
                lat.p99 if lat else None,
                lat.mean if lat else None,
                ci.low if ci else None,
                ci.high if ci else None,
                cell.throughput_rps,
                cell.tokens_per_s,
                cell.gross_j_per_query,
                cell.net_j_per_query,
                cell.net_clamped,
                cell.avg_power_w,
                cell.energy_source,
                cell.gpu_util_pct,
                cell.gpu_memory_bytes,
                cell.peak_rss_bytes,
                cell.contention.others_share if cell.contention else None,
                cell.disturbed if cell.contention else None,
            ]
        )
    return _csv(SUMMARY_COLUMNS, rows)


def compare_csv(comparison: Comparison) -> str:
    """``compare.csv``: one row per matched cell; per metric both figures, ratio, both CIs, verdict."""
    header = ["model", "format", "engine_this", "engine_other", "mode", "input_length", "load"]
    header += ["energy_source_this", "energy_source_other"]
    for name in METRICS:
        header += [f"{name}_{part}" for part in ("this", "other", "ratio")]
        header += [f"{name}_ci_{side}_{end}" for side in ("this", "other") for end in ("low", "high")]
        header.append(f"{name}_verdict")
    rows = []
    for pair in comparison.matched:
        s, o = pair.this.key.series, pair.other.key.series
        row: list[object] = [s.model, s.format, s.engine_label, o.engine_label, s.mode, pair.key.length]
        row += [s.load.label, pair.this.energy_source, pair.other.energy_source]
        for name in METRICS:
            item = pair.metrics[name]
            row += [item.this, item.other, item.ratio]
            for ci in (item.this_ci, item.other_ci):
                row += [ci.low, ci.high] if ci else [None, None]
            row.append(item.verdict)
        rows.append(row)
    return _csv(header, rows)


def compare_markdown(comparison: Comparison, table: Table) -> str:
    """``compare.md``: the comparison table and how to read it."""
    intro = (
        f"# Compare: {comparison.this_run} vs {comparison.other_run}\n\n"
        "Ratios are other / this: below 1 the other run is lower (faster for latency, cheaper for "
        "J/query). A J/query ratio involving an estimate says so beside it; the notes name the sources where "
        "the runs differ.\n"
    )
    return intro + "\n" + markdown_table(table, heading="##")
