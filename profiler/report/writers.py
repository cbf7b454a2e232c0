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
from profiler.report.document import CellFigures
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
    config_name: str,
    config_language: str,
    config_text: str | None,
    sections: Sequence[tuple[str, Sequence[Table]]],
    failures: Sequence[str],
    plots: Sequence[tuple[str, Path]],
    notes: Sequence[str],
) -> str:
    """The whole ``report.md``: environment, then each section's tables, failures, plots and notes."""
    parts = [f"# Report: {run_id}", "", f"From `{run_dir}`. {BEST_NOTE}", "", "## Environment", ""]
    env = markdown_table(environment, heading=None)
    parts.append(env)
    if config_text is not None:
        parts.extend(
            [
                f"<details><summary>{config_name}</summary>",
                "",
                f"```{config_language}",
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


def summary_csv(cells: Iterable[Cell]) -> str:
    """``summary.csv``: one row per cell, figures unrounded; ``energy_source`` says if J are an estimate."""
    return _csv(
        list(CellFigures.model_fields), (list(CellFigures.of(cell).model_dump().values()) for cell in cells)
    )


def compare_csv(comparison: Comparison) -> str:
    """``compare.csv``: one row per matched cell; per metric both figures, ratio, both CIs, verdict."""
    sides = ("baseline", "new")
    header = ["model", "format", *(f"engine_{side}" for side in sides), "mode", "input_length", "load"]
    header += [f"energy_source_{side}" for side in sides]
    for name in METRICS:
        header += [f"{name}_{part}" for part in (*sides, "ratio")]
        header += [f"{name}_ci_{side}_{end}" for side in sides for end in ("low", "high")]
        header.append(f"{name}_verdict")
    rows = []
    for pair in comparison.matched:
        s, b = pair.new.key.series, pair.baseline.key.series
        row: list[object] = [s.model, s.format, b.engine_label, s.engine_label, s.mode, pair.key.length]
        row += [s.load.label, pair.baseline.energy_source, pair.new.energy_source]
        for name in METRICS:
            item = pair.metrics[name]
            row += [item.baseline, item.new, item.ratio]
            for ci in (item.baseline_ci, item.new_ci):
                row += [ci.low, ci.high] if ci else [None, None]
            row.append(item.verdict)
        rows.append(row)
    return _csv(header, rows)


def compare_markdown(comparison: Comparison, table: Table) -> str:
    """``compare.md``: what changed in the config, then the comparison table and how to read it."""
    intro = (
        f"# Compare: {comparison.new_run} (new) vs {comparison.baseline_run} (baseline)\n\n"
        "## Config changes, baseline -> new\n\n```diff\n" + "\n".join(comparison.config_diff) + "\n```\n\n"
        "Ratios are new / baseline: below 1 the new run is lower (faster for latency, cheaper for "
        "J/query). A J/query ratio involving an estimate says so beside it; the notes name the sources where "
        "the runs differ.\n"
    )
    return intro + "\n" + markdown_table(table, heading="##")
