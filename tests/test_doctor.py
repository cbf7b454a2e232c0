"""The doctor's verdict on a sample of the machine: the windows' threshold, one line each way."""

from __future__ import annotations

from profiler.doctor import verdict
from profiler.energy.contention import Contention


def _sample(busy_cpu_s: float) -> Contention:
    """2 s of a 2-CPU machine, of which the doctor itself used 0.01 s."""
    return Contention(
        duration_s=2.0,
        cpu_count=2,
        capacity_cpu_s=4.0,
        busy_cpu_s=busy_cpu_s,
        steal_cpu_s=0.0,
        server_cpu_s=0.01,
        load_generator_cpu_s=None,
        load_average_open=5.1,
        load_average_close=5.3,
        gpu_processes=None,
    )


def test_a_busy_machine_is_named_with_its_figures() -> None:
    quiet, line = verdict(_sample(1.53))
    assert not quiet
    assert line.startswith("machine: BUSY: others used 38% of the CPUs (load 5.3) over 2.0 s; over 10% ")


def test_a_quiet_machine_is_quiet_enough() -> None:
    quiet, line = verdict(_sample(0.21))
    assert quiet
    assert line == (
        "machine: quiet: others used 5% of the CPUs (load 5.3) over 2.0 s; under 10%, "
        "quiet enough to measure."
    )


def test_without_proc_stat_the_doctor_cannot_call_it_quiet() -> None:
    quiet, line = verdict(None)
    assert not quiet
    assert "cannot tell" in line
