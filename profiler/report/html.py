"""``report.html``: the whole report as one self-contained page to open and share.

It renders the same :class:`~profiler.report.tables.Table` objects as the terminal and
``report.md``, with the plots inside the page as ``data:`` URIs, the run's config and environment,
and the energy sources named. It loads nothing: no script, no web font, no stylesheet or image from
elsewhere, and a Content-Security-Policy that lets the page load nothing but its own ``data:``
images, so it views the same offline, from a mail attachment or an archive.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path

from profiler import __version__
from profiler.energy.common import SOURCE_MEANING
from profiler.report.tables import Entry, Table

#: Nothing may be fetched: only inline styles and the page's own data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
BEST_NOTE = (
    "Bold green: the best figure of its column among the cells of the same input length and load "
    "level (lowest latency and J/query, highest throughput and score). Yellow: a figure to read with "
    "care; the notes under its table say why."
)
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 1em 0 0.4em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { text-align: left; background: #f6f8fa; border-bottom: 2px solid #d0d7de; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child { white-space: nowrap; }
tr.rule td { border-top: 2px solid #d0d7de; }
td.best { font-weight: 700; color: #116329; }
td.warn { color: #9a6700; background: #fff8c5; }
p.note { margin: 0.2em 0; color: #57606a; font-size: 0.93em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
.estimate { color: #9a6700; font-weight: 600; }
"""


def _cell(entry: Entry, numeric: bool) -> str:
    classes = [c for c, on in (("num", numeric), ("best", entry.best), ("warn", entry.warn)) if on]
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}>{escape(entry.text)}</td>"


def html_table(table: Table, show_header: bool = True) -> str:
    """A table with its title as caption, a rule where its sections change, and its notes below."""
    parts = ["<table>", f"<caption>{escape(table.title)}</caption>"]
    if show_header:
        headers = "".join(
            f'<th{" class=num" if c.numeric else ""} scope="col">{escape(c.header)}</th>'
            for c in table.columns
        )
        parts.append(f"<thead><tr>{headers}</tr></thead>")
    parts.append("<tbody>")
    previous: object = None
    for index, (row, section) in enumerate(zip(table.rows, table.sections, strict=True)):
        rule = ' class="rule"' if index and section != previous else ""
        cells = "".join(
            _cell(entry, column.numeric) for entry, column in zip(row, table.columns, strict=True)
        )
        parts.append(f"<tr{rule}>{cells}</tr>")
        previous = section
    parts.append("</tbody></table>")
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in table.notes)
    return "\n".join(parts)


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _energy(sources: Sequence[str]) -> str:
    if not sources:
        return "<p>No energy was measured.</p>"
    items = []
    for source in sources:
        meaning = SOURCE_MEANING.get(source, "a source this profiler does not describe")
        css = ' class="estimate"' if source == "estimate" else ""
        items.append(f"<li><code{css}>{escape(source)}</code>: {escape(meaning)}</li>")
    return (
        "<ul>"
        + "".join(items)
        + "</ul><p>Every energy figure names its source beside it, as the tables show.</p>"
    )


def _list(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def report_html(
    *,
    run_id: str,
    source: Path,
    environment: Table,
    config_name: str,
    config_text: str | None,
    energy_sources: Sequence[str],
    sections: Sequence[tuple[str, Sequence[Table]]],
    failures: Sequence[str],
    plots: Sequence[tuple[str, Path]],
    notes: Sequence[str],
    comparison: Table | None = None,
) -> str:
    """The whole page: what was reported, energy sources, environment and config, each section's
    tables, failures, the plots (read from their PNG files) and notes."""
    body = [
        f"<h1>Report: {escape(run_id)}</h1>",
        f"<p>From <code>{escape(str(source))}</code>, by long-context-profiler {escape(__version__)}. "
        f"{escape(BEST_NOTE)}</p>",
        "<h2>Energy source</h2>",
        _energy(energy_sources),
        "<h2>Environment</h2>",
        html_table(environment, show_header=False),
    ]
    if config_text is not None:
        body.append(
            f"<details><summary>{escape(config_name)}</summary><pre>{escape(config_text)}</pre></details>"
        )
    for heading, tables in sections:
        body.append(f"<h2>{escape(heading)}</h2>")
        body.extend(html_table(table) for table in tables)
    if comparison is not None:
        body.extend(["<h2>Compare</h2>", html_table(comparison)])
    if failures:
        body.extend(["<h2>Failures</h2>", _list(failures)])
    if plots:
        body.append("<h2>Plots</h2>")
        body.extend(
            f'<figure><img src="{_image(path)}" alt="{escape(title)}">'
            f"<figcaption>{escape(title)}</figcaption></figure>"
            for title, path in plots
        )
    if notes:
        body.extend(["<h2>Notes</h2>", _list(notes)])
    head = (
        '<meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Report: {escape(run_id)}</title><style>{STYLE}</style>"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
