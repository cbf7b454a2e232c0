"""Serving benchmark, measured side by side in one run: ``python -m benchmarks serving``.

1. Serving overhead, per bucket: p50 latency through HTTP at concurrency 1 (a live ``profiler
   serve`` with batching off) over the p50 of the same engine called in-process, calls alternating
   so both see the same machine. Target: <= 1.05 at 4096 tokens.
2. Batching efficiency: throughput of 16 concurrent HTTP clients against dynamic batching, over
   the offline throughput of the same engine running full batches in-process. Target: >= 0.85.

Both use the small demo checkpoints exported to ONNX, 32-token greedy generation, and the shipped
sample document cut to each bucket's length.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import DEFAULT_LENGTHS, export
from profiler.checkpoints import ARCHS, build_checkpoint
from profiler.client import ServerClient
from profiler.engines.engine import Engine, Job, load_engine
from profiler.server.launch import start_server
from profiler.validation import parse_numbers
from profiler.workload import fit_to_length, load_sample, load_tokenizer

NEW_TOKENS = 32


def sample_ids(artifact: Path, length: int) -> list[int]:
    tokenizer = load_tokenizer(artifact)
    record = fit_to_length(load_sample()[0], tokenizer, length)
    ids: list[int] = tokenizer(record.input)["input_ids"]
    return ids


def overhead(engine: Engine, url: str, ids: list[int], rounds: int) -> tuple[float, float]:
    """(in-process p50 ms, HTTP p50 ms), calls alternating after one warm-up each."""
    job = Job(ids, "generate", NEW_TOKENS)
    local: list[float] = []
    remote: list[float] = []
    with ServerClient(url, timeout=120) as client:
        for index in range(rounds + 1):
            started = time.perf_counter()
            engine.run([job])
            middle = time.perf_counter()
            client.generate(ids, NEW_TOKENS)
            finished = time.perf_counter()
            if index:  # the first round warms both paths
                local.append((middle - started) * 1000)
                remote.append((finished - middle) * 1000)
    return statistics.median(local), statistics.median(remote)


def offline_throughput(engine: Engine, ids: list[int], batch: int, seconds: float) -> float:
    """Requests per second of full batches run back to back in-process."""
    jobs = [Job(ids, "generate", NEW_TOKENS)] * batch
    engine.run(jobs)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        engine.run(jobs)
        done += batch
    return done / (time.perf_counter() - started)


def served_throughput(url: str, ids: list[int], clients: int, seconds: float) -> tuple[float, float]:
    """(requests per second, mean batch size) of ``clients`` closed-loop HTTP clients."""
    stop = time.perf_counter() + seconds
    counts: list[int] = []
    batches: list[int] = []
    lock = threading.Lock()

    def client_loop() -> None:
        done, sizes = 0, []
        with ServerClient(url, timeout=120) as client:
            while time.perf_counter() < stop:
                answer = client.generate(ids, NEW_TOKENS)
                done += 1
                sizes.append(answer.batch_size)
        with lock:
            counts.append(done)
            batches.extend(sizes)

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, statistics.mean(batches)


def run(args: argparse.Namespace, console: Console) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"overhead": [], "batching": []}
    for arch in args.arch or ARCHS:
        checkpoint = build_checkpoint(arch, "small", args.workdir / f"{arch}-small", overwrite=True).path
        artifact = args.workdir / f"{arch}-onnx"
        with console.status(f"exporting {arch} to ONNX"):
            export(
                checkpoint,
                "onnx",
                artifact,
                lengths=DEFAULT_LENGTHS,
                batch_sizes=[1, args.batch],
                overwrite=True,
            )
        engine = load_engine(artifact)
        engine.warm_up((1, args.batch))
        unbatched = start_server(artifact, "--max-batch-size", "1", "--max-wait-ms", "0")
        try:
            for length in DEFAULT_LENGTHS:
                with console.status(f"{arch}: overhead at {length} tokens"):
                    local, remote = overhead(engine, unbatched.url, sample_ids(artifact, length), args.rounds)
                results["overhead"].append(
                    {
                        "arch": arch,
                        "bucket": length,
                        "in_process_ms": local,
                        "http_ms": remote,
                        "ratio": remote / local,
                    }
                )
        finally:
            unbatched.stop()
        batching = start_server(
            artifact, "--max-batch-size", str(args.batch), "--max-wait-ms", str(args.max_wait_ms)
        )
        try:
            for length in args.batch_lengths:
                ids = sample_ids(artifact, length)
                with console.status(f"{arch}: batching at {length} tokens"):
                    offline = offline_throughput(engine, ids, args.batch, args.seconds)
                    served, mean_batch = served_throughput(batching.url, ids, args.clients, args.seconds)
                results["batching"].append(
                    {
                        "arch": arch,
                        "bucket": length,
                        "offline_rps": offline,
                        "served_rps": served,
                        "mean_batch": mean_batch,
                        "ratio": served / offline,
                    }
                )
        finally:
            batching.stop()
    return results


def render(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> list[Table]:
    first = Table(
        title=f"Serving overhead: HTTP p50 / in-process p50, concurrency 1, generate {NEW_TOKENS} "
        "(target <= 1.05)"
    )
    for column in ("arch", "bucket", "in-process p50 ms", "HTTP p50 ms", "ratio"):
        first.add_column(column, justify="left" if column == "arch" else "right")
    for row in results["overhead"]:
        first.add_row(
            row["arch"],
            str(row["bucket"]),
            f"{row['in_process_ms']:.1f}",
            f"{row['http_ms']:.1f}",
            f"{row['ratio']:.3f}",
        )
    second = Table(
        title=f"Batching efficiency: {args.clients} clients, dynamic batching (max {args.batch}, "
        f"{args.max_wait_ms} ms) / offline full batches of {args.batch} (target >= 0.85)"
    )
    for column in ("arch", "bucket", "offline req/s", "served req/s", "mean batch", "ratio"):
        second.add_column(column, justify="left" if column == "arch" else "right")
    for row in results["batching"]:
        second.add_row(
            row["arch"],
            str(row["bucket"]),
            f"{row['offline_rps']:.2f}",
            f"{row['served_rps']:.2f}",
            f"{row['mean_batch']:.1f}",
            f"{row['ratio']:.3f}",
        )
    return [first, second]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-serving"))
    parser.add_argument("--arch", choices=ARCHS, action="append", help="default: both")
    parser.add_argument("--rounds", type=int, default=15, help="overhead: calls per path and bucket")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        help="max batch size served, and the offline batch (half the clients: "
        "one batch runs while the next fills)",
    )
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="batching: duration of each side")
    parser.add_argument(
        "--batch-lengths", type=partial(parse_numbers, kind=int, positive=True), default=(1024, 4096)
    )
    args = parser.parse_args(argv)
    console = Console()
    results = run(args, console)
    for table in render(results, args):
        console.print(table)
    write_results(results, args.workdir / "bench-serving.json", console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
