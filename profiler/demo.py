"""The demo: the longest slice of the pipeline that exists today, run on the embedded checkpoints.

Today that is: build the ``small`` LED and BigBird-Pegasus checkpoints, cut the shipped SCROLLS-format
sample to exactly 1024..4096 tokens, and time eager PyTorch in-process (encoder pass and 32-token
greedy generation). Export, serving, load tests, energy and reports join as they are built.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from profiler.checkpoints import ARCHS, build_checkpoint
from profiler.workload import fit_to_length, load_sample

DEFAULT_LENGTHS = (1024, 2048, 3072, 4096)

#: What the pipeline cannot do yet; printed so the demo never implies more than it measured.
NOT_YET_BUILT = (
    "export to ONNX / TorchScript",
    "HTTP serving",
    "locust load tests and sweeps",
    "energy measurement",
    "reports and accuracy",
)


@dataclass(frozen=True)
class EagerTiming:
    """Median wall-clock times of one checkpoint at one input length."""

    arch: str
    length: int
    encoder_ms: float
    generate_ms: float
    new_tokens: int


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` in milliseconds after one untimed warm-up call."""
    call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def time_eager(model: Any, input_ids: torch.Tensor, new_tokens: int, repeats: int) -> tuple[float, float]:
    """(encoder ms, greedy generation ms) for one batch of ``input_ids``, eager PyTorch.

    ``model`` is any transformers seq2seq model; their classes share no typed base that declares
    both ``get_encoder`` and ``generate``.
    """
    encoder: torch.nn.Module = model.get_encoder()
    attention_mask = torch.ones_like(input_ids)
    with torch.inference_mode():
        encoder_ms = median_ms(lambda: encoder(input_ids=input_ids, attention_mask=attention_mask), repeats)
        generate_ms = median_ms(
            lambda: model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                num_beams=1,
            ),
            max(1, repeats // 2),
        )
    return encoder_ms, generate_ms


def run_demo(
    workdir: Path,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    repeats: int = 5,
    new_tokens: int = 32,
    console: Console | None = None,
) -> list[EagerTiming]:
    """Build both small checkpoints under ``workdir`` and time them at each length."""
    console = console or Console()
    sample = load_sample()
    timings: list[EagerTiming] = []
    for arch in ARCHS:
        with console.status(f"building the small {arch} checkpoint"):
            checkpoint = build_checkpoint(arch, "small", workdir / f"{arch}-small", overwrite=True)
        console.print(
            f"built [bold]{arch}[/] small: {checkpoint.parameters:,} parameters "
            f"in {checkpoint.seconds:.1f} s -> {checkpoint.path}"
        )
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
        model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint.path).eval()
        for length in lengths:
            record = fit_to_length(sample[0], tokenizer, length)
            input_ids = tokenizer(record.input, return_tensors="pt")["input_ids"]
            with console.status(f"timing eager {arch} at {length} tokens"):
                encoder_ms, generate_ms = time_eager(model, input_ids, new_tokens, repeats)
            timings.append(EagerTiming(arch, length, encoder_ms, generate_ms, new_tokens))
    console.print(_timing_table(timings))
    console.print(
        "[bold]What this demo measured:[/] eager PyTorch in-process on this machine's CPU, "
        f"median of {repeats} runs after a warm-up (generation: median of {max(1, repeats // 2)}).\n"
        f"[bold]Not built yet[/] (the demo grows as they land): {', '.join(NOT_YET_BUILT)}."
    )
    return timings


def _timing_table(timings: Sequence[EagerTiming]) -> Table:
    table = Table(title="Eager PyTorch, small checkpoints, batch 1 (in-process, no serving)")
    table.add_column("model", no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("encoder ms", justify="right")
    table.add_column(f"generate {timings[0].new_tokens} ms" if timings else "generate ms", justify="right")
    table.add_column("≈ ms/new token", justify="right")
    for timing in timings:
        table.add_row(
            timing.arch,
            str(timing.length),
            f"{timing.encoder_ms:.1f}",
            f"{timing.generate_ms:.1f}",
            f"{(timing.generate_ms - timing.encoder_ms) / timing.new_tokens:.2f}",
        )
    return table
