"""Render the report's tables in the terminal with rich: best cells bold green, warnings yellow."""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from profiler.report.tables import Entry, Table

BEST_STYLE = "bold green"
WARN_STYLE = "yellow"
#: Columns keep at least their longest word up to this width: "(estimate)" is never split, and a
#: narrow terminal folds longer words rather than letting the table overflow the line.
MAX_WORD = len("torchscript")


def _text(entry: Entry) -> Text:
    # Text objects, not markup strings: a model name with brackets must print as written.
    style = BEST_STYLE if entry.best else WARN_STYLE if entry.warn else ""
    return Text(entry.text, style=style)


def to_rich(table: Table, show_header: bool = True) -> RichTable:
    """A rich table with a rule between sections (one input length, say); its notes are printed
    apart (:func:`print_tables`)."""
    rich_table = RichTable(
        title=table.title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # with the box's one-space separator: two spaces between columns
        show_edge=False,
        show_header=show_header,
    )
    for index, column in enumerate(table.columns):
        # Wrap between words where the terminal is narrow, and fold rather than cut a word that is
        # still too long: a cut-off "(estimate)" would hide what the figure is.
        longest = max((len(word) for row in table.rows for word in row[index].text.split()), default=1)
        rich_table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            overflow="fold",
            min_width=min(longest, MAX_WORD),
        )
    previous: object = None
    for index, (row, section) in enumerate(zip(table.rows, table.sections, strict=True)):
        if index and section != previous:
            rich_table.add_section()
        rich_table.add_row(*(_text(entry) for entry in row))
        previous = section
    return rich_table


def print_tables(console: Console, tables: Iterable[Table], show_header: bool = True) -> None:
    """Print tables one after another, each with its notes, a blank line after each.

    Notes wrap at the console's width, not the table's: as a caption a narrow table cut words off.
    """
    for table in tables:
        console.print(to_rich(table, show_header=show_header))
        for note in table.notes:
            console.print(note, markup=False, highlight=False)
        console.print()
