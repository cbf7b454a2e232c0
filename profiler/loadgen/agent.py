"""The load-generating side: which stage is on, the samples taken, and shipping them to the master.

One :class:`WorkerAgent` lives in every process that runs users (each worker, or the single local
process). It follows the coordinator's ``loadgen_stage`` messages: ``start`` makes a stage
current, and its users send that stage's bodies; ``end`` makes it past, so users start no new
request, and once the stage's in-flight requests have answered (or the drain timeout passed) the
agent sends the stage's remaining samples with ``final``. Between those, samples go to the master
every :data:`FLUSH_S` seconds so memory stays flat and an interrupted run loses little.

Like the coordinator it takes its clocks and its message sender as arguments, so it runs in tests
without locust.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from profiler.loadgen.samples import Sample, to_message

logger = logging.getLogger(__name__)

#: Seconds between routine shipments of samples to the master.
FLUSH_S = 2.0
#: How often a drain looks at the in-flight count.
POLL_S = 0.02


@dataclass(frozen=True)
class ActiveStage:
    """The stage this process is sending, as announced.

    Attributes:
        index / name / length: the stage.
        bodies: the request bodies, UTF-8, cycled through by the users.
        rate_per_user: each user's Poisson rate (open loop), or None (closed loop).
        seed: the run's seed, for the users' schedules.
        origin_s: when the announcement arrived, on this process's ``time.perf_counter``: time
            zero of every user's schedule here.
    """

    index: int
    name: str
    length: int
    bodies: tuple[bytes, ...]
    rate_per_user: float | None
    seed: int
    origin_s: float


class WorkerAgent:
    """Stage state, in-flight counts and sample buffer of one load-generating process.

    Args:
        send: ships one ``loadgen_samples`` message to the master.
        spawn: runs a callable concurrently (``gevent.spawn`` under locust).
        sleep / clock: a cooperative sleep and ``time.perf_counter``.
    """

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        spawn: Callable[[Callable[[], None]], object],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.send = send
        self.spawn = spawn
        self.sleep = sleep
        self.clock = clock
        self.run = ""  # the coordinator's run id, from the last stage start; tags every shipment
        self.node = "local"  # named in the users' schedule seeds; a worker's index once it has one
        self.current: ActiveStage | None = None
        self.buffer: defaultdict[int, list[Sample]] = defaultdict(list)
        self.in_flight: Counter[int] = Counter()
        self.ended_at: dict[int, float] = {}  # stage -> when its end was announced (clock)
        self.unsent: Counter[int] = Counter()  # stage -> open-loop arrivals due but never sent

    def on_stage(self, message: Mapping[str, Any]) -> None:
        """A ``loadgen_stage`` message from the coordinator."""
        index = int(message["stage"])
        if message["event"] == "start":
            self.run = str(message.get("run", ""))
            bodies = tuple(body.encode("utf-8") for body in message["bodies"])
            if not bodies:
                logger.error("stage %s came with no request bodies; its users stay idle.", message["name"])
            self.current = ActiveStage(
                index=index,
                name=str(message["name"]),
                length=int(message["length"]),
                bodies=bodies,
                rate_per_user=message.get("rate_per_user"),
                seed=int(message.get("seed", 0)),
                origin_s=self.clock(),
            )
        elif message["event"] == "end":
            if self.current is not None and self.current.index == index:
                self.current = None
            self.ended_at.setdefault(index, self.clock())
            timeout = float(message.get("drain_timeout", 120.0))
            self.spawn(lambda: self.drain(index, timeout))

    @contextmanager
    def request(self, stage: int) -> Iterator[None]:
        """Count a request as in flight for ``stage`` while the block runs."""
        self.in_flight[stage] += 1
        try:
            yield
        finally:
            self.in_flight[stage] -= 1

    def record(self, sample: Sample) -> None:
        self.buffer[sample.stage].append(sample)

    def count_unsent(self, stage: int, count: int) -> None:
        """Open-loop arrivals of ``stage`` that fell due before its end but were never sent."""
        self.unsent[stage] += count

    def drain(self, stage: int, timeout_s: float) -> None:
        """Wait for the stage's in-flight requests, then send its last samples with ``final``."""
        deadline = self.clock() + timeout_s
        while self.in_flight[stage] > 0 and self.clock() < deadline:
            self.sleep(POLL_S)
        if self.in_flight[stage] > 0:
            logger.warning(
                "%d request(s) of stage %d still in flight after %.0f s; sending without them.",
                self.in_flight[stage],
                stage,
                timeout_s,
            )
        self.flush(stage, final=True)

    def flush(self, stage: int | None = None, final: bool = False) -> None:
        """Send buffered samples (of one stage, or all); ``final`` marks that stage's last."""
        stages = [stage] if stage is not None else [index for index, items in self.buffer.items() if items]
        for index in stages:
            samples, self.buffer[index] = self.buffer[index], []
            if samples or final:
                unsent = self.unsent.pop(index, 0) if final else 0
                self.send(to_message(index, samples, final, unsent, self.run))

    def run_flusher(self) -> None:
        """Ship samples every :data:`FLUSH_S` seconds, for ever (run it in its own greenlet)."""
        while True:
            self.sleep(FLUSH_S)
            self.flush()

    def stop(self) -> None:
        """The test stopped: no stage is current; what is buffered goes to the master now."""
        self.current = None
        self.flush()
