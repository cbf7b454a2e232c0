"""What `profiler serve` tells whoever started it: one line as it starts warming up, one when it
is ready, one when it starts stopping, one when it has stopped, and (with ``--access-log``) one
per request.

A person watching a terminal, or a script reading the log, should not have to poll ``/readyz`` or
guess whether a stop was clean. The lines go to stdout, each written whole and flushed, from
whichever thread has something to say.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from profiler.artifact import variant
from profiler.engines.engine import Engine
from profiler.server.app import ASGIApp, Message, Scope

#: What each engine kind runs on, as the ready line names it.
ENGINE_NAMES = {"eager": "PyTorch (eager)", "onnx": "ONNX Runtime", "torchscript": "PyTorch (TorchScript)"}

#: Re-entrant: the stopping line is written from a signal handler, which may interrupt a write.
_lock = threading.RLock()


def say(line: str) -> None:
    """Write one whole line to stdout and flush it (safe from any thread)."""
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def server_url(host: str, port: int) -> str:
    """The base URL of ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def warming_line(url: str, engine: Engine) -> str:
    """Said once the port is held and the model loaded, before warm-up."""
    return (
        f"warming up {len(engine.buckets)} bucket(s) of {engine.model_type} at {url}; "
        "/readyz answers 503 until the ready line"
    )


def ready_line(url: str, engine: Engine, warm_up_s: float) -> str:
    """Said once, when the server takes requests: warm-up done and HTTP listening."""
    fmt = variant(engine.manifest.format, engine.precision) if engine.manifest else "Hugging Face checkpoint"
    runtime = ENGINE_NAMES[engine.kind]
    if engine.providers:
        runtime += f" [{', '.join(engine.providers)}]"
    return (
        f"ready: {url} serves {engine.model_type} from {engine.source} "
        f"(format {fmt}, engine {runtime}, device {engine.device}, "
        f"buckets {' '.join(map(str, engine.buckets))} tokens; warm-up {warm_up_s:.1f} s)"
    )


def stopping_line(signal_name: str, warming_up: bool, in_flight: int, grace_s: float) -> str:
    """Said when SIGTERM or Ctrl-C arrives: what the server was doing and what it finishes."""
    if warming_up:
        doing = "warming up; it stops once warm-up ends"
    elif in_flight:
        doing = f"finishing {in_flight} request(s) queued or running (up to {grace_s:.0f} s)"
    else:
        doing = "idle; nothing to finish"
    again = "; Ctrl-C again stops at once" if signal_name == "SIGINT" else ""
    return f"{signal_name}: stopping, no new requests accepted; {doing}{again}"


def stopped_line(answered: Mapping[str, int], serving_s: float | None) -> str:
    """Said last: the answers given by status (errors and refusals included) and for how long."""
    total = sum(answered.values())
    by_status = ", ".join(f"{status}: {count:,}" for status, count in sorted(answered.items()))
    served = f"served for {_duration(serving_s)}" if serving_s is not None else "never became ready"
    return f"stopped: answered {total:,} request(s){f' ({by_status})' if total else ''}; {served}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s"


def access_line(client: str, method: str, path: str, status: int, latency_ms: float) -> str:
    """One request: who, what, the status, and arrival to last byte sent."""
    return f"{client} {method} {path} {status} {latency_ms:.1f} ms"


class AccessLog:
    """ASGI middleware, outermost: one :func:`access_line` per HTTP request once its answer has
    been sent (a stream's last event included), refusals before routing too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # 0: no answer was sent (the client went away, or the app failed before answering)

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            host, port = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            say(
                access_line(
                    f"{host}:{port}", scope["method"], path, status, (time.perf_counter() - started) * 1000
                )
            )
