"""Where an input lands: the smallest bucket that holds it, and the cut of one that is too long."""

from __future__ import annotations

import pytest

from profiler.buckets import bucket_for, truncate_ids

BUCKETS = [1024, 2048, 4096]


@pytest.mark.parametrize(
    ("tokens", "bucket"),
    [(1, 1024), (1024, 1024), (1025, 2048), (2048, 2048), (3000, 4096), (4096, 4096), (4097, None)],
)
def test_the_smallest_bucket_that_holds_the_input(tokens: int, bucket: int | None) -> None:
    assert bucket_for(BUCKETS, tokens) == bucket


def test_without_buckets_nothing_fits() -> None:
    assert bucket_for([], 1) is None


def test_truncation_keeps_the_closing_special_token() -> None:
    assert truncate_ids([0, 5, 6, 7, 2], 3) == [0, 5, 2]
    assert truncate_ids([0, 5, 2], 3) == [0, 5, 2]
    assert truncate_ids([0, 2], 3) == [0, 2]
