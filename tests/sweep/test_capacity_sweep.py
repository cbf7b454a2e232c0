"""A real capacity sweep: a live server, locust searching open-loop rates, then the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from profiler.rundir import RunDirectory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_capacity_sweep_records_every_probe_and_the_report_shows_it(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(
        'run_id = "capacity"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{tiny_checkpoints["led"]}"\nformats = ["eager"]\n'
        "[load]\ninput_lengths = [1024]\nmax_new_tokens = 4\nstage_seconds = 1\nidle_seconds = 0\n"
        "min_requests = 2\nstability = 0\nwarmup_seconds = 0.5\n"
        # A bound the tiny model meets at every rate probed: the search climbs 1, 2, 4 and stops at
        # its max_rps, so the answer is a floor (">= 4") reached in three probes.
        "[capacity]\nlatency_ms = 60000\nstart_rps = 1\nmax_rps = 4\n"
    )
    profiler = str(Path(sys.executable).parent / "profiler")
    sweep = subprocess.run(
        [profiler, "sweep", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    run_dir = tmp_path / "reports" / "capacity"
    files = RunDirectory(run_dir)
    (record,) = files.capacity.read()
    assert record.cell == "tiny-led|eager|capacity|repeat 1|1024"
    found = record.capacity
    rates = [probe.offered_rps for probe in found.probes]
    if all(probe.passed for probe in found.probes):
        assert rates == [1.0, 2.0, 4.0]
        assert (found.sustained_rps, found.lowest_failing_rps, found.bracketed) == (4.0, None, False)
        sustained = ">= 4"
    else:  # a busy machine can fail a probe (arrivals unsent, or slow): it says why
        failed = [probe for probe in found.probes if not probe.passed]
        assert all(probe.why for probe in failed)
        assert found.lowest_failing_rps == min(probe.offered_rps for probe in failed)
        assert rates[0] == 1.0
        sustained = f"{found.sustained_rps:.3f}"
    assert found.sustained_rps is not None  # 1 req/s within a minute: the tiny model always can
    assert found.goodput_rps is not None
    assert found.goodput_rps > 0
    assert found.j_per_good_query is not None
    assert found.energy_source == "estimate"
    assert not files.results.path.exists()  # probes live in their search's record, not as cells

    report = subprocess.run(
        [profiler, "report", str(run_dir)], capture_output=True, text=True, timeout=120, check=False
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert "Capacity: the highest open-loop rate within the SLO" in report.stdout
    assert sustained in report.stdout
    assert (run_dir / "latency_vs_offered_rate.png").stat().st_size > 0
    resumed = subprocess.run(
        [profiler, "sweep", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "already recorded" in resumed.stdout
