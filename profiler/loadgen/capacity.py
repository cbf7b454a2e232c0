"""The highest open-loop arrival rate a server sustains within a latency SLO, per input length.

"How many requests per second can this model serve at 4096 tokens within a p99 of X?" is answered
as Triton's perf_analyzer (``--latency-threshold --binary-search``) and MLPerf's Server scenario
answer it: probe open-loop (Poisson) rates, each probe a full stage with its own warm-up, rules and
energy window, and keep the highest rate whose latency percentile and failure ratio stay within
the SLO. The search brackets first (doubling from the start rate while probes pass, halving while
they fail), then bisects the bracket until its ends are within ``tolerance`` of each other or the
probes run out. A probe fails its SLO also when the load generator could not send what was offered
(arrivals left unsent because every user was busy): the rate was not tested. The sent rate is
recorded but not judged: a Poisson schedule's count over a short stage varies (5 arrivals
expected at 0.25 req/s over 20 s, 4 or fewer about 44% of the time), and what was scheduled was
offered.

Goodput is the rate of requests that met the latency SLO; joules per good query divide the
probe's energy window by those requests, so a rate that answers fast but fails or misses the SLO
on some requests pays for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat

from profiler.documents import Document
from profiler.energy.common import Source
from profiler.stats import percentile
from profiler.validation import Count, Strict

#: The latency percentiles an SLO may bound.
SloPercentile = Literal[50, 90, 99]


class Slo(Strict):
    """The service level a capacity search holds every probe to.

    Attributes:
        latency_ms: the bound on the latency percentile. Units: ms.
        percentile: which percentile of the probe's successful requests is bounded.
        max_fail_ratio: failures / requests allowed.
    """

    latency_ms: PositiveFloat
    percentile: SloPercentile = 99
    max_fail_ratio: Annotated[float, Field(ge=0, le=1)] = 0.01


class SearchSpec(Strict):
    """Where a capacity search starts and when it stops.

    Attributes:
        start_rps: the first probe's rate. Units: requests/s.
        max_rps: no probe goes above it (the answer is then "at least this"). Units: requests/s.
        min_rps: no probe goes below it (the answer is then "below this"). Units: requests/s.
        tolerance: the bracket is narrow enough when its upper end is within this fraction of its lower.
        max_probes: probes per length at most.
    """

    start_rps: PositiveFloat = 1.0
    max_rps: PositiveFloat = 256.0
    min_rps: PositiveFloat = 0.05
    tolerance: Annotated[float, Field(gt=0, le=1)] = 0.1
    max_probes: Count = 12


class Probe(Document):
    """One probe: a stage at one offered rate, judged against the SLO.

    Attributes:
        stage: the stage's name in the results (``generate@4096 @ 3.5 rps``).
        offered_rps / sent_rps / throughput_rps: asked, sent, answered successfully per second.
        latency_ms: the SLO's percentile of the successful requests; None if none succeeded.
        fail_ratio: failures / requests (1 with no request).
        good: requests that succeeded within the latency bound.
        goodput_rps: ``good`` per second of the stage.
        window_j: the stage's energy window, gross; None where it was not measured. Units: J.
        j_per_good_query: ``window_j / good``; None without a window or a good request. Units: J.
        energy_source: where the joules came from.
        passed: the probe met the SLO (and left no arrival unsent).
        why: the reason it failed; None when it passed.
    """

    stage: str
    offered_rps: float
    sent_rps: float
    throughput_rps: float
    latency_ms: float | None
    fail_ratio: float
    good: int
    goodput_rps: float
    window_j: float | None
    j_per_good_query: float | None
    energy_source: Source | None
    passed: bool
    why: str | None


def judge(
    slo: Slo,
    *,
    stage: str,
    offered_rps: float,
    sent_rps: float,
    unsent: int,
    duration_s: float,
    latency_ms: Sequence[float],
    failures: int,
    window_j: float | None,
    energy_source: Source | None,
) -> Probe:
    """One probe from its stage's figures (successful latencies, failures, window energy)."""
    requests = len(latency_ms) + failures
    observed = percentile(latency_ms, slo.percentile) if latency_ms else None
    fail_ratio = failures / requests if requests else 1.0
    good = sum(1 for value in latency_ms if value <= slo.latency_ms)
    reasons = []
    if observed is None:
        reasons.append("no successful request")
    elif observed > slo.latency_ms:
        reasons.append(f"p{slo.percentile} {observed:.1f} ms > {slo.latency_ms:g} ms")
    if fail_ratio > slo.max_fail_ratio:
        reasons.append(f"failure ratio {fail_ratio:.3f} > {slo.max_fail_ratio:g}")
    if unsent:
        reasons.append(f"sent {sent_rps:.2f} of {offered_rps:g} req/s offered ({unsent} arrivals unsent)")
    return Probe(
        stage=stage,
        offered_rps=offered_rps,
        sent_rps=sent_rps,
        throughput_rps=len(latency_ms) / duration_s if duration_s > 0 else 0.0,
        latency_ms=observed,
        fail_ratio=fail_ratio,
        good=good,
        goodput_rps=good / duration_s if duration_s > 0 else 0.0,
        window_j=window_j,
        j_per_good_query=window_j / good if window_j is not None and good else None,
        energy_source=energy_source,
        passed=not reasons,
        why="; ".join(reasons) or None,
    )


