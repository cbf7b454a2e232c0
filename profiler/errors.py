"""Small helpers for user errors: one line that names the file and says what to do."""

from __future__ import annotations

from pathlib import Path


def one_line(exc: BaseException) -> str:
    """A library's message cut to its first sentence on one line.

    transformers and torch messages run over several lines or list hundreds of model types; the
    first sentence says what was wrong.
    """
    text = " ".join(str(exc).split())
    return text.split(". ")[0].rstrip(".") or type(exc).__name__


def file_in_the_way(path: Path) -> Path | None:
    """The nearest folder above ``path`` that is a file, so ``path`` can never be created."""
    return next((parent for parent in path.parents if parent.is_file()), None)
