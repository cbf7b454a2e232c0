"""Long-lived children (servers, locust) that die with the process that started them.

A sweep killed with SIGKILL runs no cleanup, so its children would keep running and keep their
ports. Linux's ``PR_SET_PDEATHSIG`` has the kernel send them SIGTERM instead, and SIGTERM is the
graceful stop of both `profiler serve` and locust.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

#: ``prctl`` option from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1

# Looked up here, in the parent: a forked child of a threaded process must not take loader locks.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with(parent: int) -> None:
    """Get SIGTERM when ``parent`` dies; exit now if it already has (it died before the call).

    The kernel watches the thread that forked this process, so the parent must start the child
    from a thread that lives as long as it (the main thread, here). The setting survives
    ``exec`` but not ``fork``.
    """
    if _prctl is None:
        return
    if _prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent:
        os._exit(1)


def dies_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when this process dies."""
    parent = os.getpid()
    return lambda: die_with(parent)


def forks_die_with_this_process() -> None:
    """From now on, each ``os.fork`` child of this process gets SIGTERM when this process dies."""
    parent = os.getpid()

    def before_fork() -> None:
        nonlocal parent
        parent = os.getpid()

    os.register_at_fork(before=before_fork, after_in_child=lambda: die_with(parent))
