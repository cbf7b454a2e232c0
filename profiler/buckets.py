"""Where an input lands: the smallest bucket that holds it, and the cut of one that is too long.

The engine pads to the bucket, the server truncates with ``--truncate`` and ``profiler eval``
cuts its inputs as the server would; each reads these rules here, so they cannot drift apart.
Pure functions over token counts and ids, importing nothing: the load generator may use them too.
"""

from __future__ import annotations

from collections.abc import Sequence


def bucket_for(buckets: Sequence[int], tokens: int) -> int | None:
    """Smallest of ``buckets`` (sorted ascending) that holds ``tokens``; None when over the largest."""
    return next((bucket for bucket in buckets if bucket >= tokens), None)


def truncate_ids(ids: list[int], length: int) -> list[int]:
    """``ids`` cut to at most ``length``: the first ``length - 1`` tokens and the closing special token."""
    return ids if len(ids) <= length else ids[: length - 1] + ids[-1:]
