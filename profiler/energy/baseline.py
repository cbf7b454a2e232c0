"""Idle baseline and joules per query, gross and net of idle power.

Gross J/query charges everything the meter saw to the queries: E / completed. Net (active) J/query
first takes away what the machine would have drawn doing nothing for the same time:
(E - P_idle x T) / completed. Net is clamped at zero and flagged when idle power, measured at
another moment, exceeds the loaded reading: that happens with noise or a thermal drift, and a
negative energy per query is never a real answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pydantic import Field, computed_field

from profiler.documents import Document
from profiler.energy.common import EnergyError, Source, format_energy
from profiler.energy.meter import EnergyMeter, Measurement


class IdleBaseline(Document):
    """Power per domain while nothing was running. Units: W."""

    source: Source
    duration_s: float
    power_w: dict[str, float]
    warnings: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_w(self) -> float:
        """Idle power summed over domains. Units: W."""
        return math.fsum(self.power_w.values())


def measure_idle(
    meter: EnergyMeter,
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    name: str = "idle-baseline",
) -> IdleBaseline:
    """Measure idle power: one window over ``seconds`` of doing nothing.

    Run it with the model loaded and the server up but no load, so net figures subtract exactly
    the power that serving adds. Use at least a few seconds: idle power is small and noisy.

    Raises:
        ValueError: ``seconds`` not positive.
    """
    if not seconds > 0:
        raise ValueError(f"idle baseline needs a positive duration, got {seconds!r} s.")
    with meter.window(name) as window:
        sleep(seconds)
    measurement = window.measurement
    if measurement is None or measurement.duration_s <= 0:  # pragma: no cover - window always sets it
        raise EnergyError("the idle window measured no time; is the clock monotonic?")
    return IdleBaseline(
        source=measurement.source,
        duration_s=measurement.duration_s,
        power_w={domain: joules / measurement.duration_s for domain, joules in measurement.energy_j.items()},
        warnings=list(measurement.warnings),
    )


class PerQueryEnergy(Document):
    """Joules per completed query over one window, gross and net of idle power.

    Attributes:
        source: where the joules come from; an ``estimate`` must be shown as one.
        completed: queries completed in the window.
        energy_j: everything the meter measured. Units: J.
        idle_j: idle power x window duration (0 without a baseline). Units: J.
        gross_j: energy_j / completed. Units: J per query.
        net_j: (energy_j - idle_j) / completed, never below 0; None without a baseline.
        clamped: net would have been negative and was set to 0.
        warnings: the window's warnings, the baseline's, and the clamp, if any.
    """

    source: Source
    completed: int
    energy_j: float
    idle_j: float
    gross_j: float
    net_j: float | None
    clamped: bool
    warnings: list[str] = Field(default_factory=list)

    def __str__(self) -> str:
        net = "n/a" if self.net_j is None else format_energy(self.net_j, self.source)
        return f"{format_energy(self.gross_j, self.source)} gross, {net} net per query"


def per_query_energy(
    measurement: Measurement, completed: int, idle: IdleBaseline | None = None
) -> PerQueryEnergy:
    """Gross and net joules per query for a window in which ``completed`` queries finished.

    Raises:
        ValueError: no completed queries.
        EnergyError: the baseline and the window come from different sources.
    """
    if completed <= 0:
        raise ValueError(
            f"{completed} queries completed in window {measurement.name!r}; energy per query needs "
            "at least one."
        )
    notes = list(measurement.warnings)
    energy_j = measurement.total_j
    if idle is None:
        return PerQueryEnergy(
            source=measurement.source,
            completed=completed,
            energy_j=energy_j,
            idle_j=0.0,
            gross_j=energy_j / completed,
            net_j=None,
            clamped=False,
            warnings=notes,
        )
    if idle.source != measurement.source:
        raise EnergyError(
            f"idle baseline came from {idle.source} but window {measurement.name!r} from "
            f"{measurement.source}; measure both with the same meter."
        )
    notes.extend(w for w in idle.warnings if w not in notes)
    idle_j = idle.total_w * measurement.duration_s
    net_j = (energy_j - idle_j) / completed
    clamped = net_j < 0
    if clamped:
        notes.append(
            f"net energy per query was negative ({net_j:.4g} J): the idle baseline ({idle.total_w:.4g} W) "
            f"is above the loaded power ({measurement.mean_power_w:.4g} W). Reported as 0; re-measure the "
            "baseline right before the run, with the machine at the same temperature."
        )
        net_j = 0.0
    return PerQueryEnergy(
        source=measurement.source,
        completed=completed,
        energy_j=energy_j,
        idle_j=idle_j,
        gross_j=energy_j / completed,
        net_j=net_j,
        clamped=clamped,
        warnings=notes,
    )
