"""Start `profiler serve` in a child process, wait until it is ready, stop it gracefully.

Used by the benchmarks, the sweep and the tests: the server always runs as a user would run it.
"""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]

from profiler.client import ServerClient
from profiler.errors import ProfilerError, last_words
from profiler.processes import dies_with_this_process


class ServerStartError(ProfilerError):
    """The server exited or never became ready; the message holds its log tail."""


class PortInUseError(ProfilerError):
    """The address cannot be listened on; the message says what to do."""


#: What to give instead of a host that cannot be listened on.
HOST_HINT = "give an address of this machine: 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)"


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or one line saying why it cannot be.

    `profiler serve` binds before it loads the model, so a busy port or a bad host is refused
    before anything is loaded or claims to serve, and then hands the socket to uvicorn. It sets
    SO_REUSEADDR as uvicorn does, so only a listener fails it, not a port that a stopped server
    left in TIME_WAIT.

    Raises:
        PortInUseError: the host does not resolve or is not this machine's, or the port is taken.
    """
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except socket.gaierror as exc:
        listener.close()
        raise PortInUseError(
            f"host {host!r} is not an IP address or a name that resolves ({exc.strerror}); {HOST_HINT}."
        ) from exc
    except OSError as exc:
        listener.close()
        raise _unusable(host, port, exc) from exc
    return listener


def start_listening(listener: socket.socket, host: str, backlog: int = 2048) -> None:
    """Listen on a socket from :func:`bind_listener`: the moment the port is really taken.

    Another process that bound the same port with SO_REUSEADDR meanwhile (two servers started at
    once) may have listened first; that is the same one-line error as at bind time.

    Raises:
        PortInUseError: the port was taken since it was bound.
    """
    port = listener.getsockname()[1]
    try:
        listener.listen(backlog)
    except OSError as exc:
        listener.close()
        raise _unusable(host, port, exc) from exc


def _unusable(host: str, port: int, exc: OSError) -> PortInUseError:
    """The error for an address that cannot be bound or listened on."""
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
        return PortInUseError(
            f"host {host!r} is not an address of this machine ({exc.strerror}); {HOST_HINT}."
        )
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(f"cannot listen on {host}:{port}: {_holder(port)}")
    return PortInUseError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another port.")


def ensure_port_free(host: str, port: int) -> None:
    """Fail before starting a sweep when the host or port cannot be listened on (see
    :func:`bind_listener`)."""
    bind_listener(host, port).close()


def _holder(port: int) -> str:
    """Who listens on ``port``, and what to do about it (a pid is only seen where permitted)."""
    try:
        pids = {
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        }
        if pids:
            pid = min(pids)
            command = " ".join(" ".join(psutil.Process(pid).cmdline()).split())  # one line
            if len(command) > 160:
                command = command[:157] + "..."
            return (
                f"port {port} is held by pid {pid} ({command}), perhaps left from an earlier run; "
                f"stop it (kill {pid}) or pick another port."
            )
    except psutil.Error:
        pass
    return f"port {port} is in use (no listener this user can see); stop what uses it or pick another port."


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago on ``host``."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A running `profiler serve` child."""

    url: str
    process: subprocess.Popen[str]
    log: Path

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM (the server drains and exits 0), then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(
    model: Path,
    *args: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    log: Path | None = None,
    ready_timeout: float = 300,
) -> ServerProcess:
    """Start `profiler serve MODEL ARGS` and return once ``/readyz`` answers 200.

    The server gets SIGTERM when this process dies, even by SIGKILL, so it cannot be orphaned
    holding its port; call this from a thread that outlives the server (the kernel watches it).

    Raises:
        ServerStartError: the process exited or was not ready in time (with its log tail).
    """
    port = port or free_port(host)
    log = log or Path(f"/tmp/profiler-serve-{port}.log")
    command = [
        str(Path(sys.executable).parent / "profiler"),
        "serve",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        *args,
    ]
    handle = log.open("w", encoding="utf-8")
    process = subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call, see profiler.processes
    )
    handle.close()
    server = ServerProcess(f"http://{host}:{port}", process, log)
    deadline = time.monotonic() + ready_timeout
    with ServerClient(server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"the server exited with status {process.returncode}: {last_words(log)} (its log: {log})"
                )
            if client.ready():
                return server
            time.sleep(0.2)
    server.stop()
    raise ServerStartError(
        f"the server was not ready after {ready_timeout:.0f} s: {last_words(log)} (its log: {log})"
    )
