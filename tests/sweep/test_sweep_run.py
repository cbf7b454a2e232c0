"""A real sweep (tiny checkpoint, eager and ONNX, locust against live servers), killed with
SIGKILL mid-run and resumed: no recorded cell is lost or repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiler.results import read_records

pytestmark = pytest.mark.slow


def _write_config(tmp_path: Path, checkpoint: Path) -> Path:
    config = tmp_path / "sweep.toml"
    config.write_text(
        'run_id = "crash"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{checkpoint}"\nformats = ["eager", "onnx"]\n'
        "[load]\ninput_lengths = [1024, 2048]\nconcurrency = [1, 2]\nstage_seconds = 1\nidle_seconds = 0.5\n"
        "[server]\nmax_batch_size = 2\nmax_wait_ms = 2\n"
    )
    return config


def _profiler() -> str:
    return str(Path(sys.executable).parent / "profiler")


def test_sweep_survives_kill_9_and_resumes_without_loss(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = _write_config(tmp_path, tiny_checkpoints["led"])
    run_dir = tmp_path / "reports" / "crash"
    results = run_dir / "results.jsonl"
    first = subprocess.Popen(
        [_profiler(), "sweep", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(read_records(results)) < 3 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep, its server and its locust: a crash
    first.wait()
    before = results.read_bytes()
    recorded = read_records(results)
    assert 3 <= len(recorded) < 8, "the sweep should be killed part-way"

    resumed = subprocess.run(
        [_profiler(), "sweep", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = read_records(results)
    complete = before[: before.rfind(b"\n") + 1]
    assert results.read_bytes().startswith(complete)  # recorded lines are never rewritten
    cells = [record["cell"] for record in after]
    assert len(cells) == len(set(cells)) == 8
    assert [r["cell"] for r in after[: len(recorded)]] == [r["cell"] for r in recorded]
    for record in after:
        stage = record["stage"]
        assert stage["requests"] > 0
        assert stage["failures"] == 0
        assert record["energy_source"] == "estimate"
        assert record["idle"]["source"] == "estimate"
        assert record["peak_rss_bytes"] > 0
        assert record["timeline"]
    assert (run_dir / "environment.json").is_file()
    assert json.loads((run_dir / "environment.json").read_text())["packages"]["torch"]
    again = subprocess.run(
        [_profiler(), "sweep", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0
    assert "already recorded" in again.stdout
