"""Run the app: HTTP on a uvicorn thread, the model on the main thread, a graceful stop that exits 0.

The engine runs on the thread that loaded it. PyTorch's OpenMP pool belongs to the thread that
first used it; running the model from another thread was measured at about twice the latency
(eager and TorchScript, small LED at 1024 tokens). So the main thread loads the model, warms it
up and runs every batch, while uvicorn serves HTTP from a second thread.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

import uvicorn
from fastapi import FastAPI

from profiler.server.app import Admission, Service

#: Seconds that in-flight requests get to finish after SIGTERM or Ctrl-C.
GRACEFUL_SHUTDOWN_S = 60


def run_server(app: FastAPI, host: str, port: int) -> bool:
    """Serve until SIGTERM or Ctrl-C, then stop accepting, finish in-flight work and return.

    Returns:
        False if the HTTP server never started (e.g. the address could not be bound).
    """
    service: Service = app.state.service
    config = uvicorn.Config(
        Admission(app, service),
        host=host,
        port=port,
        log_level="warning",
        # Per-request work the loop cannot spare under overload: uvicorn formats each access-log
        # line's address and path before the logger drops it, and nothing here reads
        # X-Forwarded-For.
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)  # off the main thread, uvicorn installs no signal handlers

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True  # a second Ctrl-C: stop now
        server.should_exit = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    http = threading.Thread(target=server.run, name="http")
    http.start()

    def stop_when_http_ends() -> None:
        http.join()
        service.stop()

    threading.Thread(target=stop_when_http_ends, name="http-watch", daemon=True).start()
    # The kernel may hand SIGTERM to any thread; its C handler then writes to this fd, which wakes
    # the batch worker (this thread) so that the Python handler above runs here at once.
    previous = signal.set_wakeup_fd(service.batcher.wakeup_fd, warn_on_full_buffer=False)
    try:
        service.serve_forever()
    finally:
        signal.set_wakeup_fd(previous)
    http.join()
    return bool(server.started)


def exit_at_once(code: int) -> NoReturn:
    """End the process without interpreter teardown, once the server has drained.

    Tearing down torch, ONNX Runtime and their thread pools took about 2 s of every stop and
    does nothing a stopped server needs: responses are sent and energy bookkeeping is closed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
