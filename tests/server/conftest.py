"""Live servers: `profiler serve` in a subprocess on a free loopback port, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from exporters.export import export

BUCKETS = [1024, 2048, 4096]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[str]

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def start_server(model: Path, *args: str) -> LiveServer:
    port = free_port()
    command = [str(Path(sys.executable).parent / "profiler"), "serve", str(model), "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited {process.returncode}: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return LiveServer(url, process)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready in 120 s")


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
def server_factory() -> Iterator[Callable[..., LiveServer]]:
    """Start servers inside a test; any still running at the end are stopped."""
    started: list[LiveServer] = []

    def factory(model: Path, *args: str) -> LiveServer:
        server = start_server(model, *args)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
