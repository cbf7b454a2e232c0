"""The labelled estimate, for machines with neither NVML nor readable RAPL (laptops without root, CI).

CPU energy = CPU seconds of this process tree over the window x an assumed active power per fully
busy core, plus optionally a share of idle power per wall-clock second. Source: ``estimate``,
always. It is a model, not a measurement; it ranks configurations on one machine reasonably but
its absolute joules can be off by a factor of two or more (see docs/energy.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from profiler.energy.common import EnergyBackend, Reading
from profiler.energy.cputime import CLOCK_TICK_S, ProcessTreeCpu

#: Assumed extra power of one logical core kept fully busy. Units: W. Green Algorithms' table of
#: TDP per core (Lannelongue et al., Adv. Sci. 2021) lists 4-10 W for server parts (EPYC 7552 4.2,
#: Xeon Gold 6148 7.5, Xeon E5-2680 v3 10.0) and 8-24 W for desktop parts, with 12 W as its
#: "any CPU" default; 10 W sits at the top of the server range.
DEFAULT_ACTIVE_W_PER_CORE: Final = 10.0


@dataclass(frozen=True)
class EstimateConfig:
    """The figures the estimate assumes; stored with results so a reader can redo the arithmetic.

    Attributes:
        active_w_per_core: power of one fully busy logical core. Units: W.
        idle_w: share of the machine's idle power charged to this process per wall second. Units: W.
    """

    active_w_per_core: float = DEFAULT_ACTIVE_W_PER_CORE
    idle_w: float = 0.0

    def __post_init__(self) -> None:
        if self.active_w_per_core <= 0 or self.idle_w < 0:
            raise ValueError(
                f"estimate needs active_w_per_core > 0 and idle_w >= 0, got {self.active_w_per_core} "
                f"and {self.idle_w}."
            )


class EstimateBackend(EnergyBackend):
    """CPU-time x watts-per-core estimate for this process and its children. Domain: ``cpu``."""

    source = "estimate"

    def __init__(
        self,
        config: EstimateConfig | None = None,
        cpu_seconds: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or EstimateConfig()
        # Rescanning /proc for new child processes costs ~1 ms; once a second is plenty, and keeps a
        # read cheap enough to bracket every engine batch.
        self._cpu_seconds = cpu_seconds or ProcessTreeCpu(children_refresh_s=1.0).seconds
        self._clock = clock
        self.domains = ("cpu",)
        self.update_period_s = CLOCK_TICK_S

    def read(self) -> Reading:
        """CPU seconds of the process tree so far. Units: s."""
        return Reading(self._clock(), (self._cpu_seconds(),))

    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        """CPU seconds x W per core + idle W x wall seconds. Units: J."""
        cpu_s = max(0.0, end.counters[0] - start.counters[0])
        wall_s = max(0.0, end.time_s - start.time_s)
        return {"cpu": cpu_s * self.config.active_w_per_core + wall_s * self.config.idle_w}

    def describe(self) -> str:
        """Says it is an estimate and what it assumes."""
        idle = f" + {self.config.idle_w:g} W idle share" if self.config.idle_w else ""
        return (
            f"estimate: CPU seconds of this process tree x {self.config.active_w_per_core:g} W per busy "
            f"core{idle} (no NVML or readable RAPL here)"
        )
