"""The run as the web UI shows it: each stage's state, time left and figures, against the results."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.loadgen.live import read_status, table_rows, write_status

from .fakes import run_to_end
from .test_coordinator import make, two_workers


def test_live_follows_the_run_and_ends_on_the_results_files_figures(tmp_path: Path) -> None:
    coordinator, _, clock, _, _ = make(tmp_path, two_workers, stage_seconds=3.0)
    before = coordinator.live()
    assert [(stage.name, stage.state) for stage in before.stages] == [
        ("generate@1024", "waiting"),
        ("generate@2048", "waiting"),
    ]
    assert before.results_path is None
    coordinator.tick()  # asks the server, spawns the users
    clock.sleep(1.0)
    coordinator.tick()  # the users are up: the first stage starts (no warm-up here)
    clock.sleep(1.0)
    status = coordinator.live()
    assert status.current == "generate@1024"
    assert status.results_path == str(tmp_path / "results.json")
    assert not status.results_written
    first, second = status.stages
    assert (first.state, second.state) == ("running", "waiting")
    assert (first.elapsed_s, first.least_left_s, first.cap_left_s) == (1.0, 2.0, 299.0)
    assert (first.requests, first.failures) == (5, 0)
    assert first.p50_ms == 102.0  # of the five latencies the fake workers sent
    assert first.tokens_per_s == pytest.approx(5 * (1024 + 2) / 1.0)
    # No window yet: the requests' own shares (0.25 J each in the fakes), labelled as such.
    assert (first.j_per_query, first.energy_source, first.energy_basis) == (
        0.25,
        "estimate",
        "requests so far",
    )
    rows = table_rows(status)
    assert rows[0]["time"] == "1 s: >= 2 s left (cap in 299 s)"
    assert rows[0]["j_per_query"] == "0.25 J (estimate), per request so far"
    assert rows[1]["state"] == "waiting"
    assert rows[-1] == {
        "name": "results file",
        "state": f"{tmp_path / 'results.json'} (written when the run ends)",
    }

    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    done = coordinator.live()
    assert done.results_written
    for stage, result in zip(done.stages, results.stages, strict=True):
        assert (stage.name, stage.state, stage.end_reason) == (result.name, "done", "measured")
        assert (stage.requests, stage.p50_ms, stage.p99_ms) == (
            result.requests,
            result.summary.p50_ms,
            result.summary.p99_ms,
        )
        assert stage.tokens_per_s == result.tokens_per_s
        assert (stage.j_per_query, stage.energy_basis) == (result.gross_j_per_query, "window")
    rows = table_rows(done)
    assert rows[0]["j_per_query"] == "3 J (estimate)"
    assert rows[0]["state"] == "done (measured)"
    assert rows[-1]["state"] == f"{tmp_path / 'results.json'} (written)"


def test_past_its_least_time_a_stage_says_what_it_lacks(tmp_path: Path) -> None:
    coordinator, _, clock, _, _ = make(
        tmp_path, two_workers, stage_seconds=2.0, min_requests=100, max_stage_seconds=10.0, stability=0.1
    )
    for _ in range(5):
        coordinator.tick()
        clock.sleep(1.0)
    running = coordinator.live().stages[0]
    assert running.state == "running"
    assert running.least_left_s == 0.0
    assert running.lacking == ["5 of 100 requests", "stability"]
    elapsed, cap = f"{running.elapsed_s:.0f}", f"{running.cap_left_s:.0f}"
    assert table_rows(coordinator.live())[0]["time"] == (
        f"{elapsed} s: waits for 5 of 100 requests, stability (cap in {cap} s)"
    )


def test_a_refused_start_is_shown(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers)
    coordinator.configure(coordinator.config, {})  # no bodies: as with the web UI and no --host yet
    assert coordinator.tick() is None
    status = coordinator.live()
    assert status.error is not None
    assert table_rows(status)[0] == {"name": "not started", "state": status.error}


def test_a_status_file_reads_back_as_written_and_is_none_before_or_when_foreign(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers)
    path = tmp_path / "status.json"
    assert read_status(path) is None  # not written yet
    status = coordinator.live()
    write_status(status, path)
    assert read_status(path) == status
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    path.write_text('{"phase": "stage"}')  # not a status: shown as nothing, never a crash
    assert read_status(path) is None


def test_the_coordinator_rewrites_its_status_file_at_every_tick(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    coordinator, _, clock, _, _ = make(tmp_path, two_workers, status_file=path)
    phases = []
    seen = []
    while coordinator.tick() is not None:
        status = read_status(path)
        assert status is not None
        phases.append(status.phase)
        seen.append([(stage.name, stage.state, stage.requests) for stage in status.stages])
        clock.sleep(1.0)
    final = read_status(path)
    assert final is not None
    assert final.phase == "done"
    assert final.results_written
    assert phases[0] == "ramp"
    assert ("generate@1024", "running", 5) in {row for rows in seen for row in rows}
    assert ("generate@2048", "running", 5) in {row for rows in seen for row in rows}
    assert [(stage.name, stage.state, stage.requests) for stage in final.stages] == [
        ("generate@1024", "done", 5),
        ("generate@2048", "done", 5),
    ]