class CapacitySearch:
    """Bracket, then bisect: which rate to probe next, from the verdicts so far."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec
        self.passing: float | None = None  # the highest rate that passed
        self.failing: float | None = None  # the lowest rate that failed
        self.probes = 0

    def next_rate(self) -> float | None:
        """The next rate to probe, or None when the search is over."""
        spec = self.spec
        if self.probes >= spec.max_probes:
            return None
        low, high = self.passing, self.failing
        if low is None and high is None:
            return min(max(spec.start_rps, spec.min_rps), spec.max_rps)
        if high is None:  # everything so far passed: go up
            assert low is not None
            return None if low >= spec.max_rps else min(low * 2, spec.max_rps)
        if low is None:  # everything so far failed: go down
            return None if high <= spec.min_rps else max(high / 2, spec.min_rps)
        if high <= low * (1 + spec.tolerance):
            return None
        return math.sqrt(low * high)  # rates span decades: bisect on a log scale

    def record(self, rate: float, passed: bool) -> None:
        """The verdict of the probe at ``rate``."""
        self.probes += 1
        if passed:
            self.passing = rate if self.passing is None else max(self.passing, rate)
        else:
            self.failing = rate if self.failing is None else min(self.failing, rate)


class Capacity(Document):
    """What the search found at one input length.

    Attributes:
        length: the input length. Units: tokens.
        slo: what every probe was held to.
        sustained_rps: the highest offered rate that passed; None if none did.
        lowest_failing_rps: the lowest that failed; None if none did (the answer is then a floor).
        bracketed: both ends were found and lie within the search's tolerance.
        goodput_rps / j_per_good_query / energy_source: those of the sustained rate's probe.
        probes: every probe at this length, in the order run.
    """

    length: int
    slo: Slo
    sustained_rps: float | None
    lowest_failing_rps: float | None
    bracketed: bool
    goodput_rps: float | None
    j_per_good_query: float | None
    energy_source: Source | None
    probes: list[Probe]


def capacity_of(length: int, slo: Slo, spec: SearchSpec, probes: Sequence[Probe]) -> Capacity:
    """The answer at one length from its probes."""
    passed = [p for p in probes if p.passed]
    failed = [p for p in probes if not p.passed]
    best = max(passed, key=lambda p: p.offered_rps, default=None)
    lowest_failing = min((p.offered_rps for p in failed), default=None)
    bracketed = (
        best is not None
        and lowest_failing is not None
        and lowest_failing <= best.offered_rps * (1 + spec.tolerance) + 1e-12
    )
    return Capacity(
        length=length,
        slo=slo,
        sustained_rps=best.offered_rps if best else None,
        lowest_failing_rps=lowest_failing,
        bracketed=bracketed,
        goodput_rps=best.goodput_rps if best else None,
        j_per_good_query=best.j_per_good_query if best else None,
        energy_source=best.energy_source if best else None,
        probes=list(probes),
    )
