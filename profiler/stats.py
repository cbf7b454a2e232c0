"""Statistics from raw samples: percentiles, summaries, confidence intervals, the steady-state window.

One percentile function serves the whole project (:func:`percentile`); it reproduces
``numpy.percentile``'s default (``linear``) method bit for bit, so figures here match anyone who
recomputes them with numpy from the stored raw samples. Nothing here rounds: rounding is for display.

The steady-state helpers answer "what was the throughput and the energy per query once the load had
settled?": :func:`steady_window` finds the span between ramp-up and drain from the requests' own
start and end times, and :func:`steady_state` computes throughput and energy over that same span.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from profiler.errors import ProfilerError

#: Percentiles every :class:`Summary` carries, as (field name, q).
SUMMARY_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


class StatsError(ProfilerError):
    """Samples that cannot give the statistic asked for; the message says what was wrong."""


def _finite_sorted(samples: Iterable[float], what: str = "samples") -> list[float]:
    values = sorted(float(x) for x in samples)
    if not values:
        raise StatsError(f"no {what}: at least one value is needed.")
    if not all(math.isfinite(x) for x in values):
        raise StatsError(f"{what} contain NaN or infinity; drop failed measurements before summarising.")
    return values


def _percentile_sorted(values: Sequence[float], q: float) -> float:
    """numpy's ``linear`` method on already sorted values, written in numpy's own operation order."""
    if not 0.0 <= q <= 100.0:
        raise StatsError(f"percentile q must lie in [0, 100], got {q!r}.")
    n = len(values)
    virtual = (n - 1) * (q / 100.0)
    if virtual >= n - 1:
        return values[-1]
    below = math.floor(virtual)
    gamma = virtual - below
    a, b = values[below], values[below + 1]
    diff = b - a
    # numpy interpolates from the nearer end, which keeps the result monotone in q.
    return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma


def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of raw samples, by linear interpolation between order statistics.

    Identical to ``numpy.percentile(samples, q)`` (its default ``linear`` method, also Hyndman and
    Fan's type 7). Keep raw samples and call this; never average percentiles across runs.

    Raises:
        StatsError: no samples, a NaN or infinite sample, or ``q`` outside [0, 100].
    """
    return _percentile_sorted(_finite_sorted(samples), q)


#: How every table marks a percentile from fewer samples than :func:`samples_for` asks.
UNSUPPORTED = "*"


def samples_for(q: float) -> int:
    """The least samples a ``q``-th percentile needs to rest on data rather than on the largest
    sample alone: ``1 / (1 - q/100)``, so at least one sample lies above it (p50: 2, p90: 10,
    p99: 100). Below this, the percentile is shown marked as unsupported.
    """
    if not 0.0 <= q < 100.0:
        raise StatsError(f"q must be in [0, 100), got {q}.")
    return math.ceil(round(1.0 / (1.0 - q / 100.0), 9))


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one set of raw samples (latencies in seconds, say).

    ``stdev`` is the sample standard deviation (n - 1 in the denominator); 0.0 for a single sample.
    """

    count: int
    mean: float
    stdev: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float

    @classmethod
    def from_samples(cls, samples: Iterable[float]) -> Summary:
        """Summarise raw samples (sorted once, so this is cheap for large runs).

        Raises:
            StatsError: no samples, or a NaN or infinite sample.
        """
        values = _finite_sorted(samples)
        n = len(values)
        mean = math.fsum(values) / n
        stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
        points = {name: _percentile_sorted(values, q) for name, q in SUMMARY_PERCENTILES}
        return cls(count=n, mean=mean, stdev=stdev, min=values[0], max=values[-1], **points)

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict, ready for JSON."""
        return asdict(self)


# --- Student t quantile, without scipy --------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise StatsError(f"incomplete beta did not converge for a={a}, b={b}, x={x}.")  # pragma: no cover


