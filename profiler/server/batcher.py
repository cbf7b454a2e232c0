"""Per-bucket dynamic batching in front of one engine, with a bounded queue.

Requests of the same bucket and mode wait together up to ``max_wait_ms`` (or until
``max_batch_size`` of them are waiting) and run as one padded batch on a single thread: the
engine is not thread-safe, and one batch at a time is what the hardware does best. That thread is
whichever calls :meth:`Batcher.run` (the server uses its main thread: the one that loaded the
model, where PyTorch's OpenMP pool runs at full speed). The queue
is bounded: when ``max_queue`` requests wait, new ones are refused at once (the server answers
503 with Retry-After), so memory stays bounded under any load.

The worker sleeps in ``select`` on a self-pipe rather than on a condition variable, so anything
that writes to :attr:`Batcher.wakeup_fd` wakes it: a new job, :meth:`Batcher.close`, and, once the
server passes the fd to :func:`signal.set_wakeup_fd`, a signal delivered to *any* thread. Python
runs signal handlers only on the main thread, between bytecodes; a worker parked in an untimed
lock wait never got there when the kernel handed SIGTERM to another thread, and the server hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from profiler.engines.engine import Job

Result = TypeVar("Result")
#: Runs one batch: jobs and their request ids in, one result per job out.
RunBatch = Callable[[list[Job], list[str]], list[Result]]


class QueueFull(Exception):
    """The bounded queue is full; the caller should retry later."""


class ShuttingDown(Exception):
    """The server is draining and takes no new work."""


@dataclass(frozen=True)
class Served(Generic[Result]):
    """A job's result and how long it waited in the queue."""

    result: Result
    queue_ms: float


@dataclass
class Pending:
    job: Job
    request_id: str
    bucket: int
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class Wakeup:
    """A self-pipe: :meth:`notify` from any thread (or a signal) ends :meth:`wait` early."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)  # signal.set_wakeup_fd needs a non-blocking fd
        # Closed with the object, not on stop: a late notify or signal must never hit a reused fd.
        weakref.finalize(self, _close_all, self.read_fd, self.write_fd)
        self.poller = select.poll()  # not select.select: it fails on fds above 1023
        self.poller.register(self.read_fd, select.POLLIN)

    def notify(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the pipe is full: a wake-up is already pending
            os.write(self.write_fd, b"\0")

    def wait(self, timeout: float | None) -> None:
        """Sleep until notified or ``timeout`` seconds pass (None: no limit); consume the notes."""
        if self.poller.poll(None if timeout is None else max(timeout * 1000, 0)):
            with contextlib.suppress(BlockingIOError):
                while os.read(self.read_fd, 4096):
                    pass


class Batcher(Generic[Result]):
    """Collects jobs into batches and runs them on one worker thread."""

    def __init__(
        self,
        run_batch: RunBatch[Result],
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[int, int], None] | None = None,
        prepare: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.prepare = prepare
        self.on_ready = on_ready
        self.queues: dict[tuple[int, str], deque[Pending]] = {}
        self.waiting = 0
        self.running = 0
        self.accepting = True
        self.stopped = False
        self.condition = threading.Condition()
        self.wakeup = Wakeup()
        self.finished = threading.Event()

    @property
    def wakeup_fd(self) -> int:
        """Write a byte here (or hand it to :func:`signal.set_wakeup_fd`) to wake the worker."""
        return self.wakeup.write_fd

    def depth(self) -> int:
        """Jobs waiting plus jobs in the running batch."""
        return self.waiting + self.running

    def submit(self, job: Job, bucket: int, request_id: str) -> asyncio.Future[Served[Result]]:
        """Queue ``job``; the returned future resolves on the caller's event loop."""
        loop = asyncio.get_running_loop()
        pending = Pending(job, request_id, bucket, loop.create_future(), loop)
        with self.condition:
            if not self.accepting:
                raise ShuttingDown
            if self.waiting >= self.max_queue:
                raise QueueFull
            self.queues.setdefault((bucket, job.mode), deque()).append(pending)
            self.waiting += 1
        self.wakeup.notify()
        return pending.future

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new work, finish what is queued and running, then stop the worker."""
        with self.condition:
            self.accepting = False
        self.wakeup.notify()  # a partial batch waiting for batch-mates runs now
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.depth() and time.monotonic() < deadline:
                self.condition.wait(0.05)
            self.stopped = True
        self.wakeup.notify()
        self.finished.wait(timeout=5)

    def _next_batch(self) -> list[Pending] | None:
        """Block until a batch is due; None when stopped."""
        while True:
            with self.condition:
                if self.stopped:
                    return None
                ready = [queue for queue in self.queues.values() if queue]
                timeout = None
                if ready:
                    queue = min(ready, key=lambda q: q[0].enqueued)  # oldest request first
                    due = queue[0].enqueued + self.max_wait
                    now = time.perf_counter()
                    if len(queue) >= self.max_batch_size or now >= due or not self.accepting:
                        batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch_size))]
                        self.waiting -= len(batch)
                        self.running = len(batch)
                        return batch
                    timeout = due - now
            self.wakeup.wait(timeout)  # returning to Python here also runs pending signal handlers

    def run(self) -> None:
        """Warm up, then run batches on the calling thread until :meth:`close`."""
        try:
            if self.prepare is not None:
                self.prepare()
            if self.on_ready is not None:
                self.on_ready()
            self._serve()
        finally:
            self.finished.set()

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            started = time.perf_counter()
            try:
                results = self.run_batch([p.job for p in batch], [p.request_id for p in batch])
            except Exception as exc:  # an engine error fails only its own batch
                for pending in batch:
                    pending.loop.call_soon_threadsafe(_fail, pending.future, exc)
            else:
                for pending, result in zip(batch, results, strict=True):
                    served = Served(result, (started - pending.enqueued) * 1000)
                    pending.loop.call_soon_threadsafe(_succeed, pending.future, served)
            if self.on_batch is not None:
                self.on_batch(batch[0].bucket, len(batch))
            with self.condition:
                self.running = 0
                self.condition.notify_all()


def _succeed(future: asyncio.Future[Any], served: Served[Any]) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(served)


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)
