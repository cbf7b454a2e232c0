"""The meter's windows, the short-window rule, the real estimate, idle baseline and J/query."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import pytest

from profiler.energy import (
    EnergyError,
    EnergyMeter,
    EstimateConfig,
    Measurement,
    ShortWindowWarning,
    WindowError,
    measure_idle,
    per_query_energy,
)
from profiler.energy.common import EnergyBackend, Reading
from profiler.energy.estimate import EstimateBackend

from . import Ticks


class ScriptedBackend(EnergyBackend):
    """A counter in J that follows a script of (time, joules) readings."""

    source = "rapl"

    def __init__(self, *readings: tuple[float, float], update_period_s: float = 0.001) -> None:
        self._readings = list(readings)
        self.domains = ("cpu-package:0",)
        self.update_period_s = update_period_s

    def read(self) -> Reading:
        time_s, joules = self._readings.pop(0)
        return Reading(time_s, (joules,))

    def energy_j(self, start: Reading, end: Reading) -> dict[str, float]:
        return {"cpu-package:0": end.counters[0] - start.counters[0]}


def test_overlapping_windows_are_independent() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 10.0), (2.0, 30.0), (4.0, 70.0)))
    meter.begin("a")
    meter.begin("b")
    assert meter.open_windows == ("a", "b")
    a = meter.end("a")  # a: 0..2 s, b: 1..4 s, neither inside the other
    b = meter.end("b")
    assert (a.energy_j, a.duration_s) == ({"cpu-package:0": 30.0}, 2.0)
    assert (b.energy_j, b.duration_s) == ({"cpu-package:0": 60.0}, 3.0)
    assert b.mean_power_w == 20.0
    assert str(a) == "a: 30 J (rapl) over 2.000 s"


def test_window_is_closed_when_the_block_raises() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 5.0)))
    with pytest.raises(RuntimeError, match="boom"), meter.window("stage-1") as window:
        raise RuntimeError("boom")
    assert meter.open_windows == ()
    assert window.measurement is not None
    assert window.measurement.total_j == 5.0


def test_window_misuse_is_explained() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)))
    meter.begin("x")
    with pytest.raises(WindowError, match="already open"):
        meter.begin("x")
    with pytest.raises(WindowError, match=r"no open energy window 'y' \(open: 'x'\)"):
        meter.end("y")
    meter.cancel("x")
    assert meter.open_windows == ()


def test_short_window_warns_and_records_it() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (0.5, 0.0), update_period_s=0.1))
    meter.begin("tiny")
    with pytest.warns(ShortWindowWarning, match=r"under 10 x the rapl update period \(0.1 s\)"):
        measurement = meter.end("tiny")
    assert measurement.energy_j == {"cpu-package:0": 0.0}
    assert any("Measure at least 1 s" in w for w in measurement.warnings)


def test_window_of_ten_periods_does_not_warn() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 7.0), update_period_s=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meter.begin("ok")
        assert meter.end("ok").warnings == []


def test_measurement_is_json_ready_and_keeps_its_source() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (2.0, 3.0)), wall_clock=lambda: 1.7e9)
    meter.begin("m")
    record = json.loads(meter.end("m").model_dump_json())
    assert record == {
        "name": "m",
        "source": "rapl",
        "duration_s": 2.0,
        "energy_j": {"cpu-package:0": 3.0},
        "start_monotonic_s": 0.0,
        "end_monotonic_s": 2.0,
        "start_wall_s": 1.7e9,
        "warnings": [],
        "method": "rapl: cpu-package:0",
        "total_j": 3.0,
    }


def _burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_estimate_runs_for_real_on_this_machine() -> None:
    meter = EnergyMeter(EstimateBackend(EstimateConfig(active_w_per_core=10.0)))
    with meter.window("burn") as window:
        _burn(0.3)
    measurement = window.measurement
    assert measurement is not None
    assert measurement.source == "estimate"
    assert measurement.is_estimate
    assert "estimate" in str(measurement)
    assert "10 W per busy core" in measurement.method
    # 0.3 CPU seconds at 10 W: about 3 J, give or take a few clock ticks.
    assert 2.5 < measurement.energy_j["cpu"] < 4.5


@pytest.mark.integration
def test_estimate_counts_child_processes() -> None:
    meter = EnergyMeter(EstimateBackend())
    burn = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass"
    with meter.window("children") as window:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert window.measurement is not None
    assert window.measurement.energy_j["cpu"] >= 2.5  # the child's 0.3 s, plus its start-up


def test_estimate_uses_scripted_cpu_time_exactly() -> None:
    cpu = Ticks(10.0, 11.5)
    backend = EstimateBackend(EstimateConfig(8.0, idle_w=2.0), cpu_seconds=cpu, clock=Ticks(0.0, 3.0))
    start, end = backend.read(), backend.read()
    assert backend.energy_j(start, end) == {"cpu": 1.5 * 8.0 + 3.0 * 2.0}
    with pytest.raises(ValueError, match="active_w_per_core > 0"):
        EstimateConfig(active_w_per_core=0.0)


def test_idle_baseline_and_per_query_energy() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (10.0, 500.0), (20.0, 500.0), (30.0, 2500.0)))
    idle = measure_idle(meter, 10.0, sleep=lambda seconds: None)
    assert (idle.source, idle.duration_s, idle.power_w) == ("rapl", 10.0, {"cpu-package:0": 50.0})
    meter.begin("load")
    load = meter.end("load")  # 2000 J over 10 s
    result = per_query_energy(load, completed=40, idle=idle)
    assert result.gross_j == 50.0
    assert result.net_j == (2000.0 - 50.0 * 10.0) / 40
    assert not result.clamped
    assert per_query_energy(load, completed=40).net_j is None
    assert "(rapl)" in str(result)


def test_net_energy_is_clamped_and_flagged() -> None:
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 100.0), (2.0, 100.0), (3.0, 150.0)))
    idle = measure_idle(meter, 1.0, sleep=lambda seconds: None)  # 100 W idle
    meter.begin("load")
    result = per_query_energy(meter.end("load"), completed=5, idle=idle)  # 50 W loaded
    assert result.net_j == 0.0
    assert result.clamped
    assert any("negative" in w for w in result.warnings)


def test_per_query_energy_rejects_nonsense() -> None:
    measurement = Measurement(
        name="m",
        source="estimate",
        duration_s=1.0,
        energy_j={"cpu": 1.0},
        start_monotonic_s=0.0,
        end_monotonic_s=1.0,
        start_wall_s=0.0,
    )
    with pytest.raises(ValueError, match="at least one"):
        per_query_energy(measurement, completed=0)
    meter = EnergyMeter(ScriptedBackend((0.0, 0.0), (1.0, 1.0)))
    idle = measure_idle(meter, 1.0, sleep=lambda seconds: None)
    with pytest.raises(EnergyError, match="same meter"):
        per_query_energy(measurement, completed=1, idle=idle)
    with pytest.raises(ValueError, match="positive duration"):
        measure_idle(meter, 0.0)
