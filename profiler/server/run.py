"""Run the app: HTTP on a uvicorn thread, the model on the main thread, a graceful stop that exits 0.

The engine runs on the thread that loaded it. PyTorch's OpenMP pool belongs to the thread that
first used it; running the model from another thread was measured at about twice the latency
(eager and TorchScript, small LED at 1024 tokens). So the main thread loads the model, warms it
up and runs every batch, while uvicorn serves HTTP from a second thread.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import NoReturn

import uvicorn
from fastapi import FastAPI

from profiler.server.announce import (
    AccessLog,
    ready_line,
    say,
    stopped_line,
    stopping_line,
    warming_line,
)
from profiler.server.app import Admission, ASGIApp, Service

#: Seconds that in-flight requests get to finish after SIGTERM or Ctrl-C.
GRACEFUL_SHUTDOWN_S = 60


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, which also says when it has started listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


def run_server(app: FastAPI, listener: socket.socket, url: str, access_log: bool = False) -> bool:
    """Serve on ``listener`` (bound and listening) until SIGTERM or Ctrl-C, then stop accepting,
    finish in-flight work and return. Says when it starts warming up, when it is ready, when it
    starts stopping and when it has stopped (:mod:`profiler.server.announce`); with
    ``access_log``, one line per request.

    Returns:
        False if the HTTP server never started.
    """
    service: Service = app.state.service
    served: ASGIApp = Admission(app, service)
    config = uvicorn.Config(
        # uvicorn's own access log is off: it formats each line's address and path before the
        # logger drops it, per-request work the loop cannot spare under overload, and it has no
        # latency. --access-log adds ours instead.
        AccessLog(served) if access_log else served,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # nothing here reads X-Forwarded-For
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = _Uvicorn(config)  # off the main thread, uvicorn installs no signal handlers

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            if signum == signal.SIGINT:
                server.force_exit = True  # a second Ctrl-C: stop now
            return
        name = signal.Signals(signum).name
        say(stopping_line(name, not service.warmed.is_set(), service.in_flight(), GRACEFUL_SHUTDOWN_S))
        server.should_exit = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    say(warming_line(url, service.engine))  # once a signal would be handled: the stop is clean from here
    http = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="http")
    http.start()

    def stop_when_http_ends() -> None:
        http.join()
        service.stop()

    def announce_ready() -> None:
        server.listening.wait()
        service.warmed.wait()
        if not server.should_exit:
            say(ready_line(url, service.engine, service.warm_up_s))

    threading.Thread(target=stop_when_http_ends, name="http-watch", daemon=True).start()
    threading.Thread(target=announce_ready, name="announce-ready", daemon=True).start()
    # The kernel may hand SIGTERM to any thread; its C handler then writes to this fd, which wakes
    # the batch worker (this thread) so that the Python handler above runs here at once.
    previous = signal.set_wakeup_fd(service.batcher.wakeup_fd, warn_on_full_buffer=False)
    try:
        service.serve_forever()
    finally:
        signal.set_wakeup_fd(previous)
    http.join()
    if server.started:
        serving_s = None if service.ready_at is None else time.monotonic() - service.ready_at
        say(stopped_line(service.metrics.answered(), serving_s))
    return bool(server.started)


def exit_at_once(code: int) -> NoReturn:
    """End the process without interpreter teardown, once the server has drained.

    Tearing down torch, ONNX Runtime and their thread pools took about 2 s of every stop and
    does nothing a stopped server needs: responses are sent and energy bookkeeping is closed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
