"""Apportion a window's energy to the requests served in it, by their share of busy engine time.

A batch of four requests that kept the engine busy for 1, 1, 1 and 2 s splits the window's joules
1:1:1:2. Shares are computed in exact rational arithmetic and rounded once, and one share absorbs
the rounding so that ``math.fsum`` of the result equals the window total exactly: no joule is
created or lost between the window figure and the per-request figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from profiler.documents import Document


class Attribution(Document):
    """Joules per request id, and how they were split.

    Attributes:
        energy_j: request id to joules; ``math.fsum`` of the values equals ``total_j``. Units: J.
        total_j: the window's energy. Units: J.
        even_split: no request had busy time, so the energy was split evenly.
        note: says so, in words, when ``even_split``.
    """

    energy_j: dict[str, float]
    total_j: float
    even_split: bool
    note: str | None = None


def _check(total_j: float, busy: Sequence[tuple[str, float]]) -> None:
    if not math.isfinite(total_j) or total_j < 0:
        raise ValueError(f"window energy must be a finite, non-negative number of joules, got {total_j!r}.")
    if not busy:
        raise ValueError("no requests to attribute energy to; pass (request_id, busy_seconds) pairs.")
    ids = [request_id for request_id, _ in busy]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"request ids must be unique; repeated: {', '.join(repeated)}.")
    bad = [request_id for request_id, seconds in busy if not math.isfinite(seconds) or seconds < 0]
    if bad:
        raise ValueError(f"busy time must be finite and >= 0 seconds; check requests {', '.join(bad)}.")


def attribute_energy(total_j: float, busy: Sequence[tuple[str, float]]) -> Attribution:
    """Split ``total_j`` over requests in proportion to their busy engine seconds.

    Args:
        total_j: the window's energy. Units: J.
        busy: ``(request_id, busy_seconds)`` per request served in the window; a request batched
            with others gets the batch's seconds divided as the server sees fit (e.g. by tokens).

    Returns:
        Joules per request, summing (by ``math.fsum``) exactly to ``total_j``. When every busy time
        is zero the energy is split evenly and the result says so.

    Raises:
        ValueError: negative or non-finite inputs, repeated ids, or no requests.
    """
    _check(total_j, busy)
    weights = [Fraction(seconds) for _, seconds in busy]
    even = sum(weights) == 0
    if even:
        weights = [Fraction(1)] * len(busy)
    total_weight = sum(weights)
    exact_total = Fraction(total_j)
    shares = [float(exact_total * w / total_weight) for w in weights]
    # One share absorbs the rounding of the others. Taking the smallest positive one (at most half
    # the total when two or more are positive) keeps its own rounding below half an ulp of the
    # total, so the correctly rounded sum is the total exactly.
    positive = [i for i, w in enumerate(weights) if w > 0]
    absorber = min(positive, key=lambda i: weights[i])
    others = sum((Fraction(s) for i, s in enumerate(shares) if i != absorber), Fraction(0))
    shares[absorber] = float(exact_total - others)
    note = (
        f"no request had busy engine time in this window; its {total_j:.4g} J were split evenly "
        f"over {len(busy)} requests."
        if even
        else None
    )
    return Attribution(
        energy_j={request_id: share for (request_id, _), share in zip(busy, shares, strict=True)},
        total_j=total_j,
        even_split=even,
        note=note,
    )
