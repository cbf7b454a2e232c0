"""What callers use: an energy meter with named, overlapping measurement windows.

    meter = EnergyMeter()                     # probes NVML, RAPL, then the estimate
    meter.begin("cell")
    with meter.window("stage-1") as stage:    # closed in try/finally, even if the block raises
        run_stage()
    cell = meter.end("cell")                  # Measurement: joules per domain, seconds, source
    print(stage.measurement, cell)

Windows are independent: any number may be open at once, nested or overlapping, from any thread.
A window costs two backend reads (microseconds for counters); nothing runs between them.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import Field, computed_field

from profiler.documents import Document
from profiler.energy.common import (
    MIN_PERIODS_PER_WINDOW,
    EnergyBackend,
    Reading,
    ShortWindowWarning,
    Source,
    WindowError,
    format_energy,
)
from profiler.energy.factory import default_backend


class Measurement(Document):
    """Energy of one window.

    Attributes:
        name: the window's name.
        source: where the joules come from (``nvml-counter``, ``nvml-power``, ``rapl``, ``estimate``).
        duration_s: window length by the backend's monotonic clock. Units: s.
        energy_j: energy per domain (``gpu:0``, ``cpu-package:0``, ``dram:0``, ``cpu``). Units: J.
        start_monotonic_s: when the window opened (``time.monotonic``), to line it up with requests.
        end_monotonic_s: when it closed.
        start_wall_s: when it opened, as Unix time, for humans and other machines.
        warnings: anything that makes this figure less trustworthy than usual.
        method: the backend's one-line description; for the estimate, the watts it assumed.
    """

    name: str
    source: Source
    duration_s: float
    energy_j: dict[str, float]
    start_monotonic_s: float
    end_monotonic_s: float
    start_wall_s: float
    warnings: list[str] = Field(default_factory=list)
    method: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_j(self) -> float:
        """Energy summed over domains. Units: J."""
        return math.fsum(self.energy_j.values())

    @property
    def mean_power_w(self) -> float:
        """Average power over the window (0 for an empty window). Units: W."""
        return self.total_j / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def is_estimate(self) -> bool:
        """True when the joules are the CPU-time estimate, not a hardware reading."""
        return self.source == "estimate"

    def __str__(self) -> str:
        return f"{self.name}: {format_energy(self.total_j, self.source)} over {self.duration_s:.3f} s"


class Window:
    """Handle yielded by :meth:`EnergyMeter.window`; ``measurement`` is set when the block exits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.measurement: Measurement | None = None


class EnergyMeter:
    """Named energy windows over one backend.

    Args:
        backend: what to read; by default the process-wide probed backend (shared, not closed here).
        wall_clock: Unix time source, injectable for tests.
    """

    def __init__(
        self, backend: EnergyBackend | None = None, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.backend = backend if backend is not None else default_backend()
        self._wall_clock = wall_clock
        self._open: dict[str, tuple[Reading, float]] = {}
        self._lock = threading.Lock()  # guards the dict only; backend reads happen outside it

    @property
    def source(self) -> Source:
        """Where this meter's figures come from."""
        return self.backend.source

    @property
    def domains(self) -> tuple[str, ...]:
        """What this meter measures."""
        return self.backend.domains

    @property
    def open_windows(self) -> tuple[str, ...]:
        """Names of windows begun and not yet ended."""
        with self._lock:
            return tuple(self._open)

    def begin(self, name: str) -> None:
        """Open a window called ``name``.

        Raises:
            WindowError: a window of that name is already open.
        """
        with self._lock:
            if name in self._open:
                raise WindowError(
                    f"energy window {name!r} is already open; end it first or pick another name."
                )
        reading = self.backend.read()
        wall_s = self._wall_clock()
        with self._lock:
            if name in self._open:
                raise WindowError(f"energy window {name!r} was opened twice at once from different threads.")
            self._open[name] = (reading, wall_s)

    def end(self, name: str) -> Measurement:
        """Close window ``name`` and return its energy; warns if it was too short to resolve.

        Raises:
            WindowError: no window of that name is open.
        """
        end = self.backend.read()
        with self._lock:
            entry = self._open.pop(name, None)
        if entry is None:
            known = ", ".join(repr(n) for n in self.open_windows) or "none"
            raise WindowError(f"no open energy window {name!r} (open: {known}); call begin({name!r}) first.")
        start, wall_s = entry
        duration_s = end.time_s - start.time_s
        notes = [*self.backend.warnings, *self.backend.window_warnings(start, end)]
        shortest_s = MIN_PERIODS_PER_WINDOW * self.backend.update_period_s
        if duration_s < shortest_s:
            message = (
                f"energy window {name!r} lasted {duration_s:.4f} s, under {MIN_PERIODS_PER_WINDOW} x the "
                f"{self.backend.source} update period ({self.backend.update_period_s:g} s): its joules may "
                f"read as zero or be coarse. Measure at least {shortest_s:g} s, e.g. repeat the work inside "
                "one window and divide."
            )
            notes.append(message)
            warnings.warn(message, ShortWindowWarning, stacklevel=2)
        return Measurement(
            name=name,
            source=self.backend.source,
            duration_s=duration_s,
            energy_j=self.backend.energy_j(start, end),
            start_monotonic_s=start.time_s,
            end_monotonic_s=end.time_s,
            start_wall_s=wall_s,
            warnings=notes,
            method=self.backend.describe(),
        )

    @contextmanager
    def window(self, name: str) -> Iterator[Window]:
        """``with meter.window("stage-1") as w: ...``; afterwards ``w.measurement`` holds the result.

        The window is closed in ``finally``, so it is measured (and never left open) even when the
        block raises.
        """
        handle = Window(name)
        self.begin(name)
        try:
            yield handle
        finally:
            handle.measurement = self.end(name)

    def cancel(self, name: str) -> None:
        """Forget an open window without measuring it (e.g. a request that was rejected)."""
        with self._lock:
            self._open.pop(name, None)
