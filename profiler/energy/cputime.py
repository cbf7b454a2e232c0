"""CPU time of a process or process tree and CPU utilisation of the whole system, through psutil.

The estimate backend, the power timeline and the benchmarks all need these numbers; they are
summed here only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, Final

import psutil  # type: ignore[import-untyped, unused-ignore]

#: The kernel accounts CPU time in clock ticks (USER_HZ, 100 per second on Linux): CPU time read
#: over a window is only resolved to this.
CLOCK_TICK_S: Final[float] = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def process_seconds(process: Any, *, reaped_children: bool) -> float:
    """User + system CPU time of a ``psutil.Process``; with ``reaped_children``, plus that of the
    children it has waited for. Live children are never included: :class:`ProcessTreeCpu` adds
    them. Units: s.

    Raises:
        psutil.Error: the process is gone or not ours to read.
    """
    times = process.cpu_times()
    total = times.user + times.system
    if reaped_children:
        total += times.children_user + times.children_system
    return float(total)


def _own_seconds() -> float:
    """The same for this process: its own time from the scheduler's nanosecond clock
    (``time.process_time``, all threads), so short windows are not rounded to clock ticks, plus
    its reaped children from ``os.times``. Syscalls only, no /proc parsing. Units: s."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


class ProcessTreeCpu:
    """CPU seconds used by a process and all its descendants since they started.

    A descendant's time is counted while it lives and, once its parent reaps it, through the
    parent's ``children_*`` times, so the total never drops when a worker exits. The list of
    descendants is rescanned at most every ``children_refresh_s`` (a scan reads all of /proc);
    0 rescans on every call.
    """

    def __init__(
        self,
        pid: int | None = None,
        children_refresh_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = psutil.Process(pid)
        self._own = pid is None or pid == os.getpid()
        self._refresh_s = children_refresh_s
        self._clock = clock
        self._children: list[Any] = []
        self._scanned_at = -math.inf

    def seconds(self) -> float:
        """Total CPU time of the tree so far. Units: s."""
        now = self._clock()
        if now - self._scanned_at >= self._refresh_s:
            try:
                self._children = self._root.children(recursive=True)
            except psutil.Error:
                self._children = []
            self._scanned_at = now
        total = _own_seconds() if self._own else process_seconds(self._root, reaped_children=True)
        for child in self._children:
            try:
                total += process_seconds(child, reaped_children=True)
            except psutil.Error:  # exited (then counted by its parent) or not ours to read
                continue
        return total


def _psutil_busy_total() -> tuple[float, float]:
    times = psutil.cpu_times()
    # On Linux guest time is already inside user time; psutil.cpu_percent subtracts it the same way.
    total = float(sum(times)) - float(getattr(times, "guest", 0.0)) - float(getattr(times, "guest_nice", 0.0))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return total - idle, total


def _proc_stat_busy_total(fd: int) -> tuple[float, float]:
    """The first line of /proc/stat, read from an open descriptor (a fifth of psutil's cost). Units: ticks."""
    fields = [int(x) for x in os.pread(fd, 256, 0).split(b"\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user..steal; guest and guest_nice are already inside user and nice
    return float(total - fields[3] - fields[4]), float(total)  # minus idle and iowait


class SystemCpu:
    """System-wide CPU utilisation between successive calls (kept here, not in psutil's globals)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open("/proc/stat", os.O_RDONLY)
            _proc_stat_busy_total(self._fd)
        except (OSError, ValueError, IndexError):  # not Linux, or an unexpected format: use psutil
            self.close()
        self._last = self._busy_total()

    def _busy_total(self) -> tuple[float, float]:
        return _psutil_busy_total() if self._fd is None else _proc_stat_busy_total(self._fd)

    def close(self) -> None:
        """Close /proc/stat."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def percent(self) -> float | None:
        """Busy share of all CPUs since the previous call. Units: % (100 = every CPU busy)."""
        busy, total = self._busy_total()
        last_busy, last_total = self._last
        self._last = (busy, total)
        elapsed = total - last_total
        return None if elapsed <= 0 else max(0.0, min(100.0, 100.0 * (busy - last_busy) / elapsed))
