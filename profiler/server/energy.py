"""Energy in the server process, beside the device: named windows, idle baseline, timeline,
and per-request joules.

A load generator on another host opens and closes named windows (one per stage) over HTTP; the
server answers with the window's energy, the queries completed in it, gross and net joules per
query, and each request's share. Every engine batch is also measured, and its energy is split
over the batch's requests by their share of busy engine time, so each response carries its own
joules (with the source, and a warning when the batch was too short for the counter).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count

from profiler.api import EnergyInfo, EnergyShare
from profiler.energy import (
    EnergyMeter,
    IdleBaseline,
    Measurement,
    PowerTimeline,
    ShortWindowWarning,
    WindowError,
    attribute_energy,
    measure_idle,
    per_query_energy,
)
from profiler.energy.contention import Contention, ContentionWindow, machine_id, nvml_processes
from profiler.energy.timeline import Timeline
from profiler.energy.windows import OpenedWindow, OpenWindow, WindowResult
from profiler.engines.engine import Outcome

#: Completed requests remembered for window attribution (bounded: memory stays flat under load).
KEEP_REQUESTS = 200_000
#: Closed windows kept for GET (the oldest are forgotten first).
KEEP_WINDOWS = 1_000
#: One hour of timeline at 10 Hz.
KEEP_SAMPLES = 36_000

#: The meter's window names: users' windows and the server's own (one per batch, one per idle
#: measurement) live apart, so no name a client picks can close or collide with the server's.
USER_WINDOW = "user/{}"
BATCH_WINDOW = "server/batch-{}"
IDLE_WINDOW = "server/idle-{}"


class IdleBusy(Exception):
    """An idle measurement is already running; measuring two at once would halve neither."""


@dataclass(frozen=True)
class _Completed:
    request_id: str
    finished_s: float  # time.monotonic, the meter's clock
    busy_s: float


def busy_shares(outcomes: Sequence[Outcome], new_tokens: Sequence[int]) -> list[float]:
    """Engine seconds per request of one batch: the encoder pass split evenly, decoding by tokens."""
    first = outcomes[0]
    encode_s, decode_s = first.encode_ms / 1000, first.decode_ms / 1000
    total_tokens = sum(new_tokens)
    return [
        encode_s / len(outcomes)
        + (decode_s * tokens / total_tokens if total_tokens else decode_s / len(outcomes))
        for tokens in new_tokens
    ]


class ServerEnergy:
    """The meter, the timeline and the bookkeeping for per-request and per-window energy."""

    def __init__(self, meter: EnergyMeter | None = None, timeline_hz: float = 10.0) -> None:
        self.meter = meter or EnergyMeter()
        self.timeline = PowerTimeline(rate_hz=timeline_hz, max_samples=KEEP_SAMPLES).start()
        self.idle: IdleBaseline | None = None
        self.completed: deque[_Completed] = deque(maxlen=KEEP_REQUESTS)
        self.closed: OrderedDict[str, WindowResult] = OrderedDict()
        self.contention: dict[str, ContentionWindow] = {}
        gpus = self.timeline.gpus
        self.gpu_processes = None if gpus is None else nvml_processes(gpus)
        self.batch_ids = count()
        self.lock = threading.Lock()
        self.idle_running = threading.Lock()
        warnings.filterwarnings("ignore", category=ShortWindowWarning)  # the note travels in each result

    def run_batch(
        self, run: Callable[[], list[Outcome]], request_ids: Sequence[str]
    ) -> list[tuple[Outcome, EnergyShare]]:
        """Run one engine batch inside its own energy window; split its joules over the requests."""
        name = BATCH_WINDOW.format(next(self.batch_ids))
        self.meter.begin(name)
        try:
            outcomes = run()
        finally:
            measurement = self.meter.end(name)
        shares = busy_shares(outcomes, [len(outcome.output_ids) for outcome in outcomes])
        split = attribute_energy(measurement.total_j, list(zip(request_ids, shares, strict=True)))
        finished = time.monotonic()
        with self.lock:
            self.completed.extend(
                _Completed(request_id, finished, busy)
                for request_id, busy in zip(request_ids, shares, strict=True)
            )
        return [
            (
                outcome,
                EnergyShare(
                    joules=split.energy_j[request_id],
                    batch_joules=measurement.total_j,
                    source=measurement.source,
                    warnings=list(measurement.warnings),
                ),
            )
            for outcome, request_id in zip(outcomes, request_ids, strict=True)
        ]

    def begin(self, name: str, request: OpenWindow | None = None) -> OpenedWindow:
        """Open a user's window, and its contention measurement (with the load generator's process
        tree apart when ``request`` names one on this machine).

        Raises:
            WindowError: a window of that name is open.
            ContentionError: ``request`` names a process this machine does not have.
        """
        request = request or OpenWindow()
        here = request.load_generator_machine in (None, machine_id())
        contention = ContentionWindow(
            request.load_generator_pid if here else None, gpu_processes=self.gpu_processes
        )
        try:
            self.meter.begin(USER_WINDOW.format(name))
        except WindowError as exc:
            raise WindowError(
                f"energy window {name!r} is already open; end it first or pick another name."
            ) from exc
        with self.lock:
            self.contention[name] = contention
        return OpenedWindow(name=name, source=self.meter.source)

    def user_windows(self) -> list[str]:
        prefix = USER_WINDOW.format("")
        return [key.removeprefix(prefix) for key in self.meter.open_windows if key.startswith(prefix)]

    def end(self, name: str, with_requests: bool = False) -> WindowResult:
        """Close a user's window: its energy, the queries completed in it, per-query and per-request.

        Raises:
            WindowError: no window of that name is open.
        """
        try:
            measurement = self.meter.end(USER_WINDOW.format(name))
        except WindowError as exc:
            open_now = ", ".join(map(repr, self.user_windows())) or "none"
            raise WindowError(f"no open energy window {name!r} (open: {open_now}); open it first.") from exc
        with self.lock:
            contention = self.contention.pop(name, None)
        result = self._summarise(
            measurement.model_copy(update={"name": name}),
            with_requests,
            contention.close() if contention else None,
        )
        with self.lock:
            self.closed[name] = result
            self.closed.move_to_end(name)
            while len(self.closed) > KEEP_WINDOWS:
                self.closed.popitem(last=False)
        return result

    def _summarise(
        self, measurement: Measurement, with_requests: bool, contention: Contention | None
    ) -> WindowResult:
        with self.lock:
            served = [
                item
                for item in self.completed
                if measurement.start_monotonic_s <= item.finished_s <= measurement.end_monotonic_s
            ]
        per_query = requests = None
        if served:
            per_query = per_query_energy(measurement, len(served), self.idle)
            if with_requests:
                busy = [(item.request_id, item.busy_s) for item in served]
                requests = attribute_energy(measurement.total_j, busy)
        return WindowResult(
            measurement=measurement,
            completed=len(served),
            per_query=per_query,
            idle=self.idle,
            requests=requests,
            contention=contention,
        )

    def window(self, name: str) -> WindowResult | None:
        """A closed window's result (None if unknown)."""
        with self.lock:
            return self.closed.get(name)

    def measure_idle(self, seconds: float) -> IdleBaseline:
        """Measure idle power now (call it with no load running) and keep it for net figures.

        Raises:
            IdleBusy: another idle measurement is running.
        """
        if not self.idle_running.acquire(blocking=False):
            raise IdleBusy("an idle measurement is already running; wait for it, then retry.")
        try:
            self.idle = measure_idle(self.meter, seconds, name=IDLE_WINDOW.format(next(self.batch_ids)))
        finally:
            self.idle_running.release()
        return self.idle

    def timeline_since(self, since_monotonic_s: float) -> Timeline:
        return Timeline(
            samples=[sample for sample in self.timeline.samples if sample.t_monotonic_s > since_monotonic_s]
        )

    def describe(self) -> EnergyInfo:
        return EnergyInfo(
            source=self.meter.source,
            domains=list(self.meter.domains),
            method=self.meter.backend.describe(),
            open_windows=self.user_windows(),
            idle=self.idle,
            timeline_hz=1 / self.timeline.period_s,
            clock="time.monotonic of the server process",
        )

    def close(self) -> None:
        self.timeline.close()
