"""When a stage ends: time, successful requests and stability, with a cap; and the warm-up before it."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from profiler.errors import ConfigError
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.samples import Sample
from profiler.loadgen.stopping import StageRules, end_reason, is_stable, measurement_windows
from profiler.stats import samples_for
from profiler.validation import flag, validated

from .fakes import Clock, ok_sample, run_to_end
from .test_coordinator import LENGTHS, make

RULES = StageRules(stage_seconds=10, min_requests=30, max_stage_seconds=60, window_requests=10, stability=0.1)


def steady(count: int, gap_s: float = 0.5, latency_ms: float = 100.0) -> tuple[list[float], list[float]]:
    """``count`` requests answered every ``gap_s`` seconds, each taking ``latency_ms``."""
    return [gap_s * (i + 1) for i in range(count)], [latency_ms] * count


def test_windows_cut_requests_in_completion_order() -> None:
    completed = [3.0, 1.0, 2.0, 4.0, 6.0, 5.0, 7.0]  # out of order, as workers ship them
    latency = [30.0, 10.0, 20.0, 40.0, 60.0, 50.0, 70.0]
    windows = measurement_windows(completed, latency, 3)
    assert len(windows) == 2  # the 7th request is a partial window, left out
    first, second = windows
    assert (first.seconds, first.throughput_rps, first.p50_ms) == (3.0, 1.0, 20.0)
    assert (second.seconds, second.throughput_rps, second.p50_ms) == (3.0, 1.0, 50.0)


def test_stability_needs_three_agreeing_windows() -> None:
    completed, latency = steady(30)
    windows = measurement_windows(completed, latency, 10)
    closed = partial(is_stable, open_loop=False)
    assert closed(windows[:2], 0.1) is None  # too few to judge
    assert closed(windows, 0.1) is True
    slower = latency[:20] + [130.0] * 10  # the last window's p50 is 30% above the others'
    assert closed(measurement_windows(completed, slower, 10), 0.1) is False
    assert closed(measurement_windows(completed, slower, 10), 0.2) is True


def test_open_loop_windows_need_agree_on_latency_only() -> None:
    # Poisson-like gaps: the windows' throughput differs by far more than 10%, the latency not at all.
    gaps = [0.1] * 10 + [0.3] * 10 + [0.2] * 10
    completed = [sum(gaps[: i + 1]) for i in range(30)]
    windows = measurement_windows(completed, [100.0] * 30, 10)
    assert is_stable(windows, 0.1, open_loop=False) is False
    assert is_stable(windows, 0.1, open_loop=True) is True


def test_a_stage_ends_once_it_has_time_requests_and_stability() -> None:
    completed, latency = steady(30)
    ends = partial(end_reason, open_loop=False)
    assert ends(9.9, completed, latency, RULES) is None  # too early
    assert ends(10.0, completed[:29], latency[:29], RULES) is None  # too few
    assert ends(10.0, completed, latency, RULES) == "measured"
    drifting = [100.0 + 5 * i for i in range(30)]  # latency keeps growing: never stable
    assert ends(30.0, completed, drifting, RULES) is None
    assert ends(60.0, completed, drifting, RULES) == "cap"
    assert ends(60.0, completed[:3], latency[:3], RULES) == "cap"
    no_check = RULES.model_copy(update={"stability": 0.0})
    assert ends(10.0, completed, drifting, no_check) == "measured"


def test_an_open_loop_stage_whose_latency_keeps_rising_ends_overloaded() -> None:
    completed, _ = steady(30)
    growing = [100.0 + 10 * i for i in range(30)]  # a queue that grows: window p50s 145, 245, 345
    assert end_reason(10.0, completed, growing, RULES, open_loop=True) == "overloaded"
    assert end_reason(9.9, completed, growing, RULES, open_loop=True) is None  # minimums first
    assert end_reason(30.0, completed, growing, RULES, open_loop=False) is None  # closed loop waits
    # Rising, but by less than the tolerance over the three windows: not yet a verdict.
    creeping = [100.0 + 0.2 * i for i in range(30)]
    assert end_reason(10.0, completed, creeping, RULES, open_loop=True) == "measured"
    # Over the tolerance but not rising one window after the other: noise, so it waits.
    jumpy = [100.0] * 10 + [150.0] * 10 + [130.0] * 10
    assert end_reason(10.0, completed, jumpy, RULES, open_loop=True) is None


def test_the_default_minimum_supports_a_p99() -> None:
    assert StageRules().min_requests == samples_for(99.0) == 100
    assert (samples_for(50.0), samples_for(90.0)) == (2, 10)


def test_a_cap_below_the_minimum_time_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        validated(LoadConfig, {"stage_seconds": 30.0, "max_stage_seconds": 10.0}, flag)
    assert "max_stage_seconds (10) is below stage_seconds (30)" in str(info.value)
    assert "\n" not in str(info.value)


def test_warmup_requests_never_reach_the_figures_or_the_energy_window(tmp_path: Path) -> None:
    def per_announcement(node: str, key: int) -> list[Sample]:
        # Announcements alternate warm-up, stage: a warm-up's requests are slow (cold), 999 ms.
        latency = 999.0 if key % 2 == 0 else 100.0 + key
        return [ok_sample(key, latency, bucket=LENGTHS[key // 2])]

    coordinator, _, _, events, _ = make(
        tmp_path, per_announcement, nodes=("w0",), warmup_seconds=2.0, stage_seconds=3.0
    )
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    assert [stage.latency_ms for stage in results.stages] == [[101.0], [103.0]]
    assert [stage.warmup_requests for stage in results.stages] == [1, 1]
    # Each warm-up is drained before its stage's energy window opens.
    server_and_stages = [e for e in events if e.split()[0] in ("start", "end", "open", "close")]
    assert server_and_stages[:6] == [
        "start 0",
        "end 0",
        "open generate@1024",
        "start 1",
        "end 1",
        "close generate@1024",
    ]


def test_a_stage_short_of_requests_runs_to_its_cap_and_says_so(tmp_path: Path) -> None:
    coordinator, *_ = make(
        tmp_path,
        lambda node, key: [ok_sample(key, 100.0)],
        nodes=("w0",),
        min_requests=5,
        max_stage_seconds=7.0,
    )
    run_to_end(coordinator)
    results = coordinator.results
    assert results is not None
    for stage in results.stages:
        assert stage.end_reason == "cap"
        assert stage.load_s == pytest.approx(7.0)
        assert stage.enough_requests is False
        assert stage.rules is not None
        assert stage.rules.min_requests == 5


def test_a_stable_stage_ends_at_its_minimum_an_unstable_one_at_its_cap_an_overloaded_one_at_once(
    tmp_path: Path,
) -> None:
    clock_of: dict[str, Clock] = {}

    def answers(latencies: list[float]) -> list[Sample]:
        """Requests answered every 0.1 s from the stage's start, with these latencies."""
        start = clock_of["clock"].wall()
        return [
            dataclasses.replace(ok_sample(0, ms), sent_wall_s=start + 0.1 * (i + 1) - ms / 1000)
            for i, ms in enumerate(latencies)
        ]

    growing = [50.0 + 5 * i for i in range(30)]  # window p50s 72, 122, 172: a growing queue
    closed: dict[str, Any] = {}
    poisson: dict[str, Any] = {"arrival": "poisson", "rate": 10.0}
    for latencies, reason, load_s, open_loop in (
        ([50.0] * 30, "measured", 3.0, closed),
        ([50.0 + i for i in range(30)], "cap", 9.0, closed),
        (growing, "cap", 9.0, closed),  # closed loop: no queue grows without bound, so it waits
        (growing, "overloaded", 3.0, poisson),
    ):
        coordinator, _, clock, _, _ = make(
            tmp_path,
            partial(lambda latencies, node, key: answers(latencies), latencies),
            nodes=("w0",),
            input_lengths=(1024,),
            **open_loop,
            min_requests=30,
            window_requests=10,
            stability=0.1,
            max_stage_seconds=9.0,
        )
        clock_of["clock"] = clock
        run_to_end(coordinator)
        results = coordinator.results
        assert results is not None
        (stage,) = results.stages
        assert (stage.end_reason, stage.stable) == (reason, reason == "measured")
        assert stage.load_s == pytest.approx(load_s)
        assert [w.requests for w in stage.windows] == [10, 10, 10]


def test_stability_is_judged_on_the_requests_answered_under_load_not_the_drain() -> None:
    # Four users, a request answered every 0.1 s while the stage sends load; then the drain: the
    # last requests in flight come back one by one, slower (as a batch of four empties), after the
    # end. They count in the latencies, not in the stability windows.
    from profiler.loadgen.results import StageRun, stage_result

    loaded = [dataclasses.replace(ok_sample(0, 50.0), sent_wall_s=0.1 * (i + 1) - 0.05) for i in range(30)]
    drained = [dataclasses.replace(ok_sample(0, 300.0), sent_wall_s=3.0 + 0.3 * i) for i in range(10)]
    run = StageRun(index=0, name="generate@1024", length=1024, duration_s=6.3, load_s=3.0)
    stage = stage_result(run, loaded + drained, "estimate", RULES.model_copy(update={"min_requests": 30}))
    assert len(stage.latency_ms) == 40
    assert [w.requests for w in stage.windows] == [10, 10, 10]
    assert stage.stable is True
