"""Every command's ``--help`` as a user reads it (100 columns, no colour) against the snapshots in
tests/help/, so a change to help text is seen in review.

After changing help on purpose, refresh the snapshots and review their diff:
``UPDATE_HELP_SNAPSHOTS=1 python -m pytest tests/test_help.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from profiler.cli import app

SNAPSHOTS = Path(__file__).parent / "help"
UPDATE = os.environ.get("UPDATE_HELP_SNAPSHOTS") == "1"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group under ``command``, the root included, with its words."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))


ALL = list(commands(typer.main.get_command(app)))


def render(words: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="profiler", env=ENV)
    assert result.exit_code == 0, result.output
    return "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n") + "\n"


def snapshot(words: tuple[str, ...]) -> Path:
    return SNAPSHOTS / ("-".join(("profiler", *words)) + ".txt")


@pytest.mark.parametrize(
    ("words", "command"), ALL, ids=lambda value: " ".join(value) if isinstance(value, tuple) else ""
)
def test_help_matches_its_snapshot(words: tuple[str, ...], command: Any) -> None:
    text = render(words)
    path = snapshot(words)
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; write it with UPDATE_HELP_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"`profiler {' '.join(words)} --help` changed; if on purpose, refresh with UPDATE_HELP_SNAPSHOTS=1"
    )


def test_every_snapshot_belongs_to_a_command() -> None:
    assert sorted(SNAPSHOTS.glob("*.txt")) == sorted(snapshot(words) for words, _ in ALL)


@pytest.mark.parametrize(
    ("words", "command"), ALL, ids=lambda value: " ".join(value) if isinstance(value, tuple) else ""
)
def test_help_reads_as_written(words: tuple[str, ...], command: Any) -> None:
    """No typer types on flags, no braces in usage, no placeholder swallowed as HTML."""
    text = render(words)
    assert "<bool>" not in text
    assert "{" not in text
    assert not re.search(r"(?<!:)//", text), "a path lost a placeholder between two slashes"
    assert text.lstrip().startswith(f"Usage: profiler {' '.join(words)}".rstrip())
    written = [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]
    for placeholder in {found for source in written for found in re.findall(r"<[\w.-]+>", source)}:
        assert placeholder in text, f"{placeholder} was dropped from the help"


def test_shell_completion_is_on_and_completes_commands_and_options() -> None:
    profiler = str(Path(sys.executable).parent / "profiler")

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        env = {
            **os.environ,
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "_PROFILER_COMPLETE": "complete_bash",
        }
        return subprocess.run([profiler], env=env, capture_output=True, text=True, check=True).stdout.split()

    assert "serve" in complete("profiler se")
    assert "--access-log" in complete("profiler serve --acc")
    script = subprocess.run(
        [profiler, "--show-completion"],
        env={**os.environ, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "_PROFILER_COMPLETE=complete_bash" in script
