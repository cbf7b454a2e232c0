"""One error root: every kind of mistake a user can make is a ProfilerError, and the CLI turns the
root (not a per-command list) into one line and exit status 2."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from profiler.accuracy import AccuracyError
from profiler.artifact import ArtifactError
from profiler.checkpoints import CheckpointError
from profiler.cli import UsageError, app
from profiler.client import ServerCallError
from profiler.energy.common import EnergyError, WindowError
from profiler.errors import ConfigError, ProfilerError
from profiler.jsonl import RecordsError
from profiler.report.load import ReportError
from profiler.server.launch import PortInUseError, ServerStartError
from profiler.stats import StatsError
from profiler.sweep.runner import SweepError
from profiler.workload import WorkloadError

USER_ERRORS = [
    AccuracyError,
    ArtifactError,
    CheckpointError,
    ConfigError,
    ServerCallError,
    EnergyError,
    PortInUseError,
    RecordsError,
    ReportError,
    ServerStartError,
    StatsError,
    SweepError,
    UsageError,
    WindowError,
    WorkloadError,
]


@pytest.mark.parametrize("kind", USER_ERRORS, ids=lambda kind: kind.__name__)
def test_every_user_error_is_a_profiler_error(kind: type[Exception]) -> None:
    assert issubclass(kind, ProfilerError)


def test_any_profiler_error_from_any_command_is_one_line_and_exit_2() -> None:
    """A command that raises a kind no per-command list names still gets the one-line treatment."""

    @app.command("raise-for-test", hidden=True)
    def raise_for_test() -> None:
        raise WindowError("window 'x' is not open;\n  open it first [with] markup-like text.")

    try:
        result = CliRunner().invoke(app, ["raise-for-test"])
    finally:
        app.registered_commands.pop()
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines == ["error: window 'x' is not open; open it first [with] markup-like text."]


def test_a_bug_is_not_hidden_as_a_user_error() -> None:
    @app.command("bug-for-test", hidden=True)
    def bug_for_test() -> None:
        raise KeyError("a bug")

    try:
        result = CliRunner().invoke(app, ["bug-for-test"])
    finally:
        app.registered_commands.pop()
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)
    assert not isinstance(result.exception, typer.Exit)