def _regularized_beta(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, given both ``x`` and ``y = 1 - x``.

    Taking ``y`` separately keeps full precision when x is close to 1 (large t).
    """
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, y) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0, computed without subtracting from 1."""
    denom = df + t * t
    return 0.5 * _regularized_beta(df / 2.0, 0.5, df / denom, t * t / denom)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (what ``scipy.stats.t.ppf`` gives).

    Computed by bisection on the upper tail probability to about 1e-12 relative precision; scipy is
    not a dependency.

    Raises:
        StatsError: ``p`` outside (0, 1) or ``df`` not positive.
    """
    if not 0.0 < p < 1.0:
        raise StatsError(f"quantile level must lie strictly between 0 and 1, got {p!r}.")
    if df <= 0:
        raise StatsError(f"degrees of freedom must be positive, got {df!r}.")
    if p == 0.5:
        return 0.0
    tail = min(p, 1.0 - p)
    lo, hi = 0.0, 1.0
    while _t_upper_tail(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_upper_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t


@dataclass(frozen=True)
class ConfidenceInterval:
    """A two-sided confidence interval for a mean across independent repeats."""

    mean: float
    low: float
    high: float
    confidence: float
    count: int

    @property
    def half_width(self) -> float:
        """Distance from the mean to either bound."""
        return self.high - self.mean

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict, ready for JSON."""
        return asdict(self)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> ConfidenceInterval:
    """Student-t confidence interval of the mean of independent repeats (one value per repeat).

    Use one value per repeat (a repeat's p99, its joules per query), not raw per-request samples:
    requests within a run are not independent.

    Raises:
        StatsError: fewer than two values, a NaN or infinite value, or ``confidence`` outside (0, 1).
    """
    data = _finite_sorted(values, "values")
    n = len(data)
    if n < 2:
        raise StatsError("a confidence interval needs at least two repeats; run the cell again.")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie strictly between 0 and 1, got {confidence!r}.")
    mean = math.fsum(data) / n
    stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in data) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * stdev / math.sqrt(n)
    return ConfidenceInterval(mean=mean, low=mean - half, high=mean + half, confidence=confidence, count=n)


# --- Steady-state window --------------------------------------------------------------------------


def _check_requests(requests: Sequence[tuple[float, float]]) -> None:
    if not requests:
        raise StatsError("no requests: a steady-state window needs at least one completed request.")
    for index, (start, end) in enumerate(requests):
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise StatsError(
                f"request {index} has start={start!r}, end={end!r}; each needs finite times with "
                "end >= start, both from the same clock."
            )


def in_flight(requests: Sequence[tuple[float, float]]) -> list[tuple[float, int]]:
    """The number of requests in flight as a step function: ``(time, count from then on)``.

    Starts and ends at the same instant are netted, so a closed-loop client that sends its next
    request the moment the last one returns shows no momentary dip.
    """
    _check_requests(requests)
    delta: dict[float, int] = {}
    for start, end in requests:
        delta[start] = delta.get(start, 0) + 1
        delta[end] = delta.get(end, 0) - 1
    steps: list[tuple[float, int]] = []
    count = 0
    for time in sorted(delta):
        count += delta[time]
        if not steps or steps[-1][1] != count:
            steps.append((time, count))
    return steps


def _time_weighted_median(steps: Sequence[tuple[float, int]]) -> int:
    durations: dict[int, float] = {}
    for (t, count), (t_next, _) in itertools.pairwise(steps):
        durations[count] = durations.get(count, 0.0) + (t_next - t)
    total = math.fsum(durations.values())
    covered = 0.0
    for count in sorted(durations):
        covered += durations[count]
        if covered >= total / 2.0:
            return count
    return max(durations, default=1)  # pragma: no cover - the loop always returns


