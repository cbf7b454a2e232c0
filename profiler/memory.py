"""A process's resident memory as Linux reports it: the high-water marks that the manifest
(an export's peak) and sweep records (a server's peak) give."""

from __future__ import annotations

import contextlib
from pathlib import Path


def peak_rss_bytes(pid: int | None = None) -> int | None:
    """The resident-memory high-water mark (VmHWM) of process ``pid`` (None: this one) over its life
    so far, or since :func:`reset_peak_rss`; None where /proc does not say."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> None:
    """Restart this process's high-water mark (Linux), so that what :func:`peak_rss_bytes` reports
    next is what came after, even in a process that did more before (a sweep exports several
    models)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
