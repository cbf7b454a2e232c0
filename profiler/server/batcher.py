"""Per-bucket dynamic batching in front of one engine, with a bounded queue.

Requests of the same bucket and mode wait together up to ``max_wait_ms`` (or until
``max_batch_size`` of them are waiting) and run as one padded batch on a single thread: the
engine is not thread-safe, and one batch at a time is what the hardware does best. That thread is
whichever calls :meth:`Batcher.run` (the server uses its main thread: the one that loaded the
model, where PyTorch's OpenMP pool runs at full speed). The queue
is bounded: when ``max_queue`` requests wait, new ones are refused at once (the server answers
503 with Retry-After), so memory stays bounded under any load.
"""

from __future__ import annotations

import asyncio
import threading
import time
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
        self.finished = threading.Event()

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
            self.condition.notify()
        return pending.future

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new work, finish what is queued and running, then stop the worker."""
        with self.condition:
            self.accepting = False
            self.condition.notify()
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.depth() and time.monotonic() < deadline:
                self.condition.wait(0.05)
            self.stopped = True
            self.condition.notify()
        self.finished.wait(timeout=5)

    def _next_batch(self) -> list[Pending] | None:
        """Block until a batch is due; None when stopped."""
        with self.condition:
            while True:
                if self.stopped:
                    return None
                ready = [queue for queue in self.queues.values() if queue]
                if not ready:
                    self.condition.wait()
                    continue
                queue = min(ready, key=lambda q: q[0].enqueued)  # oldest request first
                due = queue[0].enqueued + self.max_wait
                now = time.perf_counter()
                if len(queue) >= self.max_batch_size or now >= due or not self.accepting:
                    batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch_size))]
                    self.waiting -= len(batch)
                    self.running = len(batch)
                    return batch
                self.condition.wait(due - now)

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