def steady_window(requests: Sequence[tuple[float, float]], level: int | None = None) -> tuple[float, float]:
    """The steady-state span ``(t0, t1)`` of a load test, excluding ramp-up and drain.

    Rule: the steady level is ``level`` if given, else the time-weighted median number of requests
    in flight over the run (with N closed-loop users that is N). ``t0`` is the first moment that many
    are in flight; ``t1`` is the last moment the count falls below it (the drain begins). Measure
    throughput and energy over exactly this span (see :func:`steady_state`).

    Args:
        requests: (start, end) of every completed request, all from one clock.
        level: the in-flight count that counts as steady (the concurrency you configured).

    Raises:
        StatsError: no requests, a malformed request, or a level that is never reached.
    """
    steps = in_flight(requests)
    if not steps:
        raise StatsError("every request starts and ends at the same instant; check the timestamps.")
    steady = max(1, _time_weighted_median(steps)) if level is None else level
    if steady < 1:
        raise StatsError(f"level must be at least 1, got {steady}.")
    t0 = next((t for t, count in steps if count >= steady), None)
    if t0 is None:
        peak = max(count for _, count in steps)
        raise StatsError(
            f"the load never reached {steady} requests in flight (peak {peak}); pass a lower level."
        )
    t1 = t0
    for (_, before), (t, after) in itertools.pairwise(steps):
        if before >= steady > after:
            t1 = t
    return t0, t1


def completed_within(requests: Sequence[tuple[float, float]], t0: float, t1: float) -> list[int]:
    """Indices of the requests that completed inside ``[t0, t1]`` (the ones a throughput counts)."""
    return [index for index, (_, end) in enumerate(requests) if t0 <= end <= t1]


def integrate(times: Sequence[float], values: Sequence[float], t0: float, t1: float) -> float:
    """Integral over ``[t0, t1]`` of the piecewise-linear curve through the samples (trapezoids).

    Used for energy from power samples: watts over seconds gives joules. The ends are interpolated,
    so a window need not fall on sample times; it must lie inside the sampled span.

    Raises:
        StatsError: mismatched lengths, unsorted times, or a window outside the samples.
    """
    if len(times) != len(values) or len(times) < 2:
        raise StatsError("integration needs at least two samples, with one value per time.")
    if t1 < t0:
        raise StatsError(f"window end {t1} is before its start {t0}.")
    if t0 < times[0] or t1 > times[-1]:
        raise StatsError(
            f"window [{t0}, {t1}] is not inside the samples [{times[0]}, {times[-1]}]; start sampling "
            "before the window opens and stop after it closes."
        )
    pieces: list[float] = []
    for i in range(len(times) - 1):
        a, b = times[i], times[i + 1]
        if b < a:
            raise StatsError(f"sample times must not decrease (index {i + 1}).")
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo or b == a:
            continue
        slope = (values[i + 1] - values[i]) / (b - a)
        v_lo = values[i] + slope * (lo - a)
        v_hi = values[i] + slope * (hi - a)
        pieces.append((v_lo + v_hi) * (hi - lo) / 2.0)
    return math.fsum(pieces)


@dataclass(frozen=True)
class SteadyState:
    """Throughput and energy over one steady-state span; energy fields are None without power data."""

    t0: float
    t1: float
    completed: int
    throughput_qps: float
    energy_j: float | None
    joules_per_query: float | None

    @property
    def duration_s(self) -> float:
        """Length of the span."""
        return self.t1 - self.t0

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict, ready for JSON."""
        return {**asdict(self), "duration_s": self.duration_s}


def steady_state(
    requests: Sequence[tuple[float, float]],
    power: tuple[Sequence[float], Sequence[float]] | None = None,
    level: int | None = None,
) -> SteadyState:
    """Throughput, and energy per query if power samples are given, over the steady-state window.

    Args:
        requests: (start, end) of every completed request.
        power: (times, watts) samples on the requests' clock, e.g. from the power timeline.
        level: the steady in-flight count; see :func:`steady_window`.
    """
    t0, t1 = steady_window(requests, level)
    if t1 <= t0:
        raise StatsError(
            "the steady-state window is empty (ramp-up and drain overlap); run the load for longer."
        )
    completed = len(completed_within(requests, t0, t1))
    energy = integrate(power[0], power[1], t0, t1) if power is not None else None
    per_query = energy / completed if energy is not None and completed else None
    return SteadyState(
        t0=t0,
        t1=t1,
        completed=completed,
        throughput_qps=completed / (t1 - t0),
        energy_j=energy,
        joules_per_query=per_query,
    )
