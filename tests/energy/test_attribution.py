"""Per-request energy: shares of busy time, summing exactly to the window's joules."""

from __future__ import annotations

import math
import random

import pytest

from profiler.energy import attribute_energy


def test_split_by_busy_time() -> None:
    result = attribute_energy(10.0, [("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 2.0)])
    assert result.energy_j == {"a": 2.0, "b": 2.0, "c": 2.0, "d": 4.0}
    assert not result.even_split
    assert result.note is None


def test_shares_always_sum_exactly_to_the_total() -> None:
    rng = random.Random(7)
    for _ in range(500):
        total = rng.choice([0.1 + 0.2, 1e-9, 123.456789, rng.uniform(0, 1e4), 3.0])
        busy = [
            (f"r{i}", rng.choice([0.0, rng.random(), rng.expovariate(10)])) for i in range(rng.randint(1, 40))
        ]
        if all(seconds == 0 for _, seconds in busy):
            busy[0] = ("r0", 0.5)
        result = attribute_energy(total, busy)
        assert math.fsum(result.energy_j.values()) == total
        assert all(share >= 0 for share in result.energy_j.values())
        assert result.energy_j.keys() == {request_id for request_id, _ in busy}


def test_zero_busy_time_splits_evenly_and_says_so() -> None:
    result = attribute_energy(9.0, [("a", 0.0), ("b", 0.0), ("c", 0.0)])
    assert result.energy_j == {"a": 3.0, "b": 3.0, "c": 3.0}
    assert result.even_split
    assert result.note is not None
    assert "split evenly over 3 requests" in result.note


def test_requests_without_busy_time_get_nothing_when_others_worked() -> None:
    result = attribute_energy(5.0, [("idle", 0.0), ("busy", 2.0)])
    assert result.energy_j == {"idle": 0.0, "busy": 5.0}


@pytest.mark.parametrize(
    ("total", "busy", "match"),
    [
        (-1.0, [("a", 1.0)], "non-negative"),
        (float("nan"), [("a", 1.0)], "finite"),
        (1.0, [], "no requests"),
        (1.0, [("a", 1.0), ("a", 2.0)], "repeated: a"),
        (1.0, [("a", -1.0)], "check requests a"),
    ],
)
def test_bad_input_is_explained(total: float, busy: list[tuple[str, float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        attribute_energy(total, busy)
