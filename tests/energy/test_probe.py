"""Probe order: nvml-counter, then nvml-power, then rapl, then the estimate, each shown in results."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pynvml
import pytest

from profiler.energy import (
    EnergyBackend,
    EnergyError,
    EnergyFallbackWarning,
    EnergyMeter,
    EstimateConfig,
    ShortWindowWarning,
    create_backend,
    default_backend,
    factory,
    nvml,
    rapl,
)

from . import FakeNvml, make_powercap

NO_NVML = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    return make_powercap(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 1_000, 2**32)})


def _probe(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml, root: Path, **kwargs: Any) -> EnergyBackend:
    monkeypatch.setattr(nvml, "pynvml", fake)
    return create_backend(powercap_root=root, rapl_poll_s=0, **kwargs)


def test_gpu_with_counter_gives_nvml_counter(monkeypatch: pytest.MonkeyPatch, powercap: Path) -> None:
    backend = _probe(monkeypatch, FakeNvml(), powercap)
    assert backend.source == "nvml-counter"
    backend.close()


def test_counter_not_supported_gives_nvml_power(monkeypatch: pytest.MonkeyPatch, powercap: Path) -> None:
    backend = _probe(monkeypatch, FakeNvml(counter_supported=False), powercap, nvml_power_period_s=0.05)
    assert backend.source == "nvml-power"
    backend.close()


def test_no_gpu_but_readable_rapl_gives_rapl(monkeypatch: pytest.MonkeyPatch, powercap: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a machine without GPUs is normal: no warning
        backend = _probe(monkeypatch, FakeNvml(init_error=NO_NVML), powercap)
    assert backend.source == "rapl"
    assert backend.warnings == ()
    assert any("nvml" in note for note in backend.probe_notes)
    backend.close()


def test_unreadable_rapl_falls_back_to_estimate_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, powercap: Path
) -> None:
    def deny(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rapl, "read_sysfs", deny)
    monkeypatch.setattr(nvml, "pynvml", FakeNvml(init_error=NO_NVML))
    monkeypatch.setattr(factory, "create_backend", lambda: create_backend(powercap_root=powercap))
    with pytest.warns(EnergyFallbackWarning, match="chmod"):
        backend = default_backend()
    assert backend.source == "estimate"
    assert default_backend() is backend  # probed once, then cached
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortWindowWarning)  # how long is beside the point here
        with EnergyMeter().window("w") as window:
            sum(range(200_000))
    assert window.measurement is not None
    assert window.measurement.source == "estimate"
    assert any("sudo chmod a+r" in w and "estimate instead" in w for w in window.measurement.warnings)


def test_nothing_available_gives_estimate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = _probe(monkeypatch, FakeNvml(init_error=NO_NVML), tmp_path / "absent")
    assert backend.source == "estimate"
    assert len(backend.probe_notes) == 2


def test_prefer_refuses_to_fall_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(nvml, "pynvml", FakeNvml(init_error=NO_NVML))
    with pytest.raises(EnergyError, match="nvml-counter is not available"):
        create_backend("nvml-counter")
    with pytest.raises(EnergyError, match="rapl is not available"):
        create_backend("rapl", powercap_root=tmp_path / "absent")
    monkeypatch.setattr(nvml, "pynvml", FakeNvml(counter_supported=False))
    with pytest.raises(EnergyError, match="support nvml-power only"):
        create_backend("nvml-counter", nvml_power_period_s=0.05)
    with pytest.raises(ValueError, match="unknown energy source"):
        create_backend("joulemeter")  # type: ignore[arg-type]
    estimate = create_backend("estimate", estimate=EstimateConfig(active_w_per_core=4.0))
    assert estimate.describe().startswith("estimate: ")
    assert "4 W per busy core" in estimate.describe()
