"""NVIDIA GPUs through NVML: the energy counter (Volta and newer) or integrated power samples (older).

This is the only module that imports :mod:`pynvml`, and every call into it goes through
:func:`_call`, which turns ``pynvml.NVMLError`` into this project's exceptions. Tests replace the
module attribute ``pynvml`` here and nothing else.

Units: NVML reports energy in mJ and power in mW; the names say so (``energy_mj``, ``power_mw``)
and the backends convert to joules once, in ``energy_j``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import pynvml

from profiler.energy.common import (
    BackendUnavailable,
    EnergyBackend,
    EnergyError,
    EnergyPermissionError,
    NotSupportedError,
    Reading,
)

#: The NVML energy counter advances about every 100 ms (ml.energy's measurements; PETSc's notes give
#: 20-100 ms across GPUs), so a window needs about 1 s to be resolved to a few percent.
NVML_COUNTER_UPDATE_PERIOD_S: Final = 0.1
#: Default sampling period for the nvml-power backend: 10 Hz, as the timeline.
NVML_POWER_PERIOD_S: Final = 0.1

_PERMISSION_HINT = (
    "NVML refused the query (insufficient permissions). Run as a user that can open /dev/nvidia* "
    "(e.g. in the 'video' group), or ask the administrator; inside a container pass the GPU with "
    "--gpus all."
)


def _translate(error: Any, what: str) -> EnergyError:
    """Map a ``pynvml.NVMLError`` to this project's exception for ``what`` was being done."""
    code = getattr(error, "value", None)
    message = f"NVML {what} failed: {error}"
    if code in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
        return NotSupportedError(f"{message} (not supported on this GPU or driver).")
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return EnergyPermissionError(f"{message}. {_PERMISSION_HINT}")
    if code in (
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_UNINITIALIZED,
    ):
        return BackendUnavailable(f"{message}; no usable NVIDIA driver on this machine.")
    return EnergyError(f"{message}. Check `nvidia-smi`; the GPU or driver may need attention.")


def _call(function: Callable[..., Any], *args: Any, what: str | None = None) -> Any:
    """Call a pynvml function, translating its errors (the one path into pynvml)."""
    try:
        return function(*args)
    except pynvml.NVMLError as error:
        raise _translate(error, what or str(getattr(function, "__name__", "call"))) from error


def _raise_for_return(code: int) -> None:
    """Raise the NVMLError for a field value's return code (so it goes through :func:`_call`)."""
    if code != pynvml.NVML_SUCCESS:
        raise pynvml.NVMLError(code)


