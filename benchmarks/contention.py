"""Why eager degrades far more than ONNX when other work shares the CPUs: ``python -m benchmarks
contention``.

Times single requests (the shipped sample cut to 1,024 tokens, 32 new tokens, greedy) of the
small demo LED checkpoint, eager and exported, each variant in a fresh worker process (OpenMP reads
its environment once, when torch loads), first on the machine as it is and then beside CPU burners
(``python -c 'while True: pass'``, one per CPU by default). The variants are the engine and its
thread settings: torch's intra-op threads, and OpenMP's wait policy (``OMP_WAIT_POLICY``: unset,
GNU OpenMP's default, whose idle threads spin a while before they sleep, or ``PASSIVE``). The
load average before each condition is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import export
from profiler.checkpoints import build_checkpoint
from profiler.doctor import PASSIVE, WAIT_POLICY
from profiler.processes import dies_with_this_process

LENGTH = 1024
NEW_TOKENS = 32
#: (name, format, OMP_WAIT_POLICY or None for unset, torch threads; 0 leaves torch's default).
#: ONNX Runtime's sessions never spin, whatever the variable says.
VARIANTS: list[tuple[str, str, str | None, int]] = [
    ("eager (default)", "eager", None, 0),
    ("eager PASSIVE", "eager", PASSIVE, 0),
    ("eager PASSIVE 1 thread", "eager", PASSIVE, 1),
    ("torchscript (default)", "torchscript", None, 0),
    ("torchscript PASSIVE", "torchscript", PASSIVE, 0),
    ("onnx", "onnx", None, 0),
]


def worker(path: Path, rounds: int, threads: int) -> None:
    """In the worker process: load, warm up, say ready, wait for go, time ``rounds`` requests."""
    import torch

    from profiler.engines.engine import Job, load_engine
    from profiler.workload import fit_to_length, load_sample, load_tokenizer

    if threads:
        torch.set_num_threads(threads)
    engine = load_engine(path)
    tokenizer = load_tokenizer(path)
    ids = tokenizer(fit_to_length(load_sample()[0], tokenizer, LENGTH).input)["input_ids"]
    job = Job(ids, "generate", NEW_TOKENS, global_tokens=1)
    for _ in range(3):
        engine.run([job])
    for _condition in ("quiet", "burners"):
        print("ready", flush=True)
        sys.stdin.readline()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            engine.run([job])
            times.append((time.perf_counter() - started) * 1000)
        print(json.dumps({"ms": times, "torch_threads": torch.get_num_threads()}), flush=True)


def _environment(policy: str | None) -> dict[str, str]:
    unset = {key: value for key, value in os.environ.items() if key != WAIT_POLICY}
    return unset if policy is None else {**unset, WAIT_POLICY: policy}


def burn(count: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call
        )
        for _ in range(count)
    ]


def measure(path: Path, policy: str | None, threads: int, rounds: int, burners: int) -> dict[str, Any]:
    """p50 and all times of one variant, quiet then beside ``burners`` burners."""
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.contention", "--worker", str(path), "--rounds", str(rounds),
         "--threads", str(threads)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_environment(policy),
        preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    result: dict[str, Any] = {}
    for condition in ("quiet", "burners"):
        assert child.stdout.readline().strip() == "ready"
        running = burn(burners) if condition == "burners" else []
        load_before = os.getloadavg()[0]
        child.stdin.write("go\n")
        child.stdin.flush()
        answer = json.loads(child.stdout.readline())
        for process in running:
            process.kill()
            process.wait()
        result[condition] = {
            "p50_ms": statistics.median(answer["ms"]),
            "ms": answer["ms"],
            "torch_threads": answer["torch_threads"],
            "load_average_before": load_before,
        }
    child.wait(timeout=60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="requests timed per condition")
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 1, help="CPU burners beside it")
    parser.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("contention.json"), help="results (JSON)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.rounds, args.threads)
        return
    chosen = [v for v in VARIANTS if not args.variants or v[0] in args.variants.split(",")]
    console = Console()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        checkpoint = build_checkpoint("led", "small", root / "led").path
        paths = {"eager": checkpoint}
        for fmt in sorted({fmt for _, fmt, _, _ in chosen} - {"eager"}):
            paths[fmt] = root / fmt
            export(checkpoint, fmt, paths[fmt], lengths=[LENGTH])
        results = {
            name: measure(paths[fmt], policy, threads, args.rounds, args.burners)
            for name, fmt, policy, threads in chosen
        }
    table = Table(title=f"small LED, {LENGTH} tokens, {NEW_TOKENS} new tokens, 1 request at a time")
    headings = ("variant", "torch threads", "quiet p50 ms", f"{args.burners} burners p50 ms", "ratio", "load")
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "variant" else "right", no_wrap=True)
    for name, result in results.items():
        quiet, busy = result["quiet"], result["burners"]
        table.add_row(
            name,
            str(quiet["torch_threads"]),
            f"{quiet['p50_ms']:,.1f}",
            f"{busy['p50_ms']:,.1f}",
            f"{busy['p50_ms'] / quiet['p50_ms']:.1f}x",
            f"{quiet['load_average_before']:.1f} / {busy['load_average_before']:.1f}",
        )
    console.print(table)
    console.print("load: the 1-minute load average before the quiet and the busy requests.")
    write_results({"burners": args.burners, "rounds": args.rounds, "variants": results}, args.out, console)


if __name__ == "__main__":
    main()
