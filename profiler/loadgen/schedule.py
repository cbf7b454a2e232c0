"""When each user sends, and how its latency is measured: closed loop, and open loop without
coordinated omission.

Closed loop: a user sends its next request as soon as the previous one answers; latency runs from
the send to the answer. Throughput is whatever the server sustains at that concurrency.

Open loop (``--arrival poisson --rate R``): arrivals follow a fixed schedule made in advance, R per
second across all users, each user a Poisson process of rate R / users (exponential gaps from a
seeded generator), anchored at the stage's start. A user that is still waiting for an answer when
its next arrival falls due sends late, and that request's latency still runs from its *scheduled*
time. Measuring from the actual send instead would let a stalled server hide its stall: the
requests that should have arrived during it are sent afterwards and look fast (coordinated
omission; Gil Tene, "How NOT to measure latency"). ``lag_ms`` keeps how late each one went out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


class PoissonSchedule:
    """Seeded arrival offsets of one Poisson process, in seconds from its origin.

    The same rate and seed give the same offsets on any machine (``random.Random`` with a string
    seed is deterministic across processes and Python versions 3.2+).
    """

    def __init__(self, rate_per_s: float, seed: int | str) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"an arrival rate must be positive, got {rate_per_s!r} per second.")
        self.rate_per_s = rate_per_s
        self._rng = random.Random(seed)
        self._offset_s = 0.0

    def next_offset(self) -> float:
        """The next arrival, in seconds after the origin (strictly increasing)."""
        self._offset_s += self._rng.expovariate(self.rate_per_s)
        return self._offset_s


def user_seed(seed: int, stage: int, node: str, user: int) -> str:
    """The seed of one user's schedule in one stage: distinct per worker process and user."""
    return f"loadgen:{seed}:{stage}:{node}:{user}"


@dataclass(frozen=True, slots=True)
class Timing:
    """One request's clock readings turned into milliseconds.

    Attributes:
        latency_ms: answer minus scheduled time (open loop) or minus send time (closed loop).
        service_ms: answer minus actual send time.
        lag_ms: how late the request went out against its schedule (0 in closed loop).
    """

    latency_ms: float
    service_ms: float
    lag_ms: float


class Pacer:
    """One user's pacing within one stage.

    Args:
        origin_s: the stage's start on this process's ``time.perf_counter`` clock.
        schedule: the user's arrivals (open loop), or None for closed loop.
    """

    def __init__(self, origin_s: float, schedule: PoissonSchedule | None = None) -> None:
        self.origin_s = origin_s
        self.schedule = schedule

    @property
    def open_loop(self) -> bool:
        return self.schedule is not None

    def due(self, now_s: float) -> float:
        """When the next request is scheduled: the schedule's next arrival, or now (closed loop).

        A due time in the past is not skipped: the request goes at once and its latency counts
        from the due time.
        """
        if self.schedule is None:
            return now_s
        return self.origin_s + self.schedule.next_offset()

    def backlog(self, until_s: float) -> int:
        """Arrivals due by ``until_s`` that were never drawn (so never sent): 0 in closed loop.

        Call it once the stage is over; it uses up the schedule.
        """
        if self.schedule is None:
            return 0
        count = 0
        while self.origin_s + self.schedule.next_offset() <= until_s:
            count += 1
        return count

    def since_start_ms(self, due_s: float, sent_s: float, at_s: float) -> float:
        """Milliseconds from the request's start to ``at_s``: from its scheduled time in open loop,
        its send in closed loop (latency is this at the answer, time to first token at the first)."""
        return (at_s - (sent_s if self.schedule is None else due_s)) * 1000.0

    def timing(self, due_s: float, sent_s: float, answered_s: float) -> Timing:
        """Latency, service time and send lag of one request (all clock readings in seconds)."""
        lag_ms = 0.0 if self.schedule is None else max(0.0, (sent_s - due_s) * 1000.0)
        latency_ms = self.since_start_ms(due_s, sent_s, answered_s)
        return Timing(latency_ms, (answered_s - sent_s) * 1000.0, lag_ms)
