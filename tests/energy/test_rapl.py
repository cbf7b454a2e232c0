"""RAPL from fake powercap trees in a temporary directory: discovery, wraparound, unreadable files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from profiler.energy import (
    BackendUnavailable,
    EnergyMeter,
    EnergyPermissionError,
    rapl,
)
from profiler.energy.rapl import RaplBackend, discover_zones, probe_rapl

from . import Ticks, make_powercap, set_energy

MAX_UJ = 262_143_328_850  # a real Intel package's max_energy_range_uj


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages with DRAM, a core subzone, psys and an mmio duplicate, as on a real server."""
    return make_powercap(
        tmp_path / "powercap",
        {
            "intel-rapl:0": ("package-0", 1_000_000, MAX_UJ),
            "intel-rapl:0:0": ("core", 500_000, MAX_UJ),
            "intel-rapl:0:1": ("dram", 2_000_000, 65_712_999_613),
            "intel-rapl:1": ("package-1", 3_000_000, MAX_UJ),
            "intel-rapl:1:0": ("dram", 4_000_000, 65_712_999_613),
            "intel-rapl:2": ("psys", 9_000_000, MAX_UJ),
            "intel-rapl-mmio:0": ("package-0", 7_000_000, MAX_UJ),
        },
    )


def test_discovers_packages_and_dram_only(powercap: Path) -> None:
    zones = discover_zones(powercap)
    assert [zone.domain for zone in zones] == ["cpu-package:0", "dram:0", "cpu-package:1", "dram:1"]
    assert zones[1].max_energy_range_uj == 65_712_999_613


def test_amd_style_names_are_found(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "pc", {"amd-rapl:0": ("package-0", 10, 2**32)})
    assert [zone.domain for zone in discover_zones(root)] == ["cpu-package:0"]


def test_missing_powercap_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="does not exist"):
        discover_zones(tmp_path / "nothing-here")
    empty = make_powercap(tmp_path / "pc", {"intel-rapl:0": ("psys", 1, 10)})
    with pytest.raises(BackendUnavailable, match="no RAPL package or DRAM zone"):
        discover_zones(empty)


def test_energy_is_counter_difference_in_joules(powercap: Path) -> None:
    backend = RaplBackend(discover_zones(powercap), root=powercap, clock=Ticks(0.0, 0.0, 2.0), poll_s=0)
    start = backend.read()
    set_energy(powercap, "intel-rapl:0", 1_000_000 + 30_000_000)
    set_energy(powercap, "intel-rapl:1:0", 4_000_000 + 1_500_000)
    end = backend.read()
    assert backend.energy_j(start, end) == {
        "cpu-package:0": 30.0,
        "dram:0": 0.0,
        "cpu-package:1": 0.0,
        "dram:1": 1.5,
    }
    assert end.time_s - start.time_s == 2.0


def test_wraparound_uses_max_energy_range(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "pc", {"intel-rapl:0": ("package-0", MAX_UJ - 2_000_000, MAX_UJ)})
    backend = RaplBackend(discover_zones(root), root=root, clock=Ticks(*map(float, range(10))), poll_s=0)
    meter = EnergyMeter(backend)
    meter.begin("wraps")
    set_energy(root, "intel-rapl:0", 3_000_000)  # passed the top: 2 J before the wrap, 3 J after
    middle = meter.end("wraps").energy_j["cpu-package:0"]
    assert middle == 5.0
    # Two wraps in one window are caught when something reads in between (the wrap thread does).
    meter.begin("long")
    set_energy(root, "intel-rapl:0", 1_000_000)
    backend.read()
    set_energy(root, "intel-rapl:0", 500_000)
    backend.read()
    set_energy(root, "intel-rapl:0", 2_000_000)
    long = meter.end("long")
    assert long.energy_j["cpu-package:0"] == (2 * MAX_UJ - 1_000_000) / 1e6
    assert long.source == "rapl"


def test_wrap_thread_reads_in_background(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "pc", {"intel-rapl:0": ("package-0", 100, MAX_UJ)})
    backend = probe_rapl(root, poll_s=0.01)
    start = backend.read()
    set_energy(root, "intel-rapl:0", 50)
    time.sleep(0.1)  # the thread sees the wrap
    set_energy(root, "intel-rapl:0", 60)
    backend.close()
    end = backend.read()
    assert backend.energy_j(start, end)["cpu-package:0"] == (MAX_UJ - 100 + 60) / 1e6


def _deny_energy_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rapl.read_sysfs

    def read(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "read_sysfs", read)


def test_unreadable_counters_say_how_to_fix(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deny_energy_reads(monkeypatch)
    with pytest.raises(EnergyPermissionError) as caught:
        probe_rapl(powercap, poll_s=0)
    message = str(caught.value)
    assert f"sudo chmod a+r {powercap}/intel-rapl:*/energy_uj" in message
    assert "run as root" in message
    assert isinstance(caught.value.__cause__, PermissionError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_counters_by_file_mode(powercap: Path) -> None:
    (powercap / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.raises(EnergyPermissionError, match="chmod a\\+r"):
        probe_rapl(powercap, poll_s=0)


def test_default_poll_period_is_well_inside_a_wrap(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "pc", {"intel-rapl:0": ("package-0", 1, 1_000_000_000)})  # 1 kJ range
    backend = probe_rapl(root)
    assert backend._poll_s == pytest.approx(0.25)  # 1000 J at 1 kW wraps in 1 s; check 4x as often
    backend.close()
