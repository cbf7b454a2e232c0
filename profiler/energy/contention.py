"""What else used the server's machine during a measurement window: CPU time and steal from
/proc/stat, the load average, the server's and the load generator's process trees, and other
processes on the GPUs.

A latency measured while other work competes for the CPUs is not the model's: on a 2-core machine
at load 5, eager LED's p50 at 1,024 tokens went from 56 ms to 2.8 s. Every energy window records
this (:class:`Contention`, inside :class:`~profiler.energy.windows.WindowResult`), and
``profiler doctor`` checks the same figures against the same threshold before a run. Linux only:
elsewhere a window records no contention.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil  # type: ignore[import-untyped, unused-ignore]
from pydantic import Field, computed_field

from profiler.documents import Document
from profiler.energy.common import EnergyError
from profiler.energy.cputime import CLOCK_TICK_S, ProcessTreeCpu
from profiler.energy.nvml import NvmlDevices

#: A measurement is disturbed when other processes used more than this share of the machine's CPU
#: capacity over it, or the hypervisor stole more than this share: 10% of a 2-core machine is a
#: fifth of a core, enough to slow a model that uses every core by far more than that.
DISTURBED_SHARE: Final = 0.10
PROC_STAT: Final = Path("/proc/stat")
#: Changes at every boot and is the same for every process of one kernel: the load generator's pid
#: is only meaningful to a server whose machine reports the same id.
BOOT_ID: Final = Path("/proc/sys/kernel/random/boot_id")


class ContentionError(ValueError):
    """A window's load generator cannot be measured (no such process); the message says which."""


@dataclass(frozen=True)
class CpuTimes:
    """Machine-wide CPU time since boot, summed over every CPU, from /proc/stat's first line.

    Attributes:
        busy_s: user, nice, system, irq and softirq: the CPUs ran something. Units: s.
        steal_s: the hypervisor ran another guest on our CPUs. Units: s.
        total_s: everything, idle and iowait included: the capacity. Units: s.
    """

    busy_s: float
    steal_s: float
    total_s: float

    def __sub__(self, earlier: CpuTimes) -> CpuTimes:
        return CpuTimes(
            self.busy_s - earlier.busy_s, self.steal_s - earlier.steal_s, self.total_s - earlier.total_s
        )


