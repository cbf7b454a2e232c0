"""What every energy backend shares: the backend contract, readings, exceptions and warnings.

A backend turns hardware (or, for the estimate, CPU time) into cumulative readings; the meter in
:mod:`profiler.energy.meter` takes a reading when a window opens and another when it closes and asks
the backend for the joules in between. Backends keep raw values in their own units (mJ, uJ, mW,
CPU seconds) and convert to joules once, in :meth:`EnergyBackend.energy_j`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Final, Literal

from profiler.errors import ProfilerError

Source = Literal["nvml-counter", "nvml-power", "rapl", "estimate"]
#: Every source in probe order; a figure always carries one of these.
SOURCES: Final[tuple[Source, ...]] = ("nvml-counter", "nvml-power", "rapl", "estimate")
#: What each source measures, in words, for reports.
SOURCE_MEANING: Final[dict[str, str]] = {
    "nvml-counter": "metered by the NVIDIA GPUs' energy counters",
    "nvml-power": "metered by sampling the NVIDIA GPUs' power and integrating it",
    "rapl": "metered by the CPU packages' RAPL energy counters",
    "estimate": "not metered: modelled from the server's CPU time",
}
#: A window shorter than this many counter update periods gets a warning.
MIN_PERIODS_PER_WINDOW: Final = 10


class EnergyError(ProfilerError):
    """An energy measurement could not be taken; the message says why and what to do."""


class BackendUnavailable(EnergyError):
    """This backend cannot run here (no library, no device, no counters); the next one is tried."""


class NotSupportedError(BackendUnavailable):
    """The device exists but does not support the call (e.g. the NVML energy counter before Volta)."""


class EnergyPermissionError(BackendUnavailable):
    """The counters exist but this user may not read them; the message says how to fix that."""


class WindowError(EnergyError):
    """A window was opened twice, or closed without being opened."""


class ShortWindowWarning(UserWarning):
    """A window was too short for the counter to resolve; its energy may read as zero or be coarse."""


class EnergyFallbackWarning(UserWarning):
    """A better backend exists on this machine but could not be used (e.g. unreadable RAPL files)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One backend reading: a monotonic timestamp and raw cumulative counters in backend units."""

    time_s: float
    counters: tuple[float, ...] = ()


class EnergyBackend(ABC):
    """Reads cumulative energy for a fixed set of domains.

    Attributes:
        source: where the figures come from; one of :data:`SOURCES`.
        domains: names of what is measured, e.g. ``gpu:0``, ``cpu-package:0``, ``dram:0``, ``cpu``.
        update_period_s: how often the underlying counter changes; windows shorter than
            :data:`MIN_PERIODS_PER_WINDOW` of these are flagged.
        warnings: problems found while choosing this backend, repeated in every measurement.
        probe_notes: why the backends before this one in the probe order were not used.
    """

    source: Source
    domains: tuple[str, ...]
    update_period_s: float
    warnings: tuple[str, ...] = ()
    probe_notes: tuple[str, ...] = ()

    @abstractmethod
    def read(self) -> Reading:
        """Take a reading now (thread-safe; called when a window opens or closes)."""

    @abstractmethod
    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        """Joules per domain between two readings of this backend. Units: J."""

    def window_warnings(self, start: Reading, end: Reading) -> list[str]:
        """Problems the backend saw inside one window (sampling gaps, read errors); none by default."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Stop background threads and release devices. Safe to call twice."""

    def describe(self) -> str:
        """One line for logs and reports: the source, and for the estimate what it assumes."""
        return f"{self.source}: {', '.join(self.domains)}"


def format_energy(joules: float, source: str) -> str:
    """Render a figure with its source beside it, as the design requires (``12.3 J (estimate)``)."""
    return f"{joules:.4g} J ({source})"
