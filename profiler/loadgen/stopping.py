"""When a stage has measured enough: a minimum time and a minimum of successful requests, then
stability, with a cap.

A fixed stage length gives a slow cell two requests and a fast one thousands, and a percentile
from two samples says nothing. So a stage runs until it has lasted ``stage_seconds`` *and*
answered ``min_requests`` requests successfully *and* is stable, or until ``max_stage_seconds``.
Stability is judged as Triton's perf_analyzer judges it: the stage's successful requests answered
while it sent load (not those its drain waits for), in the order they completed, are cut into
consecutive windows of ``window_requests``; the last
:data:`STABLE_WINDOWS` windows are stable when each one's throughput and each one's p50 latency lie
within ``stability`` (a fraction) of those windows' mean. Windows count requests rather than
seconds so that a cell whose requests take seconds still gets windows worth comparing.

In open loop the arrival schedule, not the server, sets the throughput, and a Poisson schedule's
windows of n arrivals spread by about 1/sqrt(n) of their mean (45% for 5, 32% for 10) whatever the
server does, so there only p50 latency must agree (perf_analyzer's default schedule is evenly
spaced, whose windows do agree). An open-loop stage past what the server sustains never settles:
its queue grows and every window waits longer than the one before. Once its minimums are met, a
stage whose last windows' p50 rise one after the other, the last above the first by more than
``stability``, ends as ``overloaded`` instead of running to the cap; it is marked unstable.

Before each stage, ``warmup_seconds`` of the same load is sent and drained; its requests never
enter the figures, and no request of it overlaps the measured stage or its energy window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, model_validator

from profiler.documents import Document
from profiler.stats import percentile, samples_for
from profiler.validation import Count, Strict

#: Consecutive windows that must agree (perf_analyzer's default).
STABLE_WINDOWS = 3
#: The least successful requests per stage by default: enough for a p99 (see :func:`samples_for`).
DEFAULT_MIN_REQUESTS = samples_for(99.0)
#: How long a stage may run at most by default, enough or not. Units: s.
DEFAULT_MAX_STAGE_SECONDS = 300.0
#: Successful requests per stability window by default.
DEFAULT_WINDOW_REQUESTS = 10
#: How far a window's throughput or p50 may lie from the windows' mean by default (perf_analyzer's 10%).
DEFAULT_STABILITY = 0.1
#: Load sent and discarded before each stage by default. Units: s.
DEFAULT_WARMUP_SECONDS = 2.0

#: Why a stage ended: its rules were met, it reached ``max_stage_seconds``, its open-loop latency
#: kept rising (the server does not keep up), or the run was stopped.
EndReason = Literal["measured", "cap", "overloaded", "stopped"]

Seconds = Annotated[float, Field(ge=0)]


class StageRules(Strict):
    """How long each stage runs; the load test's flags and the sweep's ``[load]`` keys of the same names.

    Attributes:
        stage_seconds: the least time a stage sends load. Units: s.
        min_requests: the least successful requests a stage needs before it may end.
        max_stage_seconds: the most time a stage sends load, whatever it has. Units: s.
        window_requests: successful requests per stability window.
        stability: the largest relative spread of the last windows' throughput and p50 that still
            counts as stable; 0 turns the check off.
        warmup_seconds: load sent, drained and discarded before each stage; 0 skips it. Units: s.
    """

    stage_seconds: Annotated[float, Field(gt=0)] = 30.0
    min_requests: Count = DEFAULT_MIN_REQUESTS
    max_stage_seconds: Annotated[float, Field(gt=0)] = DEFAULT_MAX_STAGE_SECONDS
    window_requests: Annotated[int, Field(ge=2)] = DEFAULT_WINDOW_REQUESTS
    stability: Annotated[float, Field(ge=0, lt=1)] = DEFAULT_STABILITY
    warmup_seconds: Seconds = DEFAULT_WARMUP_SECONDS

    @model_validator(mode="after")
    def cap_above_minimum(self) -> StageRules:
        if self.max_stage_seconds < self.stage_seconds:
            raise ValueError(
                f"max_stage_seconds ({self.max_stage_seconds:g}) is below stage_seconds "
                f"({self.stage_seconds:g}); raise it, or lower stage_seconds"
            )
        return self


class MeasurementWindow(Document):
    """``requests`` consecutive successful requests of a stage, from the previous window's last
    answer (or the stage's start) to this one's last.

    Attributes:
        seconds: the window's span. Units: s.
        throughput_rps: requests / seconds.
        p50_ms: median latency of its requests.
    """

    requests: int
    seconds: float
    throughput_rps: float
    p50_ms: float


def measurement_windows(
    completed_s: Sequence[float], latency_ms: Sequence[float], size: int
) -> list[MeasurementWindow]:
    """Whole windows of ``size`` successful requests, in completion order (a partial last one is left out).

    Args:
        completed_s: each request's answer, in seconds from the stage's start.
        latency_ms: the same requests' latencies, in the same order.
        size: requests per window.
    """
    order = sorted(range(len(completed_s)), key=lambda index: completed_s[index])
    windows, start = [], 0.0
    for first in range(0, len(order) - size + 1, size):
        members = order[first : first + size]
        end = completed_s[members[-1]]
        seconds = max(end - start, 1e-9)
        windows.append(
            MeasurementWindow(
                requests=size,
                seconds=seconds,
                throughput_rps=size / seconds,
                p50_ms=percentile([latency_ms[index] for index in members], 50.0),
            )
        )
        start = end
    return windows


def _agree(values: Sequence[float], tolerance: float) -> bool:
    mean = math.fsum(values) / len(values)
    return all(abs(value - mean) <= tolerance * mean for value in values)


def is_stable(windows: Sequence[MeasurementWindow], tolerance: float, *, open_loop: bool) -> bool | None:
    """Whether the last :data:`STABLE_WINDOWS` windows agree on p50 and, in closed loop, on
    throughput; None with fewer."""
    if len(windows) < STABLE_WINDOWS:
        return None
    last = windows[-STABLE_WINDOWS:]
    throughput_agrees = open_loop or _agree([w.throughput_rps for w in last], tolerance)
    return throughput_agrees and _agree([w.p50_ms for w in last], tolerance)


def is_overloaded(windows: Sequence[MeasurementWindow], tolerance: float) -> bool:
    """Whether the last :data:`STABLE_WINDOWS` windows' p50 rise one after the other, the last
    above the first by more than ``tolerance``: a queue that grows."""
    last = [w.p50_ms for w in windows[-STABLE_WINDOWS:]]
    rising = all(later > earlier for earlier, later in itertools.pairwise(last))
    return len(last) == STABLE_WINDOWS and rising and last[-1] > last[0] * (1 + tolerance)


def end_reason(
    elapsed_s: float,
    completed_s: Sequence[float],
    latency_ms: Sequence[float],
    rules: StageRules,
    *,
    open_loop: bool,
) -> EndReason | None:
    """Whether a stage that has run ``elapsed_s`` with these successful requests ends now, and why."""
    if elapsed_s >= rules.max_stage_seconds:
        return "cap"
    if elapsed_s < rules.stage_seconds or len(latency_ms) < rules.min_requests:
        return None
    if rules.stability == 0:
        return "measured"
    windows = measurement_windows(completed_s, latency_ms, rules.window_requests)
    if is_stable(windows, rules.stability, open_loop=open_loop):
        return "measured"
    return "overloaded" if open_loop and is_overloaded(windows, rules.stability) else None
