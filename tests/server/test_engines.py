"""All three engines serve both architectures, agree token for token, and shut down cleanly."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from profiler.checkpoints import ARCHS
from profiler.server.launch import ServerProcess, free_port

TEXT = "The committee reviewed the annual budget of the northern district. " * 20


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
def test_eager_onnx_and_torchscript_serve_the_same_tokens(
    arch: str, served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    outputs = {}
    for engine in ("eager", "onnx", "torchscript"):
        server = server_factory(served_models[f"{arch}/{engine}"])
        with server.client() as client:
            assert client.get("/v1/info").json()["engine"] == engine
            body = client.post("/v1/generate", json={"text": TEXT, "max_new_tokens": 10}).json()
            long = client.post("/v1/generate", json={"input_ids": [7] * 3500, "max_new_tokens": 5}).json()
        assert long["bucket"] == 4096
        outputs[engine] = (body["output_ids"], long["output_ids"])
        assert server.stop() == 0
    assert outputs["onnx"] == outputs["eager"]
    assert outputs["torchscript"] == outputs["eager"]


@pytest.mark.integration
def test_truncate_cuts_long_inputs(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(served_models["bigbird-pegasus/onnx"], "--truncate")
    with server.client() as client:
        body = client.post("/v1/generate", json={"input_ids": [9] * 5000, "max_new_tokens": 2}).json()
    assert (body["truncated"], body["input_tokens"], body["bucket"]) == (True, 4096, 4096)


@pytest.mark.integration
def test_a_full_queue_answers_503_with_retry_after(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(
        served_models["led/onnx"], "--max-batch-size", "1", "--max-wait-ms", "0", "--max-queue", "2"
    )
    statuses: list[int] = []
    retry_after: list[str | None] = []
    lock = threading.Lock()

    def call() -> None:
        with server.client() as client:
            response = client.post("/v1/generate", json={"input_ids": [5] * 4000, "max_new_tokens": 60})
        with lock:
            statuses.append(response.status_code)
            retry_after.append(response.headers.get("retry-after"))

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 3  # one running plus the queue's two
    assert 503 in statuses
    assert all(header == "1" for status, header in zip(statuses, retry_after, strict=True) if status == 503)
    with server.client() as client:
        assert client.get("/healthz").status_code == 200


@pytest.mark.e2e
def test_sigterm_finishes_in_flight_requests_and_exits_0(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(served_models["led/torchscript"])
    result: dict[str, int] = {}

    def slow_call() -> None:
        with server.client() as client:
            response = client.post("/v1/generate", json={"input_ids": [5] * 4000, "max_new_tokens": 200})
            result["status"] = response.status_code

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.3)
    assert server.stop() == 0
    thread.join()
    assert result["status"] == 200


@pytest.mark.integration
def test_serve_rejects_a_bad_path_and_a_busy_port(tmp_path: Path, served_models: dict[str, Path]) -> None:
    profiler = str(Path(sys.executable).parent / "profiler")
    missing = subprocess.run(
        [profiler, "serve", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 2
    assert "no such directory" in missing.stderr
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        taken = subprocess.run(
            [profiler, "serve", str(served_models["led/onnx"]), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert taken.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
