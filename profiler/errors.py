"""The root of every error a user can cause, and helpers for one-line messages.

Each user-facing kind (a bad checkpoint, config, artifact, records file...) subclasses
:class:`ProfilerError`; the CLI catches the root once, prints the message on one line and exits
with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ProfilerError(Exception):
    """A mistake a user can make and fix; the message says what was wrong and what to do."""


class ConfigError(ProfilerError):
    """A config file or option (a sweep's TOML, the load generator's options) that cannot work."""


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


def last_words(log: Path) -> str:
    """The last non-blank line of a child's log, where a failing child says why."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "it printed nothing"
