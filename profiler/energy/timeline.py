"""A power timeline: GPU power, utilisation, memory, temperature and clock, and CPU utilisation,
sampled in a background daemon thread (10 Hz by default) and stored with each result.

Cost is kept to a few NVML calls and two small /proc reads per sample: the thread sleeps on an
``Event`` between samples, shares no lock with the measured work (list appends are atomic), and
allocates only the sample itself. ``python -m profiler.energy.bench`` measures the overhead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import Field

from profiler.documents import Document
from profiler.energy.common import BackendUnavailable, EnergyError, NotSupportedError
from profiler.energy.cputime import ProcessTreeCpu, SystemCpu
from profiler.energy.nvml import NvmlDevices

Clock = Literal["monotonic", "wall"]
#: What each GpuSample field is read with; power converted from mW to W here, once.
_GPU_READERS: dict[str, Callable[[NvmlDevices, int], float]] = {
    "power_w": lambda gpus, i: gpus.instant_power_mw(i) / 1000.0,
    "utilization_pct": NvmlDevices.utilization_pct,
    "memory_used_bytes": NvmlDevices.memory_used_bytes,
    "temperature_c": NvmlDevices.temperature_c,
    "sm_clock_mhz": NvmlDevices.sm_clock_mhz,
}
_GPU_METRICS = tuple(_GPU_READERS)


class GpuSample(Document):
    """One GPU at one instant; a field is None where the GPU or driver cannot report it."""

    index: int
    power_w: float | None
    utilization_pct: int | None
    memory_used_bytes: int | None
    temperature_c: int | None
    sm_clock_mhz: int | None


class TimelineSample(Document):
    """One tick of the timeline: served by ``GET /v1/energy/timeline``, stored in each result record.

    Attributes:
        t_monotonic_s: ``time.monotonic()``, the clock request timings use. Units: s.
        t_wall_s: ``time.time()``, to line up with other machines and logs. Units: s.
        cpu_tree_pct: CPU use of this process and its children since the last sample. Units: % of
            one core (200 = two cores busy). None on the first sample.
        cpu_system_pct: CPU use of the whole machine since the last sample. Units: % of all CPUs.
        gpus: one entry per GPU (empty without NVML).
    """

    t_monotonic_s: float
    t_wall_s: float
    cpu_tree_pct: float | None
    cpu_system_pct: float | None
    gpus: list[GpuSample] = Field(default_factory=list)


class Timeline(Document):
    """The answer of ``GET /v1/energy/timeline``."""

    samples: list[TimelineSample]


def _open_gpus() -> NvmlDevices | None:
    try:
        return NvmlDevices()
    except EnergyError:  # no NVML or no GPU: a CPU-only timeline
        return None


class PowerTimeline:
    """Background sampler: ``start()``, run the work, ``stop()`` returns the samples.

    Args:
        rate_hz: samples per second (default 10).
        gpus: NVML devices to sample; ``"auto"`` opens every GPU if NVML works, None samples none.
        clock: monotonic clock (injectable for tests).
        wall_clock: Unix time (injectable for tests).
        children_refresh_s: how often to rescan for new child processes (a scan reads all of /proc).
        max_samples: keep only the newest this many (a long-running server); None keeps all.
    """

    def __init__(
        self,
        rate_hz: float = 10.0,
        gpus: NvmlDevices | Literal["auto"] | None = "auto",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        children_refresh_s: float = 5.0,
        max_samples: int | None = None,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}.")
        self.period_s = 1.0 / rate_hz
        self._owns_gpus = gpus == "auto"
        self._gpus = _open_gpus() if gpus == "auto" else gpus
        self._clock = clock
        self._wall_clock = wall_clock
        self._tree = ProcessTreeCpu(children_refresh_s=children_refresh_s)
        self._system = SystemCpu()
        self._last_cpu: tuple[float, float] | None = None
        indices = self._gpus.indices if self._gpus is not None else ()
        self._supported = {(i, m): True for i in indices for m in _GPU_METRICS}
        self._samples: deque[TimelineSample] = deque(maxlen=max_samples)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy_s = 0.0
        #: Samples the thread could not take, most recent last (bounded).
        self.errors: deque[str] = deque(maxlen=100)

    @property
    def gpus(self) -> NvmlDevices | None:
        """The GPUs sampled, None without NVML."""
        return self._gpus

    @property
    def busy_s(self) -> float:
        """CPU time the background thread spent taking samples: the timeline's own cost. Units: s."""
        return self._busy_s

    def _gpu_metric(self, index: int, metric: str) -> float | None:
        if self._gpus is None or not self._supported[(index, metric)]:
            return None
        try:
            return _GPU_READERS[metric](self._gpus, index)
        except NotSupportedError:
            self._supported[(index, metric)] = False  # never ask again
        except EnergyError:
            pass  # a transient failure: this sample lacks the value
        return None

    def _gpu_sample(self, index: int) -> GpuSample:
        values = [self._gpu_metric(index, metric) for metric in _GPU_METRICS]
        power, util, memory, temperature, clock = values
        return GpuSample(
            index=index,
            power_w=None if power is None else float(power),
            utilization_pct=None if util is None else int(util),
            memory_used_bytes=None if memory is None else int(memory),
            temperature_c=None if temperature is None else int(temperature),
            sm_clock_mhz=None if clock is None else int(clock),
        )

    def sample(self) -> TimelineSample:
        """Take one sample now and append it (the thread calls this; so can tests)."""
        t_monotonic_s = self._clock()
        cpu_s = self._tree.seconds()
        tree_pct = None
        if self._last_cpu is not None:
            last_t, last_cpu = self._last_cpu
            elapsed = t_monotonic_s - last_t
            tree_pct = 100.0 * (cpu_s - last_cpu) / elapsed if elapsed > 0 else None
        self._last_cpu = (t_monotonic_s, cpu_s)
        indices = self._gpus.indices if self._gpus is not None else ()
        sample = TimelineSample(
            t_monotonic_s=t_monotonic_s,
            t_wall_s=self._wall_clock(),
            cpu_tree_pct=tree_pct,
            cpu_system_pct=self._system.percent(),
            gpus=[self._gpu_sample(i) for i in indices],
        )
        self._samples.append(sample)
        return sample

    def _sample_or_record(self) -> None:
        try:
            self.sample()
        except (OSError, EnergyError) as error:  # keep the thread alive; say what was lost
            self.errors.append(f"{self._clock():.3f}: sample skipped: {error}")

    def _run(self) -> None:
        next_at = self._clock() + self.period_s
        while not self._stop.wait(max(0.0, next_at - self._clock())):
            started = time.thread_time()
            self._sample_or_record()
            self._busy_s += time.thread_time() - started
            next_at += self.period_s
            now = self._clock()
            if next_at < now:  # fell behind (machine overloaded): skip, never burst
                next_at = now + self.period_s

    def start(self) -> PowerTimeline:
        """Take a first sample and start the thread.

        Raises:
            EnergyError: already running.
        """
        if self._thread is not None:
            raise EnergyError("the power timeline is already running; stop() it first.")
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="power-timeline", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[TimelineSample]:
        """Stop the thread, take a last sample (so the timeline spans the work), return all samples."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.period_s + 2.0)
            self._thread = None
            self._sample_or_record()
        return self.samples

    @property
    def samples(self) -> list[TimelineSample]:
        """A copy of the samples so far."""
        return list(self._samples)

    def close(self) -> None:
        """Stop and release NVML if this timeline opened it."""
        self.stop()
        self._system.close()
        if self._owns_gpus and self._gpus is not None:
            self._gpus.close()
            self._gpus = None

    def __enter__(self) -> PowerTimeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _time(sample: TimelineSample, clock: Clock) -> float:
    return sample.t_monotonic_s if clock == "monotonic" else sample.t_wall_s


def gpu_power_series(
    samples: Sequence[TimelineSample], clock: Clock = "monotonic"
) -> tuple[list[float], list[float]]:
    """(times, total GPU watts) for :func:`profiler.stats.integrate`; source ``nvml-power``.

    Samples where some GPU's power is unknown are left out.

    Raises:
        BackendUnavailable: the timeline has no GPU power at all.
    """
    times, watts = [], []
    for sample in samples:
        powers = [gpu.power_w for gpu in sample.gpus]
        if powers and all(p is not None for p in powers):
            times.append(_time(sample, clock))
            watts.append(sum(p for p in powers if p is not None))
    if not times:
        raise BackendUnavailable("the timeline holds no GPU power samples (no NVML on this machine).")
    return times, watts


def cpu_estimate_power_series(
    samples: Sequence[TimelineSample], active_w_per_core: float, clock: Clock = "monotonic"
) -> tuple[list[float], list[float]]:
    """(times, estimated CPU watts) from the process tree's CPU use; source ``estimate``.

    The same model as the estimate backend: busy cores x watts per busy core. Each sample's
    utilisation covers the interval before it, so the first sample (no interval) is left out.
    """
    times, watts = [], []
    for sample in samples:
        if sample.cpu_tree_pct is not None:
            times.append(_time(sample, clock))
            watts.append(sample.cpu_tree_pct / 100.0 * active_w_per_core)
    return times, watts
