"""The capacity search: bracketing and bisection, probes judged against the SLO, and a whole staged
run against a server whose latency we set from the offered rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from profiler.errors import ConfigError
from profiler.loadgen.capacity import CapacitySearch, SearchSpec, Slo, capacity_of, judge
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.results import LoadTestResults
from profiler.loadgen.samples import Sample
from profiler.validation import flag, validated

from .fakes import ok_sample, run_to_end
from .test_coordinator import make

SLO = Slo(latency_ms=200.0, percentile=99, max_fail_ratio=0.01)


def search_for(capacity: float, spec: SearchSpec) -> tuple[CapacitySearch, list[float]]:
    """Run the search against a server that meets the SLO exactly up to ``capacity`` req/s."""
    search, probed = CapacitySearch(spec), []
    while (rate := search.next_rate()) is not None:
        probed.append(rate)
        search.record(rate, rate <= capacity)
    return search, probed


@pytest.mark.parametrize("capacity", [0.37, 1.0, 7.3, 50.0])
def test_the_search_brackets_a_known_capacity_within_its_tolerance(capacity: float) -> None:
    spec = SearchSpec(start_rps=1.0, tolerance=0.1, max_probes=20)
    search, probed = search_for(capacity, spec)
    assert search.passing is not None
    assert search.failing is not None
    assert search.passing <= capacity < search.failing
    assert search.failing <= search.passing * 1.1
    assert len(probed) <= 12  # doubling or halving, then log bisection: a handful per decade


def test_the_search_stops_at_its_bounds_and_its_probe_budget() -> None:
    search, probed = search_for(1e9, SearchSpec(start_rps=1.0, max_rps=8.0))
    assert (probed, search.failing) == ([1.0, 2.0, 4.0, 8.0], None)  # "at least 8 req/s"
    search, probed = search_for(0.0, SearchSpec(start_rps=1.0, min_rps=0.2))
    assert (probed, search.passing) == ([1.0, 0.5, 0.25, 0.2], None)  # "below 0.2 req/s"
    _, probed = search_for(7.3, SearchSpec(max_probes=3))
    assert len(probed) == 3


def test_a_probe_is_judged_on_its_percentile_failures_and_what_was_sent() -> None:
    common: dict[str, Any] = {"stage": "s", "offered_rps": 2.0, "duration_s": 10.0, "energy_source": "rapl"}
    fast = judge(SLO, sent_rps=2.0, unsent=0, latency_ms=[100.0] * 20, failures=0, window_j=40.0, **common)
    assert (fast.passed, fast.good, fast.goodput_rps, fast.j_per_good_query) == (True, 20, 2.0, 2.0)
    slow = judge(
        SLO, sent_rps=2.0, unsent=0, latency_ms=[100.0] * 19 + [900.0], failures=0, window_j=40.0, **common
    )
    assert not slow.passed
    assert slow.why is not None
    assert slow.why.startswith("p99 ")
    assert slow.good == 19  # the slow one is not good; the window still paid for it
    assert slow.j_per_good_query == pytest.approx(40.0 / 19)
    failing = judge(SLO, sent_rps=2.0, unsent=0, latency_ms=[100.0] * 19, failures=1, window_j=None, **common)
    assert failing.why == "failure ratio 0.050 > 0.01"
    unsent = judge(SLO, sent_rps=1.2, unsent=8, latency_ms=[100.0] * 12, failures=0, window_j=None, **common)
    assert unsent.why == "sent 1.20 of 2 req/s offered (8 arrivals unsent)"
    # A Poisson schedule that happened to draw fewer arrivals was still offered in full.
    sparse = judge(SLO, sent_rps=1.6, unsent=0, latency_ms=[100.0] * 16, failures=0, window_j=None, **common)
    assert sparse.passed


def test_capacity_flags_need_open_loop_without_a_rate() -> None:
    with pytest.raises(ConfigError) as info:
        validated(LoadConfig, {"capacity_latency_ms": 500.0}, flag)
    assert "--capacity-latency-ms searches open-loop rates itself" in str(info.value)
    config = validated(LoadConfig, {"capacity_latency_ms": 500.0, "arrival": "poisson"}, flag)
    plan = config.capacity()
    assert plan is not None
    assert plan[0] == Slo(latency_ms=500.0)


def test_a_staged_run_finds_the_rate_the_server_sustains(tmp_path: Path) -> None:
    """The fake server answers in 100 ms up to 6 req/s offered and in 1 s above: capacity 6."""
    offered: dict[int, float] = {}

    def answers(node: str, key: int) -> list[Sample]:
        rate = offered[key]
        latency = 100.0 if rate <= 6.0 else 1000.0
        return [ok_sample(key, latency) for _ in range(math.ceil(rate * 4))]  # 4 s of load

    coordinator, cluster, _, _, out = make(
        tmp_path,
        answers,
        nodes=("w0",),
        input_lengths=(1024,),
        arrival="poisson",
        capacity_latency_ms=200.0,
        capacity_start_rps=1.0,
        capacity_tolerance=0.1,
        stage_seconds=4.0,
        warmup_seconds=1.0,
    )
    original = cluster.broadcast

    def remember_rate(message: dict[str, Any]) -> None:
        if message["event"] == "start":
            offered[message["stage"]] = message["rate_per_user"] * 4  # 4 users carry the rate
        original(message)

    cluster.broadcast = remember_rate  # type: ignore[method-assign]
    run_to_end(coordinator)
    results = LoadTestResults.model_validate_json((tmp_path / "results.json").read_text())
    (found,) = results.capacity
    assert found.sustained_rps is not None
    assert found.lowest_failing_rps is not None
    assert found.sustained_rps <= 6.0 < found.lowest_failing_rps
    assert found.bracketed
    assert [p.stage for p in found.probes] == [s.name for s in results.stages]  # every probe recorded
    assert found.probes[0].stage == "generate@1024:1rps"
    assert found.goodput_rps is not None
    assert found.goodput_rps > 0
    passed = capacity_of(1024, found.slo, SearchSpec(), found.probes)
    assert passed.sustained_rps == found.sustained_rps
    printed = out.getvalue()
    assert "Capacity: the highest open-loop rate with p99 <= 200 ms and failures <= 0.01" in printed
    assert f"{found.sustained_rps:.3g}" in printed
