"""``profiler doctor``: what this machine would measure with, and whether it is quiet enough to.

Other work on the machine during a measurement slows it (eager LED's p50 at 1,024 tokens went
from 56 ms to 2.8 s on a 2-core machine at load 5), so before a run this samples the machine as
an energy window does (:class:`~profiler.energy.contention.ContentionWindow`) and judges it by the
same threshold. It also prints the energy source and why, ONNX Runtime's providers, and the
thread settings the engines will run with, which decide how badly contention hurts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from profiler.energy.common import EnergyError
from profiler.energy.contention import DISTURBED_SHARE, Contention, ContentionWindow, nvml_processes
from profiler.energy.factory import create_backend
from profiler.energy.nvml import NvmlDevices

#: How long the machine is sampled by default. Units: s.
SAMPLE_SECONDS = 2.0
#: Environment variables that set OpenMP's and MKL's threads and how idle threads wait.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")
#: OpenMP's variable for how idle threads wait, and the value that has them sleep.
WAIT_POLICY, PASSIVE = "OMP_WAIT_POLICY", "PASSIVE"


def sample_machine(seconds: float = SAMPLE_SECONDS) -> Contention | None:
    """What other processes did over ``seconds`` (this one only sleeps); None off Linux."""
    try:
        devices: NvmlDevices | None = NvmlDevices()
    except EnergyError:
        devices = None
    try:
        window = ContentionWindow(gpu_processes=nvml_processes(devices) if devices else None)
        time.sleep(seconds)
        return window.close()
    finally:
        if devices is not None:
            devices.close()


def energy_lines() -> list[str]:
    """The source the server would use, and why the ones before it in the probe order were not."""
    backend = create_backend()
    try:
        return [
            f"energy: {backend.describe()}",
            *(f"  skipped {note}" for note in backend.probe_notes),
            *(f"  warning: {warning}" for warning in backend.warnings),
        ]
    finally:
        backend.close()


def runtime_lines(environ: Mapping[str, str] = os.environ) -> list[str]:
    """ONNX Runtime's providers and the thread settings of ONNX Runtime, torch, OpenMP and MKL."""
    import onnxruntime
    import torch

    variables = ", ".join(f"{name}={environ.get(name, 'unset')}" for name in THREAD_VARIABLES)
    providers = ", ".join(onnxruntime.get_available_providers())
    return [
        f"onnxruntime {onnxruntime.__version__}: providers {providers}; "
        "intra-op threads: one per physical core unless --threads; idle threads do not spin "
        "(the profiler's sessions turn spinning off)",
        f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()}, "
        f"inter-op threads {torch.get_num_interop_threads()}; idle threads "
        + ("sleep" if environ.get(WAIT_POLICY, "").upper() == PASSIVE else "spin before they sleep")
        + f" ({WAIT_POLICY}={environ.get(WAIT_POLICY, 'unset')}; {PASSIVE} is faster on a busy machine, "
        "slower on a quiet one: docs/serving.md, Threads)",
        f"environment: {variables}",
    ]


def cpu_line() -> str:
    """Logical CPUs, and how many this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPUs: {os.cpu_count()} logical, {usable} usable by this process"


def verdict(sample: Contention | None) -> tuple[bool, str]:
    """(quiet, one line saying so) for a sample of the machine."""
    if sample is None:
        return False, "machine: cannot tell whether it is quiet (no /proc/stat: not Linux)."
    figures = f"{sample.describe()} over {sample.duration_s:.1f} s"
    if sample.disturbed:
        return False, (
            f"machine: BUSY: {figures}; over {DISTURBED_SHARE:.0%} of its capacity, so measurements "
            "now would be disturbed. Stop the other work, or expect runs flagged disturbed."
        )
    return True, f"machine: quiet: {figures}; under {DISTURBED_SHARE:.0%}, quiet enough to measure."


def diagnose(seconds: float = SAMPLE_SECONDS) -> tuple[bool, list[str]]:
    """Every line ``profiler doctor`` prints, and whether the machine is quiet.

    The machine is sampled first, while this process only sleeps; its own CPU time is not others'.
    """
    sample = sample_machine(seconds)
    quiet, line = verdict(sample)
    return quiet, [*energy_lines(), *runtime_lines(), cpu_line(), line]
