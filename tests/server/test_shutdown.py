"""An idle server stops on SIGTERM every time, whichever thread the kernel hands the signal to.

Python runs signal handlers on the main thread only. The server's main thread is the batch
worker; when it slept in an untimed lock wait and SIGTERM landed on another thread (the kernel may
pick any thread that does not block it), the handler never ran and the server never exited. The
test sends the signal both ways: to the process, and straight to each of its other threads with
tgkill, the route that hung.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from profiler.server.launch import ServerProcess

pytestmark = pytest.mark.e2e

#: Stops per engine; each one sent by another route (the process, then thread after thread).
STOPS = 5
#: An idle server drains nothing: it must be gone well within this.
EXIT_WITHIN_S = 10

LIBC = ctypes.CDLL(None, use_errno=True)


def other_threads(pid: int) -> list[int]:
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)


def send_sigterm(pid: int, route: int) -> str:
    """Route 0: to the process, as `kill` does. Otherwise to one non-main thread, by tgkill."""
    if route == 0:
        os.kill(pid, signal.SIGTERM)
        return "process"
    threads = other_threads(pid)
    tid = threads[route % len(threads)]
    if LIBC.tgkill(pid, tid, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")
    return f"thread {tid} of {len(threads) + 1}"


@pytest.mark.parametrize("engine", ["eager", "onnx", "torchscript"])
def test_an_idle_server_exits_0_on_every_sigterm(
    engine: str, served_models: dict[str, Path], server_factory: Callable[..., ServerProcess]
) -> None:
    outcomes = []
    for route in range(STOPS):
        server = server_factory(served_models[f"led/{engine}"])
        with server.client() as client:
            for _ in range(2):
                response = client.post("/v1/generate", json={"input_ids": [5] * 300, "max_new_tokens": 4})
                assert response.status_code == 200
        time.sleep(0.3)  # idle: the worker is parked waiting for work
        sent = time.monotonic()
        how = send_sigterm(server.process.pid, route)
        try:
            code = server.process.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            code = None
        outcomes.append((how, code, round(time.monotonic() - sent, 2)))
        server.stop(timeout=1)  # kills it if it hung, so the next try starts clean
    assert all(code == 0 for _, code, _ in outcomes), outcomes
