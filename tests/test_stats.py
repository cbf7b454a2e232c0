"""Statistics against numpy and against values worked out by hand or from published tables."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from profiler.stats import (
    StatsError,
    Summary,
    completed_within,
    in_flight,
    integrate,
    mean_ci,
    percentile,
    steady_state,
    steady_window,
    t_quantile,
)


def test_percentile_matches_numpy_bit_for_bit() -> None:
    rng = random.Random(1)
    for _ in range(500):
        samples = [
            rng.choice([rng.random(), rng.expovariate(2.0), rng.gauss(0, 1e6), 3.0])
            for _ in range(rng.randint(1, 60))
        ]
        for q in (0.0, 1.0, 12.5, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0, rng.uniform(0, 100)):
            assert percentile(samples, q) == float(np.percentile(samples, q))


def test_percentile_by_hand() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # order does not matter
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)  # index 2.7
    assert percentile([10.0, 20.0], 25) == 12.5
    assert percentile([7.0], 99.9) == 7.0
    assert percentile([1.0, 2.0, 3.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0], 100) == 3.0


@pytest.mark.parametrize(
    ("samples", "q", "match"),
    [
        ([], 50, "no samples"),
        ([1.0, math.nan], 50, "NaN"),
        ([1.0], 101, r"\[0, 100\]"),
        ([1.0], -1, r"\[0, 100\]"),
    ],
)
def test_percentile_rejects_bad_input(samples: list[float], q: float, match: str) -> None:
    with pytest.raises(StatsError, match=match):
        percentile(samples, q)


def test_summary_matches_numpy() -> None:
    rng = random.Random(2)
    samples = [rng.lognormvariate(-3, 0.5) for _ in range(2001)]
    summary = Summary.from_samples(samples)
    assert summary.count == 2001
    assert summary.mean == pytest.approx(float(np.mean(samples)), rel=1e-14)
    assert summary.stdev == pytest.approx(float(np.std(samples, ddof=1)), rel=1e-12)
    assert (summary.min, summary.max) == (min(samples), max(samples))
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        assert getattr(summary, name) == float(np.percentile(samples, q))
    assert Summary.from_samples([5.0]).stdev == 0.0
    assert set(summary.to_dict()) >= {"count", "p999"}


# scipy.stats.t.ppf values (the usual two-sided 95% and 99% table entries).
T_TABLE = [
    (0.975, 1, 12.706204736174694),
    (0.975, 2, 4.302652729749462),
    (0.975, 5, 2.5705818356363146),
    (0.975, 10, 2.228138851986274),
    (0.975, 30, 2.0422724563012378),
    (0.995, 4, 4.604094871349992),
    (0.95, 3, 2.3533634348018233),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_TABLE)
def test_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-12)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, rel=1e-11)


def test_t_quantile_edges() -> None:
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959966, rel=1e-6)  # tends to the normal
    for bad_p, bad_df in ((0.0, 3), (1.0, 3), (0.9, 0)):
        with pytest.raises(StatsError):
            t_quantile(bad_p, bad_df)


def test_mean_ci_by_hand() -> None:
    ci = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) x s / sqrt(n)
    assert ci.mean == 3.0
    assert ci.half_width == pytest.approx(half, rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((3.0 - half, 3.0 + half), rel=1e-12)
    assert (ci.confidence, ci.count) == (0.95, 5)
    with pytest.raises(StatsError, match="at least two repeats"):
        mean_ci([1.0])
    with pytest.raises(StatsError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def _closed_loop(users: int = 4, stagger: float = 0.5, stop: float = 10.0) -> list[tuple[float, float]]:
    """Each user starts ``stagger`` after the previous and sends 1 s requests back to back until ``stop``."""
    requests = []
    for user in range(users):
        start = user * stagger
        while start < stop:
            requests.append((start, start + 1.0))
            start += 1.0
    return requests


def test_in_flight_nets_simultaneous_end_and_start() -> None:
    assert in_flight([(0.0, 1.0), (1.0, 2.0)]) == [(0.0, 1), (2.0, 0)]
    assert in_flight([(0.0, 2.0), (1.0, 3.0)]) == [(0.0, 1), (1.0, 2), (2.0, 1), (3.0, 0)]


def test_steady_window_excludes_ramp_up_and_drain() -> None:
    requests = _closed_loop()
    # All four users are busy from 1.5 s (the last one starts) until 10 s (two of them stop).
    assert steady_window(requests) == (1.5, 10.0)
    assert steady_window(requests, level=2) == (0.5, 10.5)
    completed = completed_within(requests, 1.5, 10.0)
    assert len(completed) == 9 + 9 + 9 + 8  # users' requests ending in [1.5, 10]
    with pytest.raises(StatsError, match="never reached 5"):
        steady_window(requests, level=5)


def test_steady_state_throughput_and_energy_over_the_same_window() -> None:
    requests = _closed_loop()
    times = [t / 2 for t in range(23)]  # 0 .. 11 s
    watts = [50.0] * len(times)
    state = steady_state(requests, power=(times, watts))
    assert (state.t0, state.t1, state.completed) == (1.5, 10.0, 35)
    assert state.throughput_qps == 35 / 8.5
    assert state.energy_j == 50.0 * 8.5
    assert state.joules_per_query == 50.0 * 8.5 / 35
    assert state.to_dict()["duration_s"] == 8.5
    assert steady_state(requests).energy_j is None


def test_integrate_by_hand() -> None:
    times, watts = [0.0, 1.0, 2.0], [100.0, 200.0, 100.0]
    assert integrate(times, watts, 0.0, 2.0) == 300.0
    assert integrate(times, watts, 0.5, 1.5) == 175.0  # interpolated ends: 150, 200, 150 W
    assert integrate(times, watts, 1.0, 1.0) == 0.0
    with pytest.raises(StatsError, match="not inside the samples"):
        integrate(times, watts, -1.0, 1.0)
    with pytest.raises(StatsError, match="at least two samples"):
        integrate([0.0], [1.0], 0.0, 0.0)


@pytest.mark.parametrize("bad", [[], [(1.0, 0.5)], [(0.0, math.inf)], [(2.0, 2.0)]])
def test_steady_window_rejects_bad_requests(bad: list[tuple[float, float]]) -> None:
    with pytest.raises(StatsError):
        steady_window(bad)
