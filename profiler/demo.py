"""The demo: the whole pipeline on the embedded checkpoints, with no network.

Build the ``small`` LED and BigBird-Pegasus checkpoints, then sweep them as eager PyTorch, ONNX
Runtime and TorchScript (exported and parity-checked at every bucket) at 1024, 2048, 3072 and
4096 tokens and two concurrency levels, with locust against a live server (streamed answers, so
time to first token is measured) and energy measured in the server, and search LED's ONNX
capacity under a latency SLO at the shortest and longest length; then report what was measured
(``profiler report``).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from profiler.checkpoints import ARCHS, build_checkpoint

DEMO_CONFIG = """\
# Written by `profiler demo`: the embedded checkpoints in every format, at the study's lengths.
run_id = "{run_id}"
output_dir = "{output_dir}"

{models}
[load]
input_lengths = [{lengths}]
mode = "generate"
max_new_tokens = 32
stream = true  # streamed answers: time to the first token and per output token
concurrency = [1, 4]
stage_seconds = {stage_seconds}
# Short stages, yet enough requests for a p90 at every cell; a p99 would take minutes per cell here.
min_requests = 20
max_stage_seconds = 40
window_requests = 5
stability = 0.25
warmup_seconds = 1
repeats = 1
idle_seconds = 2

[capacity]
# How many requests/s LED in ONNX sustains with p90 <= 500 ms, at the shortest and longest length.
models = ["led-small"]
formats = ["onnx"]
input_lengths = [{capacity_lengths}]
latency_ms = 500
percentile = 90
start_rps = 4
max_rps = 128
tolerance = 0.25
max_probes = 8

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
            capacity_lengths=", ".join(map(str, sorted({min(lengths), max(lengths)}))),
        ),
        encoding="utf-8",
    )
    return config
