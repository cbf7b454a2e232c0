"""NVML backends with pynvml replaced in profiler.energy.nvml: exact joules from scripted counters."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from profiler.energy import (
    BackendUnavailable,
    EnergyError,
    EnergyMeter,
    EnergyPermissionError,
    NotSupportedError,
    nvml,
)
from profiler.energy.nvml import NvmlCounterBackend, NvmlDevices, NvmlPowerBackend
from profiler.energy.timeline import PowerTimeline, gpu_power_series

from . import FakeNvml, Ticks


def _install(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml) -> FakeNvml:
    monkeypatch.setattr(nvml, "pynvml", fake)
    return fake


def test_pynvml_is_imported_in_exactly_one_module() -> None:
    package = Path(nvml.__file__).parent.parent
    importers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import pynvml|from pynvml)", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["energy/nvml.py"]


def test_counter_backend_converts_mj_to_joules_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(gpus=2, energy_mj=[[0, 1_000, 251_000], [0, 5_000, 6_500]]))
    backend = NvmlCounterBackend(NvmlDevices(), clock=Ticks(10.0, 12.5))
    start, end = backend.read(), backend.read()
    assert backend.domains == ("gpu:0", "gpu:1")
    assert backend.energy_j(start, end) == {"gpu:0": 250.0, "gpu:1": 1.5}
    assert end.time_s - start.time_s == 2.5
    backend.close()


def test_meter_windows_over_counter_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every counter read adds 50 J: probe, begin outer, begin inner, end inner, end outer (clock: no probe).
    _install(monkeypatch, FakeNvml(energy_mj=[itertools.count(0, 50_000)]))
    backend = NvmlCounterBackend(NvmlDevices(), clock=Ticks(0.0, 1.0, 3.0, 5.0))
    meter = EnergyMeter(backend)
    meter.begin("outer")
    with meter.window("inner") as inner:
        pass
    outer = meter.end("outer")
    assert inner.measurement is not None
    assert inner.measurement.energy_j == {"gpu:0": 50.0}
    assert inner.measurement.duration_s == 2.0
    assert outer.energy_j == {"gpu:0": 150.0}
    assert outer.duration_s == 5.0
    assert outer.source == "nvml-counter"
    assert outer.warnings == []


def test_power_backend_integrates_trapezoids_with_controlled_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Power (mW) at t = 0 (probe), 1, 2, 4 s: trapezoids 150 + 250 + 400 J.
    _install(monkeypatch, FakeNvml(counter_supported=False, power_mw=[[100_000, 200_000, 300_000, 100_000]]))
    backend = NvmlPowerBackend(
        NvmlDevices(), period_s=1.0, clock=Ticks(0.0, 1.0, 2.0, 4.0), start_thread=False
    )
    start = backend.read()  # t = 1
    backend.read()  # t = 2, what the thread would take
    end = backend.read()  # t = 4
    assert backend.energy_j(start, end) == {"gpu:0": 650.0}
    assert backend.window_warnings(start, end) == []
    backend.close()


def test_power_backend_flags_sampling_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(counter_supported=False))
    backend = NvmlPowerBackend(NvmlDevices(), period_s=0.1, clock=Ticks(0.0, 0.1, 5.0), start_thread=False)
    start, end = backend.read(), backend.read()
    assert backend.energy_j(start, end) == {"gpu:0": pytest.approx(490.0)}
    assert any("apart" in w for w in backend.window_warnings(start, end))
    backend.close()


def test_power_backend_thread_samples_in_background(monkeypatch: pytest.MonkeyPatch) -> None:
    samples: list[int] = []

    def constant_100_w() -> Iterator[int]:
        while True:
            samples.append(100_000)
            yield 100_000

    _install(monkeypatch, FakeNvml(counter_supported=False, power_mw=[constant_100_w()]))
    backend = NvmlPowerBackend(NvmlDevices(), period_s=0.01)
    meter = EnergyMeter(backend)
    with meter.window("w") as window:
        time.sleep(0.3)
    backend.close()
    assert window.measurement is not None
    assert len(samples) > 5  # the thread sampled between the window's two readings
    assert window.measurement.energy_j["gpu:0"] == pytest.approx(100.0 * window.measurement.duration_s)
    assert window.measurement.source == "nvml-power"


def test_errors_are_translated_and_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _install(monkeypatch, FakeNvml())

    def refuse(handle: object) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)

    monkeypatch.setattr(fake, "nvmlDeviceGetPowerUsage", refuse, raising=False)
    devices = NvmlDevices()
    with pytest.raises(EnergyPermissionError, match="/dev/nvidia") as caught:
        devices.power_mw(0)
    assert isinstance(caught.value.__cause__, pynvml.NVMLError)
    devices.close()
    assert fake.inits == fake.shutdowns == 1


def test_missing_library_is_unavailable_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(BackendUnavailable, match="no usable NVIDIA driver"):
        NvmlDevices()


def test_bad_gpu_index_says_which_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _install(monkeypatch, FakeNvml(gpus=2))
    with pytest.raises(EnergyError, match=r"0\.\.1"):
        NvmlDevices([3])
    assert fake.inits == fake.shutdowns == 1


def test_counter_unsupported_raises_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(counter_supported=False))
    with pytest.raises(NotSupportedError):
        NvmlCounterBackend(NvmlDevices())


def test_timeline_reads_gpu_metrics_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(gpus=2))
    timeline = PowerTimeline(gpus=NvmlDevices(), clock=Ticks(0.0, 0.1, 0.2), wall_clock=lambda: 1e9)
    first, second = timeline.sample(), timeline.sample()
    gpu = second.gpus[1]
    assert gpu.power_w == 123.456  # NVML_FI_DEV_POWER_INSTANT, mW to W
    assert (gpu.utilization_pct, gpu.memory_used_bytes, gpu.temperature_c) == (87, 5 << 30, 61)
    assert gpu.sm_clock_mhz is None  # not supported: None, and never asked again
    assert not timeline._supported[(1, "sm_clock_mhz")]
    assert first.model_dump()["gpus"][0]["index"] == 0
    assert gpu_power_series([first, second]) == ([0.0, 0.1], [246.912, 246.912])


def test_instant_power_falls_back_to_power_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNvml(instant_supported=False, power_mw=[itertools.repeat(70_000)]))
    devices = NvmlDevices()
    assert devices.instant_power_mw(0) == 70_000
    assert devices.instant_power_mw(0) == 70_000
    devices.close()
