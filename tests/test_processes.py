"""Children die with their parent even when it is killed with SIGKILL, and an address that cannot
be listened on is refused with what holds it or what to give instead (real processes, real CLI)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

from profiler.server.launch import PortInUseError, bind_listener, ensure_port_free, start_listening

PROFILER = str(Path(sys.executable).parent / "profiler")
HOLD_A_PORT = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "print(s.getsockname()[1], flush=True); time.sleep(120)"
)


def gone(pid: int, within_s: float = 5.0) -> bool:
    """The process exited (a zombie waiting for init to reap it counts: it holds nothing)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _orphan_after_kill_9(script: str) -> int:
    """Run ``script`` (it prints its child's pid), SIGKILL it, and return that child's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not gone(child, within_s=0.2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return child


@pytest.mark.integration
def test_a_popen_child_dies_with_its_parent_killed_by_sigkill() -> None:
    child = _orphan_after_kill_9(
        """
        import subprocess, time
        from profiler.processes import dies_with_this_process
        child = subprocess.Popen(["sleep", "60"], preexec_fn=dies_with_this_process())
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    assert gone(child)


@pytest.mark.integration
def test_a_forked_child_dies_with_its_parent_killed_by_sigkill() -> None:
    """As locust's --processes workers do once loadtests/scrolls.py is imported."""
    child = _orphan_after_kill_9(
        """
        import os, time
        from profiler.processes import forks_die_with_this_process
        forks_die_with_this_process()
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
        time.sleep(60)
        """
    )
    assert gone(child)


@pytest.mark.integration
def test_a_child_whose_parent_died_before_it_asked_exits_at_once() -> None:
    """The race: the parent died between fork and prctl, so no signal would ever come."""
    script = "from profiler.processes import die_with; die_with(1); print('still running')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (1, "")


@pytest.fixture
def held_port() -> Iterator[tuple[int, int]]:
    """(pid, port) of another process listening on 127.0.0.1."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_PORT], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    port = int(holder.stdout.readline())
    yield holder.pid, port
    holder.kill()
    holder.wait()


@pytest.mark.integration
def test_a_held_port_names_the_holder(held_port: tuple[int, int]) -> None:
    pid, port = held_port
    with pytest.raises(PortInUseError) as info:
        ensure_port_free("127.0.0.1", port)
    message = str(info.value)
    assert f"port {port} is held by pid {pid} ({sys.executable} -c import socket" in message
    assert f"stop it (kill {pid}) or pick another port" in message
    assert "\n" not in message


def test_a_port_in_time_wait_is_free() -> None:
    """After a server closed its connections first, its port may be bound again (as uvicorn does)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end goes to TIME_WAIT
            client.recv(1)
    ensure_port_free("127.0.0.1", port)


@pytest.mark.integration
def test_serve_on_a_held_port_says_who_holds_it(held_port: tuple[int, int], tmp_path: Path) -> None:
    pid, port = held_port
    result = subprocess.run(
        [PROFILER, "serve", str(tmp_path), "--port", str(port)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: cannot listen on 127.0.0.1:{port}: port {port} is held by pid {pid}"
    )
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "Errno" not in result.stderr
    assert result.stdout == ""  # nothing claimed to serve (or warm up) first


def test_a_port_taken_between_bind_and_listen_is_the_same_one_line() -> None:
    """Two servers started at once both bind (SO_REUSEADDR); whichever listens second is told who won."""
    with socket.socket() as first:
        first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        second = bind_listener("127.0.0.1", port)  # neither listens yet: the bind succeeds
        first.listen()
        with pytest.raises(PortInUseError) as info:
            start_listening(second, "127.0.0.1")
    assert f"cannot listen on 127.0.0.1:{port}: port {port} is held by pid {os.getpid()}" in str(info.value)
    assert second.fileno() == -1  # closed


@pytest.mark.integration
@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("999.1.1.1", "is not an IP address or a name that resolves"),
        ("no-such-host.invalid", "is not an IP address or a name that resolves"),
        ("192.0.2.1", "is not an address of this machine"),  # TEST-NET-1: never a local address
    ],
)
def test_serve_on_a_bad_host_says_what_to_give(host: str, why: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [PROFILER, "serve", str(tmp_path), "--host", host], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: host {host!r} {why}")
    assert "127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)" in result.stderr
    assert "port" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.integration
def test_sweep_on_a_held_port_says_who_holds_it(
    held_port: tuple[int, int], tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    pid, port = held_port
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'run_id = "held"\n[[models]]\nname = "led"\ncheckpoint = "{tiny_checkpoints["led"]}"\n'
        f'formats = ["eager"]\n[load]\ninput_lengths = [1024]\nconcurrency = [1]\n[server]\nport = {port}\n'
    )
    result = subprocess.run([PROFILER, "sweep", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} is held by pid {pid}" in result.stderr
    assert f"kill {pid}" in result.stderr
    assert not (tmp_path / "reports" / "held" / "results.jsonl").exists()
