"""The demo: the whole pipeline on the embedded checkpoints, with no network.

Write the ``small`` LED and BigBird-Pegasus checkpoints trained on :mod:`profiler.synthetic`'s
task (shipped weights, :mod:`profiler.training`) and that task's evaluation set, then sweep them
as eager PyTorch and ONNX Runtime (exported and parity-checked at every bucket; ``--formats``
adds TorchScript) at 1024, 2048, 3072 and 4096 tokens and two concurrency levels, with locust
against a live server (streamed answers, so time to first token is measured) and energy measured
in the server, score each on the task, and search LED's ONNX capacity under a latency SLO at the
shortest and longest length; then report what was measured (``profiler report``). ``--quick``,
``--models`` and ``--formats`` cut the matrix (:class:`DemoMatrix`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from profiler.checkpoints import ARCHS
from profiler.modelinfo import DEFAULT_LENGTHS
from profiler.synthetic import TASK as SYNTHETIC_TASK
from profiler.synthetic import write_eval_set
from profiler.training import write_trained_checkpoint

#: The checkpoint size the demo builds.
DEMO_SIZE = "small"
#: The synthetic task's evaluation set, written beside sweep.toml: its file name, examples, seed.
EVAL_SET = "eval.jsonl"
EVAL_EXAMPLES = 50
EVAL_SEED = 0

DEMO_CONFIG = """\
# Written by `profiler demo`: the embedded checkpoints at the study's lengths.
run_id = "{run_id}"
output_dir = "{output_dir}"

{models}
[load]
input_lengths = [{lengths}]
mode = "generate"
max_new_tokens = 32
stream = true  # streamed answers: time to the first token and per output token
concurrency = [{concurrency}]
stage_seconds = {stage_seconds}
# Short stages, yet enough requests for a p90 at every cell; a p99 would take minutes per cell here.
min_requests = 20
max_stage_seconds = {max_stage_seconds:g}
window_requests = 5
stability = 0.25
warmup_seconds = {warmup_seconds:g}
repeats = 1
idle_seconds = 2
{capacity}
[accuracy]
# Each model and format scored on the synthetic codes task at every length, on its live server.
dataset = "{eval_set}"
task = "{task}"
max_new_tokens = 16
[server]
max_batch_size = 4
max_wait_ms = 5
"""

CAPACITY_SECTION = """
[capacity]
# How many requests/s {model} in {format} sustains with p90 <= 500 ms, at the shortest and longest length.
models = ["{model}"]
formats = ["{format}"]
input_lengths = [{lengths}]
latency_ms = 500
percentile = 90
start_rps = 8
max_rps = 128
tolerance = 0.25
max_probes = 8
"""

MODEL_ENTRY = """[[models]]
name = "{name}"
checkpoint = "{checkpoint}"
formats = [{formats}]
"""


#: The formats the demo serves unless ``--formats`` says otherwise: the eager baseline and the
#: export that serves fastest on a CPU. TorchScript (``--formats eager,onnx,torchscript``) adds two
#: exports, two servers and 16 cells.
DEMO_FORMATS: tuple[str, ...] = ("eager", "onnx")


@dataclass(frozen=True)
class DemoMatrix:
    """What the demo sweeps: architectures, formats, input lengths, users, stage length, and
    whether it searches capacity (the first model in ONNX, or in its first format)."""

    archs: tuple[str, ...] = ARCHS
    formats: tuple[str, ...] = DEMO_FORMATS
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    concurrency: tuple[int, ...] = (1, 4)
    #: Each stage's minimum; it also runs until it has ``min_requests`` and stable windows.
    stage_seconds: float = 3.0
    #: Load left out of the figures before each stage (the closed loop reaches its steady state).
    warmup_seconds: float = 0.5
    #: A stage that has not met its rules by then ends, marked as cut short.
    max_stage_seconds: float = 40.0
    capacity: bool = True


#: ``--quick``: LED alone, the shortest and longest length, one user, stages of at most 15 s, no
#: capacity search: the whole pipeline in a few minutes on a 2-core CPU (2.5 with its exports cached).
QUICK = DemoMatrix(
    archs=("led",), lengths=(1024, 4096), concurrency=(1,), max_stage_seconds=15.0, capacity=False
)


def model_name(arch: str) -> str:
    return f"{arch}-{DEMO_SIZE}"


def demo_config_text(
    matrix: DemoMatrix, checkpoints: dict[str, Path], workdir: Path, output_dir: Path, run_id: str
) -> str:
    """The sweep config for ``matrix``; ``checkpoints`` maps each architecture to its directory,
    and the eval set is in ``workdir``."""
    quoted = ", ".join(f'"{fmt}"' for fmt in matrix.formats)
    entries = [
        MODEL_ENTRY.format(name=model_name(arch), checkpoint=checkpoints[arch].resolve(), formats=quoted)
        for arch in matrix.archs
    ]
    capacity = ""
    if matrix.capacity:
        searched = "onnx" if "onnx" in matrix.formats else matrix.formats[0]
        capacity = CAPACITY_SECTION.format(
            model=model_name(matrix.archs[0]),
            format=searched,
            lengths=", ".join(map(str, sorted({min(matrix.lengths), max(matrix.lengths)}))),
        )
    return DEMO_CONFIG.format(
        run_id=run_id,
        output_dir=output_dir.resolve(),
        models="\n".join(entries),
        lengths=", ".join(map(str, matrix.lengths)),
        concurrency=", ".join(map(str, matrix.concurrency)),
        stage_seconds=f"{matrix.stage_seconds:g}",
        warmup_seconds=matrix.warmup_seconds,
        max_stage_seconds=max(matrix.stage_seconds, matrix.max_stage_seconds),
        capacity=capacity,
        eval_set=(workdir / EVAL_SET).resolve(),
        task=SYNTHETIC_TASK,
    )


def write_demo_config(
    workdir: Path, output_dir: Path, run_id: str, matrix: DemoMatrix, console: Console
) -> Path:
    """Write the matrix's trained small checkpoints under ``workdir``, and the sweep config and the
    synthetic task's evaluation set (:data:`EVAL_SET`) beside them."""
    checkpoints = {}
    for arch in matrix.archs:
        with console.status(f"writing the trained {DEMO_SIZE} {arch} checkpoint"):
            path = write_trained_checkpoint(arch, workdir / model_name(arch), overwrite=True)
        console.print(f"wrote {arch} {DEMO_SIZE}, trained on {SYNTHETIC_TASK} -> {path}")
        checkpoints[arch] = path
    write_eval_set(workdir / EVAL_SET, EVAL_EXAMPLES, EVAL_SEED)
    config = workdir / "sweep.toml"
    config.write_text(demo_config_text(matrix, checkpoints, workdir, output_dir, run_id), encoding="utf-8")
    return config
