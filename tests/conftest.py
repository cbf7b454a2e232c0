"""Shared fixtures: tiny checkpoints and their exports, built once per session, never a hub download."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from profiler.artifact import FORMATS
from profiler.checkpoints import ARCHS, build_checkpoint
from profiler.modelinfo import DEFAULT_LENGTHS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the ``optimum``-marked tests, saying where they run, where the extra is not installed."""
    from exporters.optimum_route import optimum_installed

    if not any(item.get_closest_marker("optimum") for item in items) or optimum_installed():
        return
    skip = pytest.mark.skip(reason="needs the [optimum] extra; `make test-optimum` runs it in .venv-optimum")
    for item in items:
        if item.get_closest_marker("optimum"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny checkpoint directory per architecture."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_checkpoint(arch, "tiny", root / arch).path for arch in ARCHS}


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small (demo-size) checkpoint directory per architecture."""
    root = tmp_path_factory.mktemp("small")
    return {arch: build_checkpoint(arch, "small", root / arch).path for arch in ARCHS}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]) -> dict[str, Path]:
    """``arch-format`` -> every arch x format exported from the tiny checkpoints at the study's
    four buckets, parity checked at batch sizes 1 and 2. Shared: copy one before changing it."""
    from exporters.export import export  # torch and transformers: only for the tests that export

    root = tmp_path_factory.mktemp("artifacts")
    out = {}
    for arch in ARCHS:
        for fmt in FORMATS:
            path = root / f"{arch}-{fmt}"
            export(
                tiny_checkpoints[arch], fmt, path, lengths=DEFAULT_LENGTHS, batch_sizes=[1, 2], new_tokens=16
            )
            out[f"{arch}-{fmt}"] = path
    return out


@pytest.fixture
def cpu_burner() -> Iterator[psutil.Process]:
    """A process spinning on one CPU outside this process's tree (its shell parent exits at once),
    as another user's work would be; killed by its pid at the end."""
    shell = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    process = psutil.Process(int(shell.stdout.strip()))
    yield process
    process.kill()
    process.wait(timeout=10)
