"""The demo: the whole pipeline on the embedded checkpoints, with no network.

Build the ``small`` LED and BigBird-Pegasus checkpoints, then sweep them as eager PyTorch, ONNX
Runtime and TorchScript (exported and parity-checked at every bucket) at 1024, 2048, 3072 and
4096 tokens and two concurrency levels, with locust against a live server and energy measured in
the server; then print what was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from profiler.checkpoints import ARCHS, build_checkpoint
from profiler.results import read_records
from profiler.stats import percentile

DEFAULT_LENGTHS = (1024, 2048, 3072, 4096)

DEMO_CONFIG = """\
# Written by `profiler demo`: the embedded checkpoints in every format, at the study's lengths.
run_id = "{run_id}"
output_dir = "{output_dir}"

{models}
[load]
input_lengths = [{lengths}]
mode = "generate"
max_new_tokens = 32
concurrency = [1, 4]
stage_seconds = {stage_seconds}
repeats = 1
idle_seconds = 2

[server]
max_batch_size = 4
max_wait_ms = 5
"""

MODEL_ENTRY = """[[models]]
name = "{name}"
checkpoint = "{checkpoint}"
formats = ["eager", "onnx", "torchscript"]
"""


def write_demo_config(
    workdir: Path,
    output_dir: Path,
    run_id: str,
    lengths: tuple[int, ...],
    stage_seconds: float,
    console: Console,
) -> Path:
    """Build both small checkpoints under ``workdir`` and write the sweep config beside them."""
    entries = []
    for arch in ARCHS:
        with console.status(f"building the small {arch} checkpoint"):
            built = build_checkpoint(arch, "small", workdir / f"{arch}-small", overwrite=True)
        console.print(f"built {arch} small: {built.parameters:,} parameters -> {built.path}")
        entries.append(MODEL_ENTRY.format(name=f"{arch}-small", checkpoint=built.path.resolve()))
    config = workdir / "sweep.toml"
    config.write_text(
        DEMO_CONFIG.format(
            run_id=run_id,
            output_dir=output_dir.resolve(),
            models="\n".join(entries),
            lengths=", ".join(map(str, lengths)),
            stage_seconds=f"{stage_seconds:g}",
        ),
        encoding="utf-8",
    )
    return config


def summary_table(run_dir: Path) -> Table:
    """One row per cell: latency from raw samples, throughput, energy per query with its source."""
    table = Table(title=f"{run_dir.name}: measured through HTTP under locust load")
    for column in ("model", "format", "tokens", "users", "requests", "p50 ms", "p99 ms", "req/s", "J/query"):
        table.add_column(column, justify="left" if column in ("model", "format") else "right")
    for record in read_records(run_dir / "results.jsonl"):
        stage: dict[str, Any] = record["stage"]
        latencies = stage["latency_ms"]
        gross = stage.get("gross_j_per_query")
        source = stage.get("energy_source") or "?"
        energy = "-" if gross is None else f"{gross:.3g} ({'estimate' if source == 'estimate' else source})"
        table.add_row(
            record["model"],
            record["format"],
            str(record["bucket"]),
            str(record["load"]["concurrency"] or f"{record['load']['rate']:g}/s"),
            f"{stage['requests']} ({stage['failures']} failed)"
            if stage["failures"]
            else str(stage["requests"]),
            f"{percentile(latencies, 50):.1f}" if latencies else "-",
            f"{percentile(latencies, 99):.1f}" if latencies else "-",
            f"{stage['throughput_rps']:.2f}",
            energy,
        )
    return table
