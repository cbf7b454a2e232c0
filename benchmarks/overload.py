"""Overload benchmark, measured in one run: ``python -m benchmarks.overload``.

What a saturated server costs the requests it cannot take, and whether it keeps serving the ones
it can (tiny LED exported to ONNX, one 1024-token bucket, 32-token greedy generation):

0. The server's own cost of a 503, in process (no HTTP, no client).
1. Sustainable rate: closed-loop clients for a while; completed requests per second.
2. Overload: open-loop arrivals at ``--factor`` times that rate (10x by default), latency timed
   from each request's scheduled send (no coordinated omission), with ``/healthz`` probed every
   20 ms meanwhile: 503 latency, health latency, goodput (200s per second) against the
   sustainable rate, server memory before and after, and how long until a request is answered
   at normal speed again.
3. Four ~1 MB ``text`` bodies at once, with ``/healthz`` probed meanwhile.
4. 40 concurrent ``POST /v1/energy/idle`` while a window is opened and closed.

The load generator is a small asyncio HTTP/1.1 client written here: it has to offer 10x the
server's rate from the same 2 cores, and an httpx or locust client spends more CPU per request
than the server's own refusal, which would make the figures about the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.table import Table

from exporters.export import export
from profiler.checkpoints import build_checkpoint
from profiler.energy.cputime import process_seconds
from profiler.engines.engine import load_engine
from profiler.server.app import Admission, create_app
from profiler.server.launch import start_server
from profiler.server.settings import ServeSettings
from profiler.stats import percentile
from profiler.workload import load_tokenizer

NEW_TOKENS = 32
INPUT_TOKENS = 1000
HEALTH_PERIOD_S = 0.02
#: Connections the open-loop generator may hold at once (each arrival takes a free one).
MAX_CONNECTIONS = 1000


@dataclass
class Reply:
    status: int
    latency_s: float


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self, payload: bytes) -> int:
        """Send one prepared request, read the whole answer, return its status."""
        self.writer.write(payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


@dataclass
class Pool:
    """Keep-alive connections to one server; a new one is opened when none is free."""

    host: str
    port: int
    idle: list[Connection] = field(default_factory=list)
    opened: int = 0

    async def call(self, payload: bytes) -> int:
        reused = bool(self.idle)
        connection = self.idle.pop() if reused else await self._open()
        try:
            status = await connection.request(payload)
        except (ConnectionError, asyncio.IncompleteReadError):
            connection.close()
            if not reused:
                raise
            # The server closes keep-alive connections idle for 5 s: retry once on a new one,
            # as HTTP clients do.
            connection = await self._open()
            status = await connection.request(payload)
        self.idle.append(connection)
        return status

    async def _open(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        self.opened += 1
        return Connection(reader, writer)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


def http_request(method: str, path: str, host: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def closed_loop(pool: Pool, payload: bytes, clients: int, seconds: float) -> list[Reply]:
    replies: list[Reply] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status = await pool.call(payload)
            replies.append(Reply(status, time.perf_counter() - started))

    await asyncio.gather(*(client() for _ in range(clients)))
    return replies


async def open_loop(pool: Pool, payload: bytes, rate: float, seconds: float, seed: int = 0) -> list[Reply]:
    """Poisson arrivals at ``rate``; each reply's latency runs from its scheduled time."""
    rng = random.Random(seed)
    replies: list[Reply] = []
    tasks: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(MAX_CONNECTIONS)

    async def one(scheduled: float) -> None:
        async with limit:
            try:
                status = await pool.call(payload)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                status = 0  # the connection failed: counted apart from any HTTP status
            replies.append(Reply(status, time.perf_counter() - scheduled))

    start = time.perf_counter()
    scheduled = start
    while scheduled < start + seconds:
        scheduled += rng.expovariate(rate)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return replies


async def probe_health(pool: Pool, host: str, stop: asyncio.Event) -> list[float]:
    """``/healthz`` latencies, one probe every 20 ms (or as soon as the last one answers)."""
    payload = http_request("GET", "/healthz", host)
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        await pool.call(payload)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(max(0.0, HEALTH_PERIOD_S - latencies[-1]))
    return latencies


