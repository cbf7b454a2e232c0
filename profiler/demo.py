"""The demo: the longest slice of the pipeline that exists today, run on the embedded checkpoints.

Today that is: build the ``small`` LED and BigBird-Pegasus checkpoints, export each to ONNX and
TorchScript (parity-checked at every bucket), and time eager PyTorch against both exports
in-process at 1024..4096 tokens (encoder pass and 32-token greedy generation) on the shipped
SCROLLS-format sample. Serving, load tests, energy and reports join as they are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from profiler.checkpoints import ARCHS

DEFAULT_LENGTHS = (1024, 2048, 3072, 4096)

#: What the pipeline cannot do yet; printed so the demo never implies more than it measured.
NOT_YET_BUILT = (
    "HTTP serving",
    "locust load tests and sweeps",
    "energy measurement",
    "reports and accuracy",
)


def run_demo(
    workdir: Path,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    rounds: int = 3,
    new_tokens: int = 32,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Build, export and time both small checkpoints under ``workdir``; print the table."""
    from exporters.bench import bench_arch, render

    console = console or Console()
    rows: list[dict[str, Any]] = []
    for arch in ARCHS:
        rows += bench_arch(arch, workdir, list(lengths), rounds, new_tokens, console)
    console.print(render(rows, new_tokens, rounds))
    console.print(
        "[bold]What this demo measured:[/] in-process latency on this machine's CPU at batch 1, "
        "eager PyTorch against the ONNX Runtime and TorchScript exports of the same checkpoint, "
        "each export verified against eager PyTorch first.\n"
        f"[bold]Not built yet[/] (the demo grows as they land): {', '.join(NOT_YET_BUILT)}."
    )
    return rows
