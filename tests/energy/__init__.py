"""Fakes shared by the energy tests: a scripted pynvml and a fake powercap tree. No hardware needed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml


class FakeNvml:
    """Stands in for the pynvml module inside profiler.energy.nvml.

    Real error classes and constants come from pynvml itself, so the code under test sees exactly
    what it would on a machine with GPUs; readings come from the scripted iterators.
    """

    def __init__(
        self,
        gpus: int = 1,
        energy_mj: Iterable[Iterable[int]] | None = None,
        power_mw: Iterable[Iterable[int]] | None = None,
        counter_supported: bool = True,
        instant_supported: bool = True,
        init_error: int | None = None,
        processes: dict[int, list[tuple[int, int | None]]] | None = None,
    ) -> None:
        self.count = gpus
        self._energy: list[Iterator[int]] = [
            iter(series) for series in (energy_mj or [itertools.count(0, 1000)] * gpus)
        ]
        self._power: list[Iterator[int]] = [
            iter(series) for series in (power_mw or [itertools.repeat(100_000)] * gpus)
        ]
        self.counter_supported = counter_supported
        self.instant_supported = instant_supported
        self.init_error = init_error
        #: (pid, usedGpuMemory) of the compute processes on each GPU.
        self.processes = processes or {}
        self.inits = 0
        self.shutdowns = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("NVML_", "NVMLError", "c_nvml")):
            return getattr(pynvml, name)
        raise AttributeError(f"FakeNvml does not fake {name}")

    @staticmethod
    def _fail(code: int) -> None:
        raise pynvml.NVMLError(code)

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            self._fail(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, int]:
        return ("handle", index)

    def nvmlDeviceGetName(self, handle: tuple[str, int]) -> bytes:
        return b"Fake GPU"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: tuple[str, int]) -> int:
        if not self.counter_supported:
            self._fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return next(self._energy[handle[1]])

    def nvmlDeviceGetPowerUsage(self, handle: tuple[str, int]) -> int:
        return next(self._power[handle[1]])

    def nvmlDeviceGetFieldValues(self, handle: tuple[str, int], fields: list[tuple[int, int]]) -> Any:
        values = (pynvml.c_nvmlFieldValue_t * len(fields))()
        for value, (field_id, scope) in zip(values, fields, strict=True):
            value.fieldId, value.scopeId = field_id, scope
            if self.instant_supported and field_id == pynvml.NVML_FI_DEV_POWER_INSTANT:
                value.nvmlReturn = pynvml.NVML_SUCCESS
                value.value.uiVal = 123_456
            else:
                value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetUtilizationRates(self, handle: tuple[str, int]) -> SimpleNamespace:
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: tuple[str, int]) -> SimpleNamespace:
        return SimpleNamespace(total=80 << 30, used=5 << 30, free=75 << 30)

    def nvmlDeviceGetTemperature(self, handle: tuple[str, int], sensor: int) -> int:
        return 61

    def nvmlDeviceGetComputeRunningProcesses(self, handle: tuple[str, int]) -> list[SimpleNamespace]:
        listed = self.processes.get(handle[1], [])
        return [SimpleNamespace(pid=pid, usedGpuMemory=memory) for pid, memory in listed]

    def nvmlDeviceGetClockInfo(self, handle: tuple[str, int], clock_type: int) -> int:
        self._fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 0  # pragma: no cover


def make_powercap(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """Write a fake /sys/class/powercap: ``{dir: (name, energy_uj, max_energy_range_uj)}``."""
    for directory, (name, energy_uj, max_energy_range_uj) in zones.items():
        zone = root / directory
        zone.mkdir(parents=True)
        (zone / "name").write_text(f"{name}\n")
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
    return root


def set_energy(root: Path, directory: str, energy_uj: int) -> None:
    """Move one fake counter."""
    (root / directory / "energy_uj").write_text(f"{energy_uj}\n")


class Ticks:
    """A clock that returns the scripted times in order (then keeps returning the last one)."""

    def __init__(self, *times: float) -> None:
        self._times = list(times)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self._times.pop(0) if len(self._times) > 1 else self._times[0]
