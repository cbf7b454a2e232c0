"""What `profiler serve` tells whoever started it, read from its real output: the ready line, one
access-log line per request with ``--access-log``, and the stopping and stopped lines."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from profiler.server.launch import ServerProcess

pytestmark = pytest.mark.integration

PROFILER = str(Path(sys.executable).parent / "profiler")

ACCESS = re.compile(
    r"^127\.0\.0\.1:\d+ (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>[\d.]+) ms$"
)


def lines(server: ServerProcess) -> list[str]:
    return server.log.read_text(encoding="utf-8").splitlines()


def wait_for(server: ServerProcess, prefix: str, within_s: float = 20) -> list[str]:
    """The log's lines once one starts with ``prefix``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = lines(server)
        if any(line.startswith(prefix) for line in found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"no line starting {prefix!r} in {server.log}: {lines(server)[-5:]}")


def answered(client: httpx.Client) -> dict[str, int]:
    """profiler_requests_total by status, every bucket together."""
    tally: dict[str, int] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "profiler_requests_total":
                status = sample.labels["status"]
                tally[status] = tally.get(status, 0) + int(sample.value)
    return tally


def test_ready_access_and_stopped_lines(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(served_models["led/onnx"], "--access-log")
    output = wait_for(server, "ready: ")
    with server.client() as client:
        info = client.get("/v1/info").json()
        answer = client.post("/v1/generate", json={"input_ids": [5] * 300, "max_new_tokens": 4})
        assert answer.status_code == 200
        assert client.get("/no/such/path").status_code == 404
        counted = answered(client)
    (ready,) = [line for line in output if line.startswith("ready: ")]
    warming = [line for line in output if line.startswith("warming up ")]
    assert len(warming) == 1
    assert output.index(warming[0]) < output.index(ready)
    assert ready.startswith(f"ready: {server.url} serves led from {info['source']} ")
    for fact in (
        "format onnx",
        "engine ONNX Runtime [CPUExecutionProvider]",
        "device cpu",
        "buckets 1024 2048 4096 tokens",
    ):
        assert fact in ready, ready
    assert re.search(r"warm-up \d+\.\d s\)$", ready)

    assert server.stop() == 0
    output = lines(server)
    access = [match for line in output if (match := ACCESS.match(line))]
    generate = [match for match in access if match["path"] == "/v1/generate"]
    assert [(match["method"], match["status"]) for match in generate] == [("POST", "200")]
    # Arrival to last byte, measured outside the app: never less than the answer's own total.
    assert float(generate[0]["ms"]) >= answer.json()["timings"]["total_ms"]
    assert [match["status"] for match in access if match["path"] == "/no/such/path"] == ["404"]
    assert any(match["path"] == "/readyz" for match in access)  # the launcher's polls, 503 then 200
    assert "SIGTERM: stopping, no new requests accepted; idle; nothing to finish" in output
    # The stopped line counts what profiler_requests_total counted (the /metrics read itself is not).
    by_status = ", ".join(f"{status}: {count:,}" for status, count in sorted(counted.items()))
    (stopped,) = [line for line in output if line.startswith("stopped: ")]
    assert stopped.startswith(
        f"stopped: answered {sum(counted.values()):,} request(s) ({by_status}); served for "
    )
    assert output[-1] == stopped


def test_without_access_log_a_request_prints_nothing(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory(served_models["led/onnx"])
    before = wait_for(server, "ready: ")
    with server.client() as client:
        assert (
            client.post("/v1/generate", json={"input_ids": [5] * 50, "max_new_tokens": 2}).status_code == 200
        )
    time.sleep(0.2)
    assert lines(server) == before


def test_a_stop_says_what_it_finishes_and_finishes_it(
    served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    """The request waits for batch-mates (--max-wait-ms 3000) when SIGTERM comes; it is answered."""
    server = server_factory(served_models["led/onnx"], "--max-wait-ms", "3000")
    wait_for(server, "ready: ")
    with server.client() as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/generate", json={"input_ids": [5] * 50, "max_new_tokens": 2})
        deadline = time.monotonic() + 10
        while "profiler_queue_depth 1.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the request never reached the queue"
            time.sleep(0.02)
        server.process.send_signal(15)
        assert pending.result(timeout=30).status_code == 200
    assert server.process.wait(timeout=30) == 0
    output = lines(server)
    assert (
        "SIGTERM: stopping, no new requests accepted; finishing 1 request(s) queued or running (up to 60 s)"
        in output
    )
    assert re.match(r"stopped: answered \d+ request\(s\) \(.*200: 1\b", output[-1]), output[-1]


def test_a_stop_during_warm_up_says_so_and_never_claims_ready(
    served_models: dict[str, Path], tmp_path: Path
) -> None:
    """Eager warm-up runs every bucket up to 4096 tokens (seconds); SIGTERM comes as it starts."""
    log = tmp_path / "serve.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [PROFILER, "serve", str(served_models["led/eager"]), "--port", "0"],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not log.read_text().startswith("warming up "):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no warming-up line"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text().splitlines()
    assert "SIGTERM: stopping, no new requests accepted; warming up; it stops once warm-up ends" in output
    assert not any(line.startswith("ready: ") for line in output), output
    assert output[-1] == "stopped: answered 0 request(s); never became ready"
