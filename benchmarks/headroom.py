"""Load-generator headroom: is locust, not the server, ever the bottleneck?

``python -m benchmarks headroom`` serves the small LED checkpoint exported to ONNX (the
fastest cell of the demo), then runs ``locust -f loadtests/scrolls.py`` open loop at several
offered rates up to and past the highest throughput the demo reaches, and reports, per rate: the
locust process tree's CPU use (share of one core, from its CPU time over the run), the achieved
send rate against the offered rate, the completed rate, and p50 latency. A generator with
headroom sends what is offered while its CPU stays well under one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import export
from profiler.checkpoints import build_checkpoint
from profiler.loadgen.launch import locust_command
from profiler.processes import dies_with_this_process
from profiler.server.launch import start_server
from profiler.stats import percentile


def tree_cpu_seconds(process: Any) -> float:
    """CPU seconds of a process and its children (alive ones; reaped ones via the parent)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def run_rate(
    url: str, tokenizer: Path, rate: float, seconds: float, length: int, users: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "results.json"
        command = locust_command(
            url, users, "--input-lengths", str(length), "--stage-seconds", f"{seconds:g}",
            "--tokenizer", str(tokenizer), "--arrival", "poisson", "--rate", f"{rate:g}",
            "--max-new-tokens", "8", "--results", str(results),
        )  # fmt: skip
        child = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call
        )
        process = psutil.Process(child.pid)
        readings: list[tuple[float, float]] = []  # (monotonic s, CPU s) while locust runs
        while child.poll() is None:
            try:
                readings.append((time.monotonic(), tree_cpu_seconds(process)))
            except psutil.Error:
                break
            time.sleep(0.2)
        data = json.loads(results.read_text())
    stage = data["stages"][0]
    # CPU over the load itself: from when the stage started sending (start-up imports excluded).
    begin = next((r for r in readings if r[0] >= readings[-1][0] - stage["duration_s"]), readings[0])
    end = readings[-1]
    return {
        "offered_rps": rate,
        "sent_rps": stage.get("sent_rps"),
        "completed_rps": stage["throughput_rps"],
        "unsent": stage.get("unsent"),
        "p50_ms": percentile(stage["latency_ms"], 50) if stage["latency_ms"] else None,
        "locust_cpu_pct_of_one_core": 100 * (end[1] - begin[1]) / max(end[0] - begin[0], 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("build/headroom"))
    parser.add_argument("--rates", default="10,40,80,120", help="offered requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per rate")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--users", type=int, default=16)
    args = parser.parse_args(argv)
    console = Console()
    checkpoint = build_checkpoint("led", "small", args.workdir / "led-small", overwrite=True).path
    artifact = args.workdir / "led-onnx"
    with console.status("exporting"):
        export(checkpoint, "onnx", artifact, lengths=[args.length], overwrite=True, skip_parity=True)
    server = start_server(
        artifact, "--max-batch-size", "8", "--max-wait-ms", "5", log=args.workdir / "serve.log"
    )
    rows = []
    try:
        for rate in (float(r) for r in args.rates.split(",")):
            with console.status(f"offering {rate:g} requests/s"):
                rows.append(run_rate(server.url, artifact, rate, args.seconds, args.length, args.users))
    finally:
        server.stop()
    table = Table(title=f"Load generator headroom: open loop at {args.length} tokens, {args.users} users")
    for column in (
        "offered req/s",
        "sent req/s",
        "completed req/s",
        "unsent",
        "p50 ms",
        "locust CPU % of a core",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['offered_rps']:g}",
            f"{row['sent_rps']:.1f}" if row["sent_rps"] is not None else "-",
            f"{row['completed_rps']:.1f}",
            str(row["unsent"]),
            f"{row['p50_ms']:.1f}" if row["p50_ms"] is not None else "-",
            f"{row['locust_cpu_pct_of_one_core']:.1f}",
        )
    console.print(table)
    write_results(rows, args.workdir / "headroom.json", console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
