"""A real sweep (tiny LED, eager, locust against a live server) draws its stage's successful
requests as they come, read from the load test's status file, and removes that file at the end."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from profiler.rundir import RunDirectory
from profiler.sweep.config import load_config
from profiler.sweep.runner import Sweep, new_run_dir

pytestmark = [pytest.mark.integration]


def test_a_sweeps_progress_shows_each_stages_requests_advancing(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(
        'run_id = "progress"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{tiny_checkpoints["led"]}"\nformats = ["eager"]\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\nstage_seconds = 4\nidle_seconds = 0\n"
        "min_requests = 200\nmax_stage_seconds = 6\nstability = 0\nwarmup_seconds = 0\nmax_new_tokens = 2\n"
        "[server]\nmax_batch_size = 1\n"
    )
    settings = load_config(config)
    run_dir = new_run_dir(settings, config)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=220, color_system=None)
    assert Sweep(settings, run_dir, console).run() == 1
    text = out.getvalue()
    counts = [
        int(n) for n in re.findall(r"generate@1024: (\d+)/200 requests, \d+ s \(min 4 s, cap 6 s\)", text)
    ]
    assert len(set(counts)) >= 2, text[-2000:]  # seen more than once, at different counts
    assert counts == sorted(counts)  # never backwards
    assert "1/1 cells" in text
    assert not RunDirectory(run_dir).locust_status.exists()
