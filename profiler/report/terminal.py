"""Render the report's tables in the terminal with rich: best cells bold green, warnings yellow.

A table is laid out for the console's width so that no line is wider than the terminal and no
figure is wrapped or cut: what every row shares moves into the title (``device: cpu``), a label
every figure of a column shares moves into its header (``gross J/query (estimate)``), headers wrap
between words, and where the columns still do not fit they are split into stacked tables that
each repeat the key columns (model, format, input length). Wider terminals get one table, and
headers on fewer lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table as RichTable
from rich.text import Text

from profiler.report.tables import Column, Entry, Table

BEST_STYLE = "bold green"
WARN_STYLE = "yellow"
TITLE_STYLE = "italic"
#: Spaces between two columns: one of padding and the box's one-space separator.
GAP = 2


@dataclass(frozen=True)
class Shown:
    """A column as printed: its header (with the label its figures share), texts and widths."""

    column: Column
    header: str
    entries: tuple[Entry, ...]
    texts: tuple[str, ...]

    @property
    def least(self) -> int:
        """The narrowest width that breaks neither a figure nor a header word."""
        words = [cell_len(w) for w in self.header.split()]
        if self.column.wrap:
            words += [cell_len(w) for text in self.texts for w in text.split()]
        else:
            words += [cell_len(text) for text in self.texts]
        return max(words, default=1) or 1

    @property
    def natural(self) -> int:
        """The width that puts the header and every text on one line."""
        return max([cell_len(self.header), *(cell_len(t) for t in self.texts)], default=1) or 1


@dataclass(frozen=True)
class Layout:
    """A table laid out for one width: its title, and one or more stacked rich tables."""

    title: str
    parts: tuple[RichTable, ...]


def _uniform(table: Table, index: int) -> str | None:
    """The text every row has in a non-numeric column (of two rows or more), else None."""
    if table.columns[index].numeric or len(table.rows) < 2:
        return None
    texts = {row[index].text for row in table.rows}
    return texts.pop() if len(texts) == 1 else None


def _shown(table: Table, index: int) -> Shown:
    """The column with its figures' shared label, if any, moved into the header."""
    column = table.columns[index]
    entries = tuple(row[index] for row in table.rows)
    labels = {e.label for e in entries if e.text != "-"}
    if len(labels) == 1 and (label := labels.pop()) is not None:
        return Shown(column, f"{column.header} ({label})", entries, tuple(e.figure for e in entries))
    return Shown(column, column.header, entries, tuple(e.text for e in entries))


def _span(columns: Sequence[Shown], widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(len(columns) - 1, 0)


def _fits(keys: list[Shown], part: list[Shown], width: int) -> bool:
    columns = keys + part
    return _span(columns, [c.least for c in columns]) <= width


def _stack(keys: list[Shown], values: list[Shown], width: int) -> list[list[Shown]]:
    """Value columns split, in order, into as few parts as fit beside the key columns, as evenly
    as they allow."""
    if not keys:
        return [values]
    greedy: list[list[Shown]] = []
    for column in values:
        if greedy and _fits(keys, [*greedy[-1], column], width):
            greedy[-1].append(column)
        else:
            greedy.append([column])
    if len(greedy) > 1:
        size = -(-len(values) // len(greedy))
        even = [values[i : i + size] for i in range(0, len(values), size)]
        if len(even) == len(greedy) and all(_fits(keys, part, width) for part in even):
            greedy = even
    return [keys + part for part in greedy] or [keys]


def _lines(header: str, width: int) -> int:
    """How many lines ``header`` takes wrapped between words at ``width`` (as rich wraps it)."""
    lines, used = 1, 0
    for word in header.split():
        size = cell_len(word)
        if used and used + 1 + size > width:
            lines, used = lines + 1, size
        else:
            used += size + (1 if used else 0)
    return lines


def _widths(columns: Sequence[Shown], width: int) -> list[int]:
    """The narrowest widths that put every header on as few lines as the width allows, then the
    room left to prose columns."""
    least = [c.least for c in columns]
    widths = least
    most = max((_lines(c.header, w) for c, w in zip(columns, least, strict=True)), default=1)
    for height in range(1, most):
        trial = [
            next(w for w in range(low, c.natural + 1) if _lines(c.header, w) <= height)
            for c, low in zip(columns, least, strict=True)
        ]
        if _span(columns, trial) <= width:
            widths = trial
            break
    room = width - _span(columns, widths)
    for index, column in enumerate(columns):
        if column.column.wrap and room > 0:
            grow = min(column.natural - widths[index], room)
            widths[index] += grow
            room -= grow
    return widths


def _style(entry: Entry) -> str:
    return BEST_STYLE if entry.best else WARN_STYLE if entry.warn else ""


def _rich(table: Table, columns: Sequence[Shown], widths: Sequence[int], show_header: bool) -> RichTable:
    rich_table = RichTable(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # with the box's one-space separator: GAP spaces between columns
        show_edge=False,
        show_header=show_header,
    )
    for column, column_width in zip(columns, widths, strict=True):
        rich_table.add_column(
            column.header,
            justify="right" if column.column.numeric else "left",
            width=column_width,
            # Widths hold every figure whole; fold only if the terminal is narrower than one column.
            overflow="fold",
        )
    previous: object = None
    for row, section in enumerate(table.sections):
        if row and section != previous:
            rich_table.add_section()
        # Text objects, not markup strings: a model name with brackets must print as written.
        rich_table.add_row(*(Text(c.texts[row], style=_style(c.entries[row])) for c in columns))
        previous = section
    return rich_table


def lay_out(table: Table, width: int, show_header: bool = True) -> Layout:
    """``table`` as stacked rich tables no wider than ``width`` wherever its columns allow it."""
    lifted = {i: text for i in range(len(table.columns)) if (text := _uniform(table, i)) is not None}
    shared = [f"{table.columns[i].header}: {text}" for i, text in lifted.items()]
    title = "; ".join(part for part in (table.title, *shared) if part)
    shown = [_shown(table, i) for i in range(len(table.columns)) if i not in lifted]
    keys = [c for c in shown if c.column.key]
    values = [c for c in shown if not c.column.key]
    parts = _stack(keys, values, width)
    return Layout(title, tuple(_rich(table, part, _widths(part, width), show_header) for part in parts))


def print_tables(console: Console, tables: Iterable[Table], show_header: bool = True) -> None:
    """Print tables one after another, each with its notes, a blank line after each.

    The title and notes wrap between words at the console's width (also on a console that leaves
    long lines to the terminal).
    """
    for table in tables:
        layout = lay_out(table, console.width, show_header)
        if layout.title:
            console.print(Text(layout.title, style=TITLE_STYLE), soft_wrap=False)
        for index, part in enumerate(layout.parts):
            if index:
                console.print()
            console.print(part)
        for note in table.notes:
            console.print(note, markup=False, highlight=False, soft_wrap=False)
        console.print()


def print_written(console: Console, directory: Path, files: Sequence[Path]) -> None:
    """``wrote into DIR:`` and the files' names below it, wrapped between names: a long path is
    printed once, on a line of its own, never folded by rich."""
    console.print(f"wrote into {directory}:", markup=False, highlight=False, soft_wrap=True)
    names = [str(p.relative_to(directory)) if p.is_relative_to(directory) else str(p) for p in files]
    console.print(Padding(Text("  ".join(names)), (0, 0, 0, 2), expand=False), soft_wrap=False)
