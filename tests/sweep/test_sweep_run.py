"""A real sweep (tiny checkpoint, eager and ONNX, locust against live servers, accuracy scored on
each live server), killed with SIGKILL mid-run and resumed: no recorded cell or score is lost or
repeated, and no child outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from test_processes import gone

from profiler.results import ResultRecord
from profiler.rundir import RunDirectory
from profiler.server.launch import ensure_port_free, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = Path(__file__).parents[2] / "profiler" / "data" / "sample.jsonl"


def _write_config(tmp_path: Path, checkpoint: Path) -> Path:
    config = tmp_path / "sweep.toml"
    config.write_text(
        'run_id = "crash"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{checkpoint}"\nformats = ["eager", "onnx"]\n'
        "[load]\ninput_lengths = [1024, 2048]\nconcurrency = [1, 2]\nstage_seconds = 1\nidle_seconds = 0.5\n"
        "min_requests = 1\nstability = 0\nwarmup_seconds = 0\n"
        "[server]\nmax_batch_size = 2\nmax_wait_ms = 2\n"
        f'[accuracy]\ndataset = "{SAMPLE}"\ntask = "qasper"\nmax_new_tokens = 8\n'
    )
    return config


def _profiler() -> str:
    return str(Path(sys.executable).parent / "profiler")


def _resume(run_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_profiler(), "sweep", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_sweep_survives_kill_9_and_resumes_without_loss(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = _write_config(tmp_path, tiny_checkpoints["led"])
    run_dir = tmp_path / "reports" / "crash"
    store = RunDirectory(run_dir).results
    results = store.path
    first = subprocess.Popen(
        [_profiler(), "sweep", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(store.read()) < 3 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep, its server and its locust: a crash
    first.wait()
    before = results.read_bytes()
    recorded = store.read()
    assert 3 <= len(recorded) < 8, "the sweep should be killed part-way"

    resumed = _resume(run_dir, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.splitlines()[-1] == f"next: profiler report {run_dir}"
    after = store.read()
    complete = before[: before.rfind(b"\n") + 1]
    assert results.read_bytes().startswith(complete)  # recorded lines are never rewritten
    cells = [record.cell for record in after]
    assert len(cells) == len(set(cells)) == 8
    assert [r.cell for r in after[: len(recorded)]] == [r.cell for r in recorded]
    for record in after:
        assert record.stage.requests > 0
        assert record.stage.failures == 0
        assert record.stage.energy_source == "estimate"
        assert record.idle is not None
        assert record.idle.source == "estimate"
        assert record.peak_rss_bytes is not None
        assert record.peak_rss_bytes > 0
        assert record.timeline
        # The stage's window says what else used the machine, locust counted apart from others.
        window = record.stage.window
        assert window is not None
        assert window.contention is not None
        assert (window.contention.load_generator_cpu_s or 0) > 0
    # What the sweep wrote is exactly what the one record type writes: it round-trips byte for byte.
    for line in results.read_text().splitlines():
        assert ResultRecord.model_validate_json(line).model_dump_json() == line
    assert RunDirectory(run_dir).read_environment().packages["torch"]
    # Each format scored once at each length, on its live server: the same tokens, the same score.
    scores = {(s.model, s.format, s.input_length): s for s in RunDirectory(run_dir).accuracy.read()}
    assert sorted(scores) == [("tiny-led", f, n) for f in ("eager", "onnx") for n in (1024, 2048)]
    assert len(RunDirectory(run_dir).accuracy.read()) == 4
    for n in (1024, 2048):
        eager, onnx = scores["tiny-led", "eager", n], scores["tiny-led", "onnx", n]
        assert (eager.task, eager.count) == ("qasper", 8)
        assert eager.metrics == onnx.metrics
    again = _resume(run_dir, timeout=120)
    assert again.returncode == 0
    assert "already recorded" in again.stdout


def test_kill_9_on_the_sweep_alone_leaves_no_child_and_no_port_held(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """Only the sweep's pid is killed: its server, locust master and forked workers must follow."""
    port, master_port = free_port(), free_port()
    config = tmp_path / "sweep.toml"
    config.write_text(
        'run_id = "orphans"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{tiny_checkpoints["led"]}"\nformats = ["eager"]\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\nstage_seconds = 1\nidle_seconds = 0\n"
        "min_requests = 1\nstability = 0\nwarmup_seconds = 0\n"
        f"[server]\nmax_batch_size = 2\nport = {port}\n"
        f"[locust]\nprocesses = 2\nmaster_bind_port = {master_port}\n"
    )
    sweep = subprocess.Popen(
        [_profiler(), "sweep", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    tree = psutil.Process(sweep.pid)
    deadline = time.monotonic() + 180
    master = None
    while master is None and time.monotonic() < deadline and sweep.poll() is None:
        with contextlib.suppress(psutil.Error):
            master = next(
                (p for p in tree.children() if "locust" in p.cmdline() and len(p.children()) == 2), None
            )
        time.sleep(0.1)
    assert master is not None, "locust and its two workers should be running"
    children = tree.children(recursive=True)
    assert len(children) >= 4  # the server, the locust master and its two workers
    listening = [c.laddr.ip for c in master.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert listening == ["127.0.0.1"]  # --processes: no remote worker may join

    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    survivors = [child for child in children if not gone(child.pid, within_s=10)]
    assert not survivors, [child.cmdline() for child in survivors]
    ensure_port_free("127.0.0.1", port)
    ensure_port_free("127.0.0.1", master_port)

    run_dir = tmp_path / "reports" / "orphans"
    resumed = _resume(run_dir, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.splitlines()[-1] == f"next: profiler report {run_dir}"
    assert len(RunDirectory(run_dir).results.read()) == 1
    assert not (run_dir / "locust-results.json").exists()
