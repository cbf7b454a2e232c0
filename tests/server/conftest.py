"""Live servers: `profiler serve` in a subprocess on a free loopback port, stopped with SIGTERM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporters.export import export
from profiler.server.launch import ServerProcess, start_server

BUCKETS = [1024, 2048, 4096]


@pytest.fixture(scope="session")
def served_models(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]
) -> dict[str, Path]:
    """arch/engine -> directory: raw checkpoints (eager) and tiny ONNX and TorchScript artifacts."""
    root = tmp_path_factory.mktemp("served")
    models = {}
    for arch, checkpoint in tiny_checkpoints.items():
        models[f"{arch}/eager"] = checkpoint
        for fmt in ("onnx", "torchscript"):
            out = root / f"{arch}-{fmt}"
            export(checkpoint, fmt, out, lengths=BUCKETS, batch_sizes=[1, 4], new_tokens=8)
            models[f"{arch}/{fmt}"] = out
    return models


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers inside a test; any still running at the end are stopped."""
    started: list[ServerProcess] = []

    def factory(model: Path, *args: str) -> ServerProcess:
        server = start_server(model, *args, log=tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