class NvmlDevices:
    """Open NVML handles for some GPUs, and the few queries the profiler needs.

    Indices are NVML's (the order of ``nvidia-smi``), which need not match CUDA's unless
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` is set.

    Raises:
        BackendUnavailable: no NVML library or driver, or no GPU.
    """

    def __init__(self, indices: Sequence[int] | None = None) -> None:
        _call(pynvml.nvmlInit)
        self._open = True
        try:
            count = int(_call(pynvml.nvmlDeviceGetCount))
            if count == 0:
                raise BackendUnavailable("NVML is installed but reports no GPUs.")
            chosen = list(range(count)) if indices is None else list(indices)
            bad = [i for i in chosen if not 0 <= i < count]
            if bad:
                raise EnergyError(f"GPU index(es) {bad} do not exist; NVML sees indices 0..{count - 1}.")
            self.indices: tuple[int, ...] = tuple(chosen)
            self._handles: dict[int, Any] = {i: _call(pynvml.nvmlDeviceGetHandleByIndex, i) for i in chosen}
        except BaseException:
            self.close()
            raise
        self._instant_power: dict[int, bool] = dict.fromkeys(self.indices, True)

    def name(self, index: int) -> str:
        """Marketing name of the GPU (``NVIDIA H100 80GB HBM3``)."""
        value = _call(pynvml.nvmlDeviceGetName, self._handles[index])
        return value.decode() if isinstance(value, bytes) else str(value)

    def describe(self) -> list[dict[str, Any]]:
        """Name, total memory and driver of each open GPU, for the run's fingerprint."""
        driver = _call(pynvml.nvmlSystemGetDriverVersion)
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        return [
            {
                "index": index,
                "name": self.name(index),
                "memory_total_bytes": int(_call(pynvml.nvmlDeviceGetMemoryInfo, self._handles[index]).total),
                "driver": driver,
            }
            for index in self.indices
        ]

    def total_energy_mj(self, index: int) -> int:
        """Energy used since the driver loaded. Units: mJ. Volta and newer only."""
        return int(_call(pynvml.nvmlDeviceGetTotalEnergyConsumption, self._handles[index]))

    def power_mw(self, index: int) -> int:
        """Board power as NVML reports it (a 1 s average on Ampere and newer). Units: mW."""
        return int(_call(pynvml.nvmlDeviceGetPowerUsage, self._handles[index]))

    def instant_power_mw(self, index: int) -> int:
        """Instantaneous power (``NVML_FI_DEV_POWER_INSTANT``), else :meth:`power_mw`. Units: mW."""
        if self._instant_power[index]:
            try:
                fields = [(pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_POWER_SCOPE_GPU)]
                value = _call(pynvml.nvmlDeviceGetFieldValues, self._handles[index], fields)[0]
                _call(_raise_for_return, value.nvmlReturn, what="NVML_FI_DEV_POWER_INSTANT")
                return int(value.value.uiVal)
            except EnergyError:
                self._instant_power[index] = False  # older driver or GPU: never ask again
        return self.power_mw(index)

    def utilization_pct(self, index: int) -> int:
        """Percent of the last sample period in which a kernel was running. Units: %."""
        return int(_call(pynvml.nvmlDeviceGetUtilizationRates, self._handles[index]).gpu)

    def memory_used_bytes(self, index: int) -> int:
        """Device memory in use, by every process. Units: bytes."""
        return int(_call(pynvml.nvmlDeviceGetMemoryInfo, self._handles[index]).used)

    def temperature_c(self, index: int) -> int:
        """GPU core temperature. Units: degrees Celsius."""
        return int(_call(pynvml.nvmlDeviceGetTemperature, self._handles[index], pynvml.NVML_TEMPERATURE_GPU))

    def sm_clock_mhz(self, index: int) -> int:
        """Current SM clock. Units: MHz."""
        return int(_call(pynvml.nvmlDeviceGetClockInfo, self._handles[index], pynvml.NVML_CLOCK_SM))

    def compute_processes(self, index: int) -> list[tuple[int, int | None]]:
        """(pid, device memory in bytes) of each compute process on the GPU; memory None where NVML
        cannot say (MIG, some containers)."""
        processes = _call(pynvml.nvmlDeviceGetComputeRunningProcesses, self._handles[index])
        return [(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in processes]

    def close(self) -> None:
        """Release NVML (pynvml counts initialisations, so each instance shuts down its own)."""
        if self._open:
            self._open = False
            _call(pynvml.nvmlShutdown)


class NvmlCounterBackend(EnergyBackend):
    """GPU energy from the hardware counter: two reads per window, nothing in between."""

    source = "nvml-counter"

    def __init__(
        self, devices: NvmlDevices, clock: Callable[[], float] = time.monotonic, owns_devices: bool = True
    ) -> None:
        self._devices = devices
        self._clock = clock
        self._owns_devices = owns_devices
        self.domains = tuple(f"gpu:{index}" for index in devices.indices)
        self.update_period_s = NVML_COUNTER_UPDATE_PERIOD_S
        for index in devices.indices:  # raises NotSupportedError before Volta
            devices.total_energy_mj(index)

    def read(self) -> Reading:
        """Counters of every GPU. Units: mJ."""
        time_s = self._clock()
        return Reading(time_s, tuple(float(self._devices.total_energy_mj(i)) for i in self._devices.indices))

    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        """Counter differences, mJ to J."""
        return {
            domain: (energy_mj_end - energy_mj_start) / 1000.0
            for domain, energy_mj_start, energy_mj_end in zip(
                self.domains, start.counters, end.counters, strict=True
            )
        }

    def close(self) -> None:
        """Release NVML if this backend opened it."""
        if self._owns_devices:
            self._devices.close()


class NvmlPowerBackend(EnergyBackend):
    """GPU energy by integrating power samples (trapezoids) taken in a background thread.

    For GPUs without the energy counter. Each sample adds the trapezoid since the previous one to a
    running total per GPU (Units: mW x s = mJ), so the backend behaves like a counter and keeps no
    sample buffer. A sample is also taken at every window boundary, so a window's integral starts
    and ends exactly at its own readings.
    """

    source = "nvml-power"

    def __init__(
        self,
        devices: NvmlDevices,
        period_s: float = NVML_POWER_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
        start_thread: bool = True,
        owns_devices: bool = True,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"sampling period must be positive, got {period_s} s.")
        self._devices = devices
        self._clock = clock
        self._owns_devices = owns_devices
        self._period_s = period_s
        self.domains = tuple(f"gpu:{index}" for index in devices.indices)
        self.update_period_s = period_s
        self._energy_mj = [0.0] * len(devices.indices)
        self._last: tuple[float, tuple[float, ...]] | None = None
        self._events: deque[tuple[float, str]] = deque(maxlen=100)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.read()  # raises NotSupportedError where even power is unavailable
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="energy-nvml-power", daemon=True)
            self._thread.start()

    def read(self) -> Reading:
        """Sample power now and return the running integrals. Units: mJ."""
        with self._lock:  # the sampler thread and window boundaries both sample
            power_mw = tuple(float(self._devices.power_mw(i)) for i in self._devices.indices)
            time_s = self._clock()
            if self._last is not None:
                last_time_s, last_power_mw = self._last
                dt_s = time_s - last_time_s
                for position, (before, after) in enumerate(zip(last_power_mw, power_mw, strict=True)):
                    self._energy_mj[position] += (before + after) / 2.0 * dt_s
                if dt_s > 3 * self._period_s:
                    self._events.append(
                        (
                            time_s,
                            f"nvml-power samples were {dt_s:.3f} s apart (asked for {self._period_s} s): the "
                            "machine was too busy to sample; the integral is coarser than usual.",
                        )
                    )
            self._last = (time_s, power_mw)
            return Reading(time_s, tuple(self._energy_mj))

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.read()
            except EnergyError as error:  # keep sampling; the affected windows say so
                self._events.append((self._clock(), f"nvml-power sampling failed: {error}"))

    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        """Differences of the running integrals, mJ to J."""
        return {
            domain: (energy_mj_end - energy_mj_start) / 1000.0
            for domain, energy_mj_start, energy_mj_end in zip(
                self.domains, start.counters, end.counters, strict=True
            )
        }

    def window_warnings(self, start: Reading, end: Reading) -> list[str]:
        """Sampling failures or gaps inside the window."""
        return [text for time_s, text in list(self._events) if start.time_s < time_s <= end.time_s]

    def close(self) -> None:
        """Stop the sampler and release NVML if this backend opened it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self._period_s + 1.0)
            self._thread = None
        if self._owns_devices:
            self._devices.close()


def probe_nvml(
    indices: Sequence[int] | None = None, power_period_s: float = NVML_POWER_PERIOD_S
) -> EnergyBackend:
    """The NVML backend for this machine: the counter where supported, else sampled power.

    Raises:
        BackendUnavailable: no NVML, no GPU, or neither energy nor power readable.
        EnergyError: NVML is present but failing.
    """
    devices = NvmlDevices(indices)
    try:
        return NvmlCounterBackend(devices)
    except NotSupportedError:
        try:
            return NvmlPowerBackend(devices, period_s=power_period_s)
        except BaseException:
            devices.close()
            raise
    except BaseException:
        devices.close()
        raise
