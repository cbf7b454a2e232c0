"""Open-loop schedules: seeded Poisson arrivals, and latency measured from the scheduled time."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from profiler.loadgen.schedule import Pacer, PoissonSchedule, Timing, user_seed
from profiler.stats import percentile


def test_poisson_mean_rate_is_the_asked_rate() -> None:
    schedule = PoissonSchedule(5.0, seed="rate")
    offsets = [schedule.next_offset() for _ in range(20_000)]
    gaps = [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]
    assert all(gap > 0 for gap in gaps)
    assert math.fsum(gaps) / len(gaps) == pytest.approx(0.2, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean.
    mean = math.fsum(gaps) / len(gaps)
    stdev = math.sqrt(math.fsum((gap - mean) ** 2 for gap in gaps) / (len(gaps) - 1))
    assert stdev == pytest.approx(mean, rel=0.05)


def test_rate_split_across_users_adds_up() -> None:
    rate, users, horizon = 12.0, 4, 500.0
    arrivals = 0
    for user in range(users):
        schedule = PoissonSchedule(rate / users, user_seed(0, 0, "local", user))
        while schedule.next_offset() <= horizon:
            arrivals += 1
    assert arrivals / horizon == pytest.approx(rate, rel=0.05)


def test_same_seed_same_schedule_and_users_differ() -> None:
    def first(seed: str) -> list[float]:
        schedule = PoissonSchedule(3.0, seed)
        return [schedule.next_offset() for _ in range(5)]

    assert first(user_seed(7, 1, "worker0", 2)) == first(user_seed(7, 1, "worker0", 2))
    assert first(user_seed(7, 1, "worker0", 2)) != first(user_seed(7, 1, "worker0", 3))
    assert first(user_seed(7, 1, "worker0", 2)) != first(user_seed(7, 1, "worker1", 2))


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        PoissonSchedule(0.0, seed=1)


def _run_one_user(pacer: Pacer, service: Callable[[float], float], horizon_s: float) -> list[Timing]:
    """One user on a simulated clock, as the sender runs: wait for the due time, send, wait for the answer."""
    now = 0.0
    timings: list[Timing] = []
    while True:
        due = pacer.due(now)
        if due > horizon_s:
            return timings
        sent = max(due, now)
        answered = service(sent)
        timings.append(pacer.timing(due, sent, answered))
        now = answered


def test_a_stall_shows_in_latency_from_the_schedule() -> None:
    """The server freezes from t=1 s to t=3 s. Measured from the actual send, only the one request
    caught in the stall is slow; measured from the schedule, every request that was due during the
    stall is (coordinated omission corrected)."""

    def service(sent: float) -> float:
        return (3.0 if 1.0 <= sent < 3.0 else sent) + 0.005

    timings = _run_one_user(Pacer(0.0, PoissonSchedule(10.0, seed="stall")), service, horizon_s=10.0)
    latency = [t.latency_ms for t in timings]
    service_ms = [t.service_ms for t in timings]
    assert sum(1 for ms in service_ms if ms > 500) == 1  # the send-time view hides the stall
    assert sum(1 for ms in latency if ms > 500) >= 10  # ~20 arrivals were due during it
    assert percentile(latency, 90) > 500
    assert percentile(service_ms, 90) < 10
    assert max(t.lag_ms for t in timings) > 1000  # they went out late, and the lag says so
    assert all(t.latency_ms >= t.service_ms for t in timings)


def test_closed_loop_latency_is_the_service_time() -> None:
    pacer = Pacer(0.0)
    assert pacer.due(4.5) == 4.5
    timing = pacer.timing(4.5, 4.5, 4.75)
    assert (timing.latency_ms, timing.service_ms, timing.lag_ms) == (250.0, 250.0, 0.0)
    assert pacer.backlog(100.0) == 0


def test_backlog_counts_arrivals_due_before_the_end() -> None:
    schedule = PoissonSchedule(10.0, seed="backlog")
    reference = PoissonSchedule(10.0, seed="backlog")
    expected = 0
    while reference.next_offset() <= 2.0:
        expected += 1
    assert Pacer(0.0, schedule).backlog(2.0) == expected > 0
