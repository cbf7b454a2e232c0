"""The power timeline on this machine (CPU only): a real background thread, JSON-ready samples."""

from __future__ import annotations

import json
import time

import pytest

from profiler.energy import BackendUnavailable, PowerTimeline
from profiler.energy.timeline import Timeline, TimelineSample, cpu_estimate_power_series, gpu_power_series
from profiler.stats import integrate

from . import Ticks


def test_samples_in_the_background_and_serialises() -> None:
    timeline = PowerTimeline(rate_hz=50.0, gpus=None)
    with timeline:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
    samples = timeline.samples
    assert len(samples) >= 8  # ~15 at 50 Hz over 0.3 s, plus the first and the last
    times = [s.t_monotonic_s for s in samples]
    assert times == sorted(times)
    busy = [s.cpu_tree_pct for s in samples[1:] if s.cpu_tree_pct is not None]
    assert max(busy) > 50.0  # one core was kept busy
    records = json.loads(Timeline(samples=samples).model_dump_json())["samples"]
    assert set(records[0]) == {"t_monotonic_s", "t_wall_s", "cpu_tree_pct", "cpu_system_pct", "gpus"}
    assert records[0]["cpu_tree_pct"] is None  # nothing to compare the first sample with
    assert Timeline.model_validate_json(json.dumps({"samples": records})).samples == samples


def test_start_twice_is_refused_and_stop_is_idempotent() -> None:
    timeline = PowerTimeline(rate_hz=20.0, gpus=None).start()
    with pytest.raises(Exception, match="already running"):
        timeline.start()
    first = timeline.stop()
    assert timeline.stop() == first
    timeline.close()


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        PowerTimeline(rate_hz=0.0, gpus=None)


def test_cpu_estimate_series_integrates_to_the_estimate() -> None:
    samples = [
        TimelineSample(t_monotonic_s=0.0, t_wall_s=100.0, cpu_tree_pct=None, cpu_system_pct=None),
        TimelineSample(t_monotonic_s=1.0, t_wall_s=101.0, cpu_tree_pct=100.0, cpu_system_pct=50.0),
        TimelineSample(t_monotonic_s=2.0, t_wall_s=102.0, cpu_tree_pct=200.0, cpu_system_pct=100.0),
    ]
    times, watts = cpu_estimate_power_series(samples, active_w_per_core=10.0)
    assert (times, watts) == ([1.0, 2.0], [10.0, 20.0])
    assert integrate(times, watts, 1.0, 2.0) == 15.0
    assert cpu_estimate_power_series(samples, 10.0, clock="wall")[0] == [101.0, 102.0]
    with pytest.raises(BackendUnavailable, match="no GPU power"):
        gpu_power_series(samples)


def test_injected_clocks_are_used() -> None:
    timeline = PowerTimeline(gpus=None, clock=Ticks(5.0, 6.0), wall_clock=lambda: 42.0)
    first, second = timeline.sample(), timeline.sample()
    assert (first.t_monotonic_s, second.t_monotonic_s, second.t_wall_s) == (5.0, 6.0, 42.0)
    assert second.cpu_tree_pct is not None
    assert second.cpu_tree_pct >= 0.0


def test_a_failing_read_skips_the_sample_and_keeps_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    timeline = PowerTimeline(rate_hz=100.0, gpus=None).start()
    taken = len(timeline.samples)

    def broken() -> float:
        raise OSError("no /proc/stat")

    monkeypatch.setattr(timeline._system, "percent", broken)
    time.sleep(0.05)
    assert timeline.stop() == timeline.samples
    assert len(timeline.samples) == taken
    assert len(timeline.errors) >= 2
    assert "no /proc/stat" in timeline.errors[-1]
