"""Contention: the /proc/stat arithmetic from fixture text, the document's derived figures, the GPU
processes of others (NVML faked), and real windows while a CPU burner runs."""

from __future__ import annotations

import json
import os
import threading
import time

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from pydantic import ValidationError

from profiler.energy import nvml
from profiler.energy.contention import (
    DISTURBED_SHARE,
    Contention,
    ContentionError,
    ContentionWindow,
    GpuProcess,
    nvml_processes,
    parse_proc_stat,
    read_cpu_times,
)
from profiler.energy.meter import Measurement
from profiler.energy.nvml import NvmlDevices
from profiler.energy.windows import OpenWindow, WindowResult
from profiler.server.energy import ServerEnergy

from . import FakeNvml

#: /proc/stat at two instants of a 2-CPU guest, 1 s apart (USER_HZ = 100): in between user +120,
#: system +30, irq +2, softirq +3, idle +25, iowait +5, steal +15 ticks; guest (inside user) +40.
BEFORE = "cpu  1000 10 500 8000 100 0 20 50 40 0\ncpu0 500 5 250 4000 50 0 10 25 20 0\nintr 1\n"
AFTER = "cpu  1120 10 530 8025 105 2 23 65 80 0\ncpu0 560 5 265 4012 52 1 12 32 40 0\nintr 2\n"


def contention(**fields: object) -> Contention:
    values: dict[str, object] = {
        "duration_s": 1.0,
        "cpu_count": 2,
        "capacity_cpu_s": 2.0,
        "busy_cpu_s": 1.0,
        "steal_cpu_s": 0.0,
        "server_cpu_s": 0.5,
        "load_generator_cpu_s": None,
        "load_average_open": 1.5,
        "load_average_close": 5.2,
        "gpu_processes": None,
        **fields,
    }
    return Contention.model_validate(values)


def test_proc_stat_busy_steal_and_capacity_in_seconds() -> None:
    before, after = parse_proc_stat(BEFORE, tick_s=0.01), parse_proc_stat(AFTER, tick_s=0.01)
    delta = after - before
    assert delta.busy_s == pytest.approx(1.55)  # user, nice, system, irq, softirq: 155 ticks
    assert delta.steal_s == pytest.approx(0.15)
    assert delta.total_s == pytest.approx(2.0)  # busy + idle + iowait + steal: 2 CPUs for 1 s
    assert after.busy_s == pytest.approx(16.85)  # guest (80 ticks) is inside user, not added


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  1 2 3\n", "cpu  a b c d e f g h\n"])
def test_proc_stat_that_is_not_a_cpu_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a /proc/stat cpu line|invalid literal"):
        parse_proc_stat(text)


def test_this_machine_has_proc_stat() -> None:
    now = read_cpu_times()
    assert now is not None  # the profiler targets Linux
    assert 0 < now.busy_s < now.total_s


def test_others_are_busy_time_neither_the_server_nor_the_load_generator_used() -> None:
    figures = contention(busy_cpu_s=1.5, server_cpu_s=0.6, load_generator_cpu_s=0.3)
    assert figures.others_cpu_s == pytest.approx(0.6)
    assert figures.others_share == pytest.approx(0.3)
    assert figures.disturbed
    assert figures.describe() == "others used 30% of the CPUs (load 5.2)"
    # Clock ticks can put the processes' sum a little over the machine's: never below zero.
    assert contention(busy_cpu_s=0.5, server_cpu_s=0.52).others_cpu_s == 0.0


def test_the_threshold_is_one_named_share_of_capacity() -> None:
    at = contention(busy_cpu_s=0.5 + 2.0 * DISTURBED_SHARE)
    over = contention(busy_cpu_s=0.5 + 2.0 * DISTURBED_SHARE + 0.02)
    assert at.others_share == pytest.approx(DISTURBED_SHARE)
    assert not at.disturbed
    assert over.disturbed


def test_steal_or_others_on_the_gpus_disturb_too() -> None:
    stolen = contention(busy_cpu_s=0.5, steal_cpu_s=0.3)
    assert stolen.disturbed
    assert stolen.describe() == "others used 0% of the CPUs (load 5.2), steal 15%"
    on_gpu = contention(busy_cpu_s=0.5, gpu_processes=[GpuProcess(gpu=0, pid=4242, memory_bytes=1 << 30)])
    assert on_gpu.disturbed
    assert on_gpu.describe().endswith(", 1 other process on the GPUs")
    assert not contention(busy_cpu_s=0.5, gpu_processes=[]).disturbed


