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
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import export
from profiler.checkpoints import build_checkpoint
from profiler.energy.cputime import ProcessTreeCpu
from profiler.loadgen.launch import locust_command
from profiler.loadgen.results import LoadTestResults
from profiler.processes import dies_with_this_process
from profiler.server.launch import start_server
from profiler.validation import parse_numbers


def run_rate(
    url: str, tokenizer: Path, rate: float, seconds: float, length: int, users: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "results.json"
        command = locust_command(
            url, users, "--input-lengths", str(length), "--stage-seconds", f"{seconds:g}",
            "--max-stage-seconds", f"{seconds:g}", "--warmup-seconds", "0",
            "--tokenizer", str(tokenizer), "--arrival", "poisson", "--rate", f"{rate:g}",
            "--max-new-tokens", "8", "--results", str(results),
        )  # fmt: skip
        child = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call
        )
        tree = ProcessTreeCpu(child.pid)
        readings: list[tuple[float, float]] = []  # (monotonic s, CPU s) while locust runs
        while child.poll() is None:
            try:
                readings.append((time.monotonic(), tree.seconds()))
            except psutil.Error:
                break
            time.sleep(0.2)
        data = LoadTestResults.model_validate_json(results.read_text())
    stage = data.stages[0]
    # CPU over the load itself: from when the stage started sending (start-up imports excluded).
    begin = next((r for r in readings if r[0] >= readings[-1][0] - stage.duration_s), readings[0])
    end = readings[-1]
    return {
        "offered_rps": rate,
        "sent_rps": stage.sent_rps,
        "completed_rps": stage.throughput_rps,
        "unsent": stage.unsent,
        "p50_ms": stage.summary.p50_ms,
        "locust_cpu_pct_of_one_core": 100 * (end[1] - begin[1]) / max(end[0] - begin[0], 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("build/headroom"))
    parser.add_argument(
        "--rates",
        type=partial(parse_numbers, kind=float, positive=True),
        default=(10.0, 40.0, 80.0, 120.0),
        help="offered requests/s, comma-separated",
    )
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
        for rate in args.rates:
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
