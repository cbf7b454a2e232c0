"""Recorded runs rendered once per session: the report is drawn a handful of times, not per test."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from profiler.report import ReportOutputs, render_report

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Rendered:
    """A run directory after ``render_report``, with what it printed."""

    run_dir: Path
    outputs: ReportOutputs
    text: str


def quiet_console(width: int = 220) -> Console:
    """A console that records instead of printing to the test's stdout."""
    return Console(file=io.StringIO(), record=True, width=width, color_system=None)


def copy_run(name: str, root: Path) -> Path:
    """A writable copy of a recorded run directory."""
    return Path(shutil.copytree(DATA / name, root / name))


@pytest.fixture(scope="session")
def cpu_report(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """cpu-demo (estimate, one repeat, accuracy) compared with gpu-h100 (NVML, two repeats)."""
    root = tmp_path_factory.mktemp("cpu")
    run_dir, other = copy_run("cpu-demo", root), copy_run("gpu-h100", root)
    console = quiet_console()
    outputs = render_report(run_dir, other, console)
    return Rendered(run_dir, outputs, console.export_text())


@pytest.fixture(scope="session")
def gpu_report(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """gpu-h100 on its own: measured energy, GPU timeline, no accuracy file."""
    run_dir = copy_run("gpu-h100", tmp_path_factory.mktemp("gpu"))
    console = quiet_console()
    outputs = render_report(run_dir, None, console)
    return Rendered(run_dir, outputs, console.export_text())
