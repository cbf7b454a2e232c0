"""A whole staged run, master side, with fake workers, a fake server and a fake clock."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from profiler.loadgen.config import LoadConfig
from profiler.loadgen.coordinator import Coordinator
from profiler.loadgen.payloads import StagePayload
from profiler.loadgen.results import LoadTestResults
from profiler.loadgen.samples import Sample, from_answer, to_message
from profiler.loadgen.schedule import Timing

from .fakes import Clock, Cluster, Server, ok_sample, run_to_end

LENGTHS = (1024, 2048)


def make(
    tmp_path: Path,
    per_stage: Callable[[str, int], list[Sample]],
    nodes: tuple[str, ...] = ("w0", "w1"),
    fail_windows: bool = False,
    **overrides: object,
) -> tuple[Coordinator, Cluster, Clock, list[str], io.StringIO]:
    settings: dict[str, object] = {
        "input_lengths": LENGTHS,
        "stage_seconds": 3.0,
        # Fixed-length stages unless a test sets the rules (announcement keys = stage indices).
        "warmup_seconds": 0.0,
        "min_requests": 1,
        "stability": 0.0,
        "results": tmp_path / "results.json",
        "max_new_tokens": 4,
        **overrides,
    }
    config = LoadConfig(**settings)  # type: ignore[arg-type]
    payloads = {n: StagePayload(n, (f'{{"n": {n}}}',), "sample", ("p",)) for n in LENGTHS}
    events: list[str] = []
    clock = Clock()
    cluster = Cluster(list(nodes), per_stage, events)
    out = io.StringIO()
    coordinator = Coordinator(
        config,
        payloads,
        cluster,
        lambda host: Server(events, fail_windows),  # type: ignore[arg-type,return-value]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        wall=clock.wall,
        console=Console(file=out, width=200),
    )
    cluster.coordinator = coordinator
    return coordinator, cluster, clock, events, out


def two_workers(node: str, stage: int) -> list[Sample]:
    """w0 answers 3 requests per stage, w1 answers 2, latencies distinct per worker and stage."""
    count = 3 if node == "w0" else 2
    base = 100.0 * (stage + 1) + (0 if node == "w0" else 50)
    return [ok_sample(stage, base + i, bucket=LENGTHS[stage]) for i in range(count)]


def test_samples_from_every_worker_reach_the_results(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers)
    run_to_end(coordinator)
    results = LoadTestResults.model_validate_json((tmp_path / "results.json").read_text())
    first, second = results.stages
    assert (first.name, second.name) == ("generate@1024", "generate@2048")
    assert first.requests == second.requests == 5
    assert first.nodes == {"w0": 3, "w1": 2}
    assert sorted(first.latency_ms) == [100.0, 101.0, 102.0, 150.0, 151.0]
    assert sorted(second.latency_ms) == [200.0, 201.0, 202.0, 250.0, 251.0]
    assert first.buckets == {"1024": 5}
    assert second.buckets == {"2048": 5}
    assert first.summary.p50_ms == 102.0
    assert first.complete
    assert results.complete


def test_windows_bracket_each_stage(tmp_path: Path) -> None:
    coordinator, _, _, events, _ = make(tmp_path, two_workers, idle_seconds=2.0)
    run_to_end(coordinator)
    assert events == [
        "info",
        "energy",
        "idle 2",
        "open generate@1024",
        "start 0",
        "end 0",
        "close generate@1024",
        "open generate@2048",
        "start 1",
        "end 1",
        "close generate@2048",
    ]
    # The server counts the load generator apart from others when it runs on its machine.
    assert coordinator.control.load_generator_pids == [os.getpid()] * 2  # type: ignore[union-attr]
    results = coordinator.results
    assert results is not None
    assert results.idle is not None
    assert results.idle.total_w == 1.0
    assert results.idle_measured is True
    stage = results.stages[0]
    assert stage.window is not None
    assert stage.window.per_query is not None
    assert stage.window.per_query.gross_j == 3.0
    assert (stage.energy_source, stage.gross_j_per_query, stage.net_j_per_query) == (
        "estimate",
        3.0,
        2.25,
    )


def test_stages_last_stage_seconds_each(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers, stage_seconds=4.5)
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    for stage in results.stages:
        assert stage.load_s == pytest.approx(4.5)  # the tick sleeps to the exact end
        assert stage.duration_s >= stage.load_s
        assert stage.throughput_rps == pytest.approx(5 / stage.duration_s)
        assert stage.tokens_per_s == pytest.approx(5 * (stage.length + 2) / stage.duration_s)


def test_open_loop_reports_offered_rate_and_per_user_rate(tmp_path: Path) -> None:
    coordinator, cluster, _, _, _ = make(tmp_path, two_workers, arrival="poisson", rate=8.0)
    starts: list[dict[str, object]] = []
    original = cluster.broadcast

    def spy(message: dict[str, object]) -> None:
        if message["event"] == "start":
            starts.append(message)
        original(message)

    cluster.broadcast = spy  # type: ignore[method-assign]
    run_to_end(coordinator)
    assert starts[0]["rate_per_user"] == 2.0  # 8 req/s over 4 users
    results = coordinator.results
    assert results is not None
    assert results.stages[0].offered_rps == 8.0
    assert results.stages[0].sent_rps == pytest.approx(5 / 3.0)


def test_a_silent_worker_delays_the_stage_end_up_to_the_drain_timeout(tmp_path: Path) -> None:
    coordinator, cluster, _, _, _ = make(tmp_path, two_workers, drain_timeout=10.0)
    cluster.silent.add("w1")
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    stage = results.stages[0]
    assert not stage.complete
    assert stage.duration_s >= 10.0
    assert stage.nodes == {"w0": 3}


def test_failures_and_slo(tmp_path: Path) -> None:
    def mixed(node: str, stage: int) -> list[Sample]:
        body = b'{"error": {"type": "queue_full", "message": "the queue is full"}}'
        failed = from_answer(stage, 503, body, Timing(1.0, 1.0, 0.0), 0.0)
        return [ok_sample(stage, 900.0 if stage else 100.0), failed]

    coordinator, _, _, _, out = make(tmp_path, mixed, p99_ms=500.0, max_fail_ratio=0.25)
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    first = results.stages[0]
    assert (first.requests, first.failures) == (4, 2)
    assert first.failure_reasons == {"HTTP 503 queue_full": 2}
    assert first.latency_ms == [100.0, 100.0]  # failures keep their own list
    assert first.failed_latency_ms == [1.0, 1.0]
    assert results.slo.passed is False
    assert results.slo.violations == [
        "generate@1024: failure ratio 0.500 (2/4) > 0.25",
        "generate@2048: p99 900.0 ms > 500 ms",
        "generate@2048: failure ratio 0.500 (2/4) > 0.25",
    ]
    assert "MISSED" in out.getvalue()


def test_table_names_the_estimate(tmp_path: Path) -> None:
    coordinator, _, _, _, out = make(tmp_path, two_workers)
    run_to_end(coordinator)
    text = out.getvalue()
    assert "generate@1024" in text
    assert "generate@2048" in text
    assert "3 J (estimate)" in text
    assert "2.25 J (estimate)" in text
    assert str(tmp_path / "results.json") in text


def test_without_windows_the_run_goes_on(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers, fail_windows=True)
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    stage = results.stages[0]
    assert stage.window is None
    assert "HTTP 500" in (stage.window_error or "")
    assert stage.energy_source == "estimate"  # from GET /v1/energy
    assert stage.gross_j_per_query is None
    assert stage.requests == 5


def test_abort_mid_stage_writes_a_partial_file(tmp_path: Path) -> None:
    coordinator, _, clock, events, _ = make(tmp_path, two_workers)
    for _ in range(3):  # prepare; ramp done, first stage started; one tick into it
        coordinator.tick()
        clock.sleep(1.0)
    coordinator.abort()
    results = LoadTestResults.model_validate_json((tmp_path / "results.json").read_text())
    assert results.complete is False
    assert [stage.name for stage in results.stages] == ["generate@1024"]
    assert results.stages[0].requests == 5
    assert not results.stages[0].complete
    assert events[-1] == "close generate@1024"  # the window was not left open
    coordinator.abort()  # idempotent
    assert coordinator.tick() is None


def test_a_new_run_starts_afresh(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers)
    run_to_end(coordinator)
    coordinator.reset()
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    assert [stage.requests for stage in results.stages] == [5, 5]


def test_stragglers_of_an_earlier_run_are_dropped(tmp_path: Path) -> None:
    coordinator, _, _, _, _ = make(tmp_path, two_workers)
    coordinator.tick()
    stale = to_message(0, [ok_sample(0, 5.0)], final=True, run="an-earlier-run")
    coordinator.receive("w0", stale)
    assert coordinator.collectors == {}