def test_derived_figures_are_recomputed_on_reading_and_old_windows_load() -> None:
    written = json.loads(contention(busy_cpu_s=1.5).model_dump_json())
    assert written["disturbed"] is True
    tampered = {**written, "disturbed": False, "others_share": 0.0}
    assert Contention.model_validate(tampered).disturbed
    with pytest.raises(ValidationError, match="server_cpu_s"):
        Contention.model_validate({**written, "server_cpu_s": "0.5"})
    measurement = Measurement(
        name="w", source="estimate", duration_s=1.0, energy_j={"cpu": 1.0},
        start_monotonic_s=0.0, end_monotonic_s=1.0, start_wall_s=1.7e9,
    )  # fmt: skip
    old = {"measurement": measurement.model_dump(), "completed": 0, "per_query": None, "idle": None}
    assert WindowResult.model_validate(old).contention is None


def test_gpu_processes_of_others_come_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(gpus=2, processes={0: [(os.getpid(), 1 << 30), (4242, None)], 1: [(777, 2 << 30)]})
    monkeypatch.setattr(nvml, "pynvml", fake)
    devices = NvmlDevices()
    read = nvml_processes(devices)
    assert read() == [
        GpuProcess(gpu=0, pid=os.getpid(), memory_bytes=1 << 30),
        GpuProcess(gpu=0, pid=4242, memory_bytes=None),
        GpuProcess(gpu=1, pid=777, memory_bytes=2 << 30),
    ]
    window = ContentionWindow(gpu_processes=read)
    fake.processes[1] = []  # 777 left before the window closed: it was there, so it counts
    result = window.close()
    assert result is not None
    assert result.gpu_processes == [
        GpuProcess(gpu=0, pid=4242, memory_bytes=None),
        GpuProcess(gpu=1, pid=777, memory_bytes=2 << 30),
    ]  # the server's own process is not another's
    assert result.disturbed
    devices.close()


def test_a_load_generator_that_is_not_here_is_refused() -> None:
    pid = 2**22 + 1  # above pid_max's default ceiling: no such process
    with pytest.raises(ContentionError, match=f"no load generator process {pid}"):
        ContentionWindow(load_generator_pid=pid)


# --- Real windows, real CPU burners --------------------------------------------------------------

BURN_S = 2.0


def _window(energy: ServerEnergy, name: str, load_generator_pid: int | None = None) -> Contention:
    energy.begin(name, OpenWindow(load_generator_pid=load_generator_pid))
    time.sleep(BURN_S)
    result = energy.end(name).contention
    assert result is not None
    return result


def _burn_in_a_thread(seconds: float) -> threading.Thread:
    """The server's own work: one of its threads busy for ``seconds``."""

    def spin() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    return thread


def test_a_burner_beside_the_server_disturbs_its_window_and_the_servers_own_work_does_not(
    cpu_burner: psutil.Process,
) -> None:
    energy = ServerEnergy()
    try:
        before = cpu_burner.cpu_times()
        burned = _window(energy, "burner")
        after = cpu_burner.cpu_times()
        cpu_burner.suspend()
        spin = _burn_in_a_thread(BURN_S)
        quiet = _window(energy, "quiet")
        spin.join()
    finally:
        energy.close()
    burner_s = (after.user + after.system) - (before.user + before.system)
    assert burned.duration_s == pytest.approx(BURN_S, abs=0.5)
    assert burned.capacity_cpu_s == pytest.approx(BURN_S * os.cpu_count(), rel=0.25)  # type: ignore[operator]
    # Others include the burner (less a few clock ticks of skew between the two reads).
    assert burned.others_cpu_s >= burner_s - 0.1
    burner_share = burner_s / burned.capacity_cpu_s
    if burner_share > 2 * DISTURBED_SHARE:  # a clear share even on a busy shared machine
        assert burned.disturbed
        assert burned.describe().startswith(f"others used {burned.others_share:.0%} of the CPUs (load ")
    # The server's own busy thread is the server's, not others'.
    assert quiet.server_cpu_s >= 0.25 * BURN_S  # at least a quarter of a core, even when shared
    assert quiet.others_share < burned.others_share - 0.5 * burner_share


def test_the_load_generators_tree_is_counted_apart_from_others(cpu_burner: psutil.Process) -> None:
    energy = ServerEnergy()
    try:
        before = cpu_burner.cpu_times()
        counted = _window(energy, "stage", load_generator_pid=cpu_burner.pid)
        after = cpu_burner.cpu_times()
    finally:
        energy.close()
    burner_s = (after.user + after.system) - (before.user + before.system)
    assert counted.load_generator_cpu_s is not None
    assert counted.load_generator_cpu_s == pytest.approx(burner_s, abs=0.1)
    assert counted.load_generator_cpu_s > 0.1  # it ran, and others do not hold it
    assert counted.others_cpu_s <= counted.busy_cpu_s - counted.server_cpu_s - burner_s + 0.1
