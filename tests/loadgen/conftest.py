"""A live `profiler serve` on the tiny LED checkpoint (eager: buckets 1024-4096), shared by the
locust runs of this package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.server.launch import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(
    tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("loadgen-serve") / "serve.log"
    process = start_server(tiny_checkpoints["led"], "--threads", "1", log=log)
    yield process
    process.stop()