def parse_proc_stat(text: str, tick_s: float = CLOCK_TICK_S) -> CpuTimes:
    """/proc/stat's ``cpu`` line in seconds (the kernel counts USER_HZ ticks).

    guest and guest_nice are already inside user and nice, so only the first eight fields count.

    Raises:
        ValueError: the text does not start with a ``cpu`` line of at least eight numbers.
    """
    fields = text.split("\n", 1)[0].split()
    if len(fields) < 9 or fields[0] != "cpu":
        raise ValueError(f"not a /proc/stat cpu line: {text[:80]!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    busy = user + nice + system + irq + softirq
    return CpuTimes(busy * tick_s, steal * tick_s, (busy + idle + iowait + steal) * tick_s)


def read_cpu_times() -> CpuTimes | None:
    """The machine's CPU times now; None where there is no /proc/stat (not Linux)."""
    try:
        return parse_proc_stat(PROC_STAT.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def load_average() -> float | None:
    """The 1-minute load average: runnable (and uninterruptible) tasks; None where unknown."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine_id() -> str | None:
    """This boot of this machine (the kernel's boot id), None where the kernel does not say."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def cpu_count() -> int:
    """CPUs /proc/stat sums over (every online CPU, whatever this process's affinity)."""
    return os.cpu_count() or 1


class GpuProcess(Document):
    """A compute process on a GPU that is not the server's. ``memory_bytes``: None where NVML
    cannot say (MIG, some containers)."""

    gpu: int
    pid: int
    memory_bytes: int | None


class Contention(Document):
    """What used the server's machine while a window was open, besides the server.

    Attributes:
        duration_s: the window's length on this clock. Units: s.
        cpu_count: logical CPUs of the machine.
        capacity_cpu_s: CPU time the machine had over the window (about duration x CPUs). Units: s.
        busy_cpu_s: CPU time spent running anything, machine-wide. Units: s.
        steal_cpu_s: CPU time the hypervisor gave to other guests. Units: s.
        server_cpu_s: the server process and its children. Units: s.
        load_generator_cpu_s: the load generator's process tree, when it runs on this machine and
            said which it is; None otherwise (its time then counts as others'). Units: s.
        load_average_open / load_average_close: 1-minute load average at each end.
        gpu_processes: compute processes of others on the GPUs, seen at either end; None without NVML.
        notes: why a figure is missing or not what it seems.
    """

    duration_s: float
    cpu_count: int
    capacity_cpu_s: float
    busy_cpu_s: float
    steal_cpu_s: float
    server_cpu_s: float
    load_generator_cpu_s: float | None
    load_average_open: float | None
    load_average_close: float | None
    gpu_processes: list[GpuProcess] | None
    notes: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def others_cpu_s(self) -> float:
        """Busy time the server and the load generator do not account for (never below 0). Units: s."""
        return max(0.0, self.busy_cpu_s - self.server_cpu_s - (self.load_generator_cpu_s or 0.0))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def others_share(self) -> float:
        """Others' share of the machine's CPU capacity over the window (1 = every CPU, all along)."""
        return self.others_cpu_s / self.capacity_cpu_s if self.capacity_cpu_s > 0 else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steal_share(self) -> float:
        """Steal's share of the capacity."""
        return self.steal_cpu_s / self.capacity_cpu_s if self.capacity_cpu_s > 0 else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def disturbed(self) -> bool:
        """Others or steal took more than :data:`DISTURBED_SHARE`, or others computed on the GPUs."""
        return (
            self.others_share > DISTURBED_SHARE
            or self.steal_share > DISTURBED_SHARE
            or bool(self.gpu_processes)
        )

    def describe(self) -> str:
        """``others used 38% of the CPUs (load 5.2)``, with steal and GPU processes where present."""
        loads = [x for x in (self.load_average_open, self.load_average_close) if x is not None]
        text = f"others used {self.others_share:.0%} of the CPUs"
        if loads:
            text += f" (load {max(loads):.1f})"
        if self.steal_share > DISTURBED_SHARE:
            text += f", steal {self.steal_share:.0%}"
        if self.gpu_processes:
            pids = sorted({process.pid for process in self.gpu_processes})
            text += f", {len(pids)} other process{'es' if len(pids) != 1 else ''} on the GPUs"
        return text


GpuProcesses = Callable[[], list[GpuProcess]]


def nvml_processes(devices: NvmlDevices) -> GpuProcesses:
    """Every compute process on ``devices``, as a reader for :class:`ContentionWindow`."""

    def read() -> list[GpuProcess]:
        return [
            GpuProcess(gpu=index, pid=pid, memory_bytes=memory)
            for index in devices.indices
            for pid, memory in devices.compute_processes(index)
        ]

    return read


def _tree_pids(root: int) -> set[int]:
    try:
        return {root, *(child.pid for child in psutil.Process(root).children(recursive=True))}
    except psutil.Error:
        return {root}


class ContentionWindow:
    """One window's contention: readings at opening, :meth:`close` returns the figures.

    Args:
        load_generator_pid: the load generator's root process on this machine, or None.
        gpu_processes: reads the GPUs' compute processes (:func:`nvml_processes`); None without NVML.
        notes: carried into the result (e.g. why the load generator is not counted).

    Raises:
        ContentionError: no process ``load_generator_pid`` here (or not ours to read).
    """

    def __init__(
        self,
        load_generator_pid: int | None = None,
        gpu_processes: GpuProcesses | None = None,
        notes: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notes = list(notes)
        self._clock = clock
        self._gpu_reader = gpu_processes
        self._server = ProcessTreeCpu()
        self._load_generator: ProcessTreeCpu | None = None
        if load_generator_pid is not None and os.getpid() in _tree_pids(load_generator_pid):
            # Its tree holds the server (one process serves and loads, as in tests): counting it
            # apart would count the server twice.
            self._notes.append("the load generator's process tree holds the server: not counted apart.")
        elif load_generator_pid is not None:
            try:
                self._load_generator = ProcessTreeCpu(load_generator_pid)
                self._load_generator_start = self._load_generator.seconds()
            except psutil.Error as exc:
                raise ContentionError(
                    f"no load generator process {load_generator_pid} on the server's machine ({exc}); "
                    "send its pid only when it runs there."
                ) from exc
        self._gpus = self._read_gpus()
        self._load = load_average()
        self._server_start = self._server.seconds()
        self._cpu = read_cpu_times()
        self._start = clock()

    def _read_gpus(self) -> list[GpuProcess] | None:
        if self._gpu_reader is None:
            return None
        try:
            return self._gpu_reader()
        except EnergyError as exc:
            self._notes.append(f"GPU processes not read: {exc}")
            return []

    def close(self) -> Contention | None:
        """The figures since opening; None where the machine's CPU times are unknown (not Linux)."""
        cpu = read_cpu_times()
        duration = self._clock() - self._start
        server = self._server.seconds() - self._server_start
        load_generator = None
        if self._load_generator is not None:
            try:
                load_generator = self._load_generator.seconds() - self._load_generator_start
            except psutil.Error:
                self._notes.append(
                    "the load generator exited before the window closed; others hold its time."
                )
        if cpu is None or self._cpu is None:
            return None
        delta = cpu - self._cpu
        return Contention(
            duration_s=duration,
            cpu_count=cpu_count(),
            capacity_cpu_s=delta.total_s,
            busy_cpu_s=delta.busy_s,
            steal_cpu_s=delta.steal_s,
            server_cpu_s=server,
            load_generator_cpu_s=load_generator,
            load_average_open=self._load,
            load_average_close=load_average(),
            gpu_processes=self._others_on_gpus(),
            notes=self._notes,
        )

    def _others_on_gpus(self) -> list[GpuProcess] | None:
        end = self._read_gpus()
        if self._gpus is None or end is None:
            return None
        ours = _tree_pids(os.getpid())
        seen: dict[tuple[int, int], GpuProcess] = {}
        for process in [*self._gpus, *end]:
            if process.pid not in ours:
                seen.setdefault((process.gpu, process.pid), process)
        return list(seen.values())
