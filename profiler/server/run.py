"""Run the app on uvicorn with a graceful stop that exits 0."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

#: Seconds that in-flight requests get to finish after SIGTERM or Ctrl-C.
GRACEFUL_SHUTDOWN_S = 60


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after draining, so the exit status reads as a kill;
    a server that stopped accepting and finished its requests has succeeded, and exits 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_server(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop accepting, finish in-flight work and return."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
    )
    GracefulServer(config).run()