async def with_health_probe(target: Target, work: Awaitable[object]) -> list[float]:
    """``/healthz`` latencies while ``work`` runs."""
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_health(Pool(target.host, target.port), target.hostport, stop))
    await work
    stop.set()
    return await probe


def p(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@dataclass(frozen=True)
class Target:
    """The server under test, and prepared requests for it."""

    host: str
    port: int
    pid: int

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        return http_request(method, path, self.hostport, body)


async def overload(target: Target, args: argparse.Namespace, table: Table) -> None:
    """Phases 1 and 2: the sustainable rate, then ``--factor`` times it, and the recovery."""
    ids = [random.Random(1).randrange(10, 200) for _ in range(INPUT_TOKENS)]
    body = json.dumps({"input_ids": ids, "max_new_tokens": NEW_TOKENS}).encode()
    generate = target.request("POST", "/v1/generate", body)
    pool = Pool(target.host, target.port)

    await closed_loop(pool, generate, args.clients, 2)  # warm-up
    sustained = await closed_loop(pool, generate, args.clients, args.seconds)
    ok = [reply.latency_s for reply in sustained if reply.status == 200]
    sustainable = len(ok) / args.seconds
    rss_before = rss_mib(target.pid)

    rate = sustainable * args.factor
    client, server = psutil.Process(), psutil.Process(target.pid)
    cpu = partial(process_seconds, reaped_children=False)  # each process alone: user + system
    cpu_before = (cpu(client), cpu(server), time.perf_counter())
    load = asyncio.ensure_future(open_loop(pool, generate, rate, args.seconds))
    health = await with_health_probe(target, load)
    replies = load.result()
    wall = time.perf_counter() - cpu_before[2]
    client_cores = (cpu(client) - cpu_before[0]) / wall
    server_cores = (cpu(server) - cpu_before[1]) / wall
    rss_after = rss_mib(target.pid)
    refused = [r.latency_s for r in replies if r.status == 503]
    served = [r.latency_s for r in replies if r.status == 200]
    statuses = Counter(reply.status for reply in replies)

    recovery_started = time.perf_counter()
    baseline_p50 = statistics.median(ok)
    while True:  # overload is over: how long until a request is served at normal speed
        started = time.perf_counter()
        status = await pool.call(generate)
        if status == 200 and time.perf_counter() - started <= 2 * baseline_p50:
            break
        await asyncio.sleep(0.05)
    recovery_s = time.perf_counter() - recovery_started
    pool.close()

    table.add_row("sustainable rate (closed loop, 200s/s)", f"{sustainable:.1f} req/s")
    table.add_row("  its p50 / p99 latency", f"{p(ok, 50):.1f} / {p(ok, 99):.1f} ms")
    table.add_row("offered rate", f"{len(replies) / args.seconds:.1f} req/s (asked {rate:.0f})")
    table.add_row("answers by status", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    table.add_row("goodput (200s/s) / sustainable", f"{len(served) / args.seconds / sustainable:.2f}")
    table.add_row("503 latency p50 / p99", f"{p(refused, 50):.1f} / {p(refused, 99):.1f} ms")
    table.add_row("200 latency p50 / p99", f"{p(served, 50):.1f} / {p(served, 99):.1f} ms")
    table.add_row(
        f"/healthz under overload p50 / p99 / max ({len(health)} probes)",
        f"{p(health, 50):.1f} / {p(health, 99):.1f} / {max(health) * 1000:.1f} ms",
    )
    table.add_row("server RSS before / after overload", f"{rss_before:.0f} / {rss_after:.0f} MiB")
    table.add_row("recovery: first 200 at normal speed after", f"{recovery_s:.2f} s")
    table.add_row("connections the generator opened", str(pool.opened))
    table.add_row(
        f"CPU under overload, cores of {psutil.cpu_count()}: load generator / server",
        f"{client_cores:.2f} / {server_cores:.2f}",
    )


async def big_texts(target: Target, table: Table) -> None:
    """Phase 3: four ~1 MB texts at once (each tokenizes to ~200k tokens, then 413)."""
    big = ("word " * 200_000).encode()
    text_body = target.request("POST", "/v1/generate", b'{"text": "' + big + b'"}')

    async def send() -> list[int]:
        pools = [Pool(target.host, target.port) for _ in range(4)]
        return list(await asyncio.gather(*(pool.call(text_body) for pool in pools)))

    texts = asyncio.ensure_future(send())
    health = await with_health_probe(target, texts)
    table.add_row(
        f"4 x 1 MB text bodies: statuses; /healthz p99 / max ({len(health)} probes)",
        f"{sorted(texts.result())}; {p(health, 99):.1f} / {max(health) * 1000:.1f} ms",
    )


async def idles_and_a_window(target: Target, table: Table) -> None:
    """Phase 4: 40 idle measurements at once; a user window opened and ended while they are on."""
    idle_body = target.request("POST", "/v1/energy/idle", b'{"seconds": 2}')
    pools = [Pool(target.host, target.port) for _ in range(40)]
    calls = asyncio.gather(*(pool.call(idle_body) for pool in pools))
    await asyncio.sleep(0.3)  # the one admitted idle measurement is running by now
    window = Pool(target.host, target.port)
    started = time.perf_counter()
    await window.call(target.request("POST", "/v1/energy/windows/bench", b""))
    await window.call(target.request("POST", "/v1/energy/windows/bench/end", b""))
    window_s = time.perf_counter() - started
    statuses = list(await calls)
    for pool in [*pools, window]:
        pool.close()
    table.add_row(
        "40 concurrent idle measurements: statuses; window open+close meanwhile",
        f"{dict(sorted(Counter(statuses).items()))}; {window_s * 1000:.0f} ms",
    )


async def refusal_cost(artifact: Path, table: Table, rounds: int = 20_000) -> None:
    """Phase 0: the server's own cost of one 503, in process: the ASGI stack that uvicorn calls,
    for a ``POST /v1/generate`` while the model is not ready (the same path as a full queue)."""
    app = create_app(load_engine(artifact), load_tokenizer(artifact), ServeSettings())
    stack = Admission(app, app.state.service)
    scope = {"type": "http", "method": "POST", "path": "/v1/generate", "headers": []}
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(rounds):
        await stack(scope, receive, send)
    per_refusal_us = (time.perf_counter() - started) / rounds * 1e6
    if set(statuses) != {503}:
        raise RuntimeError(f"expected only 503s from a server that is not ready, got {Counter(statuses)}")
    table.add_row("server-side cost of one 503 (ASGI stack, in process)", f"{per_refusal_us:.1f} us")


async def run(url: str, pid: int, artifact: Path, args: argparse.Namespace, console: Console) -> None:
    parts = urlsplit(url)
    target = Target(parts.hostname or "127.0.0.1", parts.port or 80, pid)
    table = Table(title=f"Overload: {args.factor:g}x the sustainable rate, open loop, {args.seconds:g} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    await refusal_cost(artifact, table)
    await overload(target, args, table)
    await big_texts(target, table)
    await idles_and_a_window(target, table)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each load phase.")
    parser.add_argument(
        "--factor", type=float, default=10.0, help="Overload as a multiple of the sustainable rate."
    )
    parser.add_argument(
        "--clients", type=int, default=16, help="Closed-loop clients for the sustainable rate."
    )
    parser.add_argument("--max-queue", type=int, default=256, help="The server's --max-queue.")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="overload-bench-") as scratch:
        root = Path(scratch)
        checkpoint = build_checkpoint("led", "tiny", root / "led").path
        artifact = root / "led-onnx"
        export(checkpoint, "onnx", artifact, lengths=[1024], batch_sizes=[1, 8], new_tokens=8)
        server = start_server(
            artifact, "--max-batch-size", "8", "--max-queue", str(args.max_queue), log=root / "serve.log"
        )
        try:
            asyncio.run(run(server.url, server.process.pid, artifact, args, console))
        finally:
            code = server.stop()
        console.print(f"server exit status after SIGTERM: {code}")


if __name__ == "__main__":
    main()
