"""Exported vs eager, side by side in one run, with a roofline figure per cell:
``python -m benchmarks exporters [--size small|base|large]``.

For each architecture at ``--size`` (small: the demo checkpoints; base and large: the published
models' shapes, :data:`profiler.checkpoints.SHAPES`), it builds the checkpoint, exports it to ONNX
and TorchScript (parity-checked at the lengths and batch sizes timed), then times the encoder pass
and 32-token greedy generation at each length and batch size, eager PyTorch against each export.
A batch of four holds four different shipped sample documents cut to the length; LED attends
globally from its first token in every variant, as the study ran it. The variants of a cell are
interleaved round by round, so drift on a shared machine hits all of them alike; medians and
eager/exported ratios are reported (above 1: the export is faster).

Then what the one dynamic-length encoder graph saves over a bucket: a 1,100-token input through each
export, padded as :class:`~profiler.attention_layout.EncoderLayout` pads it, against the same input
padded to 2,048 tokens (mask 0 beyond it), which is what a 2,048-token bucket would run.

Roofline: each cell's FLOPs divided by its median time, as a share of the machine's fp32 matmul
peak measured at the start and at the end of the run (the best of torch, numpy and ONNX Runtime on
square matrices, at both). FLOPs are counted from the config and the feeds the export is given: matmuls
only, 2 per multiply-add (the softmaxes, norms and gathers left out cost little and run nowhere
near peak), per document, with ``n`` the padded width, ``d`` the model width, ``f`` the FFN width,
``L`` the layers:

- encoder, per layer: ``8nd^2`` (query, key, value, output) + ``4ndf`` (FFN) + the attention as
  the exported graph computes it:

  - LED (one-sided window ``w``, ``G`` global slots): ``12nwd`` (each block of ``w`` queries
    against the ``3w`` keys of its own and neighbouring blocks: scores and context) + ``4nGd``
    (every query against the global keys) + ``4nd^2 + 2Gd^2`` (the global key and value
    projections of every position, the global query projection) + ``4Gnd`` (the global queries
    against every key);
  - BigBird-Pegasus block-sparse (block ``s``, ``k`` key blocks gathered per middle query block):
    ``8snd`` (the first and last query blocks against every key) + ``4(n - 2s)ksd``;
  - full attention: ``4n^2d``;

- generation, on top of the encoder: ``4nd^2`` per layer once (the cross-attention keys and values),
  then for each of the ``T`` new tokens, the ``t``-th attending to ``t`` self-attention keys:
  ``L(12d^2 + 4df + 4td + 4nd)`` (self query, key, value, output and cross query, output
  projections; FFN; self and cross attention) + ``2dV`` (the logits over a vocabulary of ``V``).

Eager PyTorch is rated against the same count: transformers does at least that work (BigBird's
random blocks, Longformer's overlapping chunks), so its figure is what the export would reach at
eager's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import ONNX_OPSET, export
from exporters.parity import eager_generate, global_mask
from profiler.artifact import FORMATS
from profiler.attention_layout import BLOCK_INDEX, GLOBAL_INDEX, EncoderBatch, EncoderLayout
from profiler.checkpoints import (
    ARCHS,
    SHAPES,
    SIZES,
    CheckpointError,
    build_checkpoint,
    load_model,
    model_shape,
)
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import generate
from profiler.engines.graphs import Seq2SeqGraphs, load_graphs
from profiler.modelinfo import encoder_layout
from profiler.validation import parse_numbers
from profiler.workload import fit_to_length, load_sample, load_tokenizer

#: What the issue asks: every export at least this much faster than eager, and a 1,100-token input
#: at least this much cheaper than the same input padded to 2,048 tokens.
TARGET_RATIO = 1.5
#: The input length and the bucket it is compared against.
PADDING_TOKENS, BUCKET_WIDTH = 1100, 2048
#: Matmul size and repetitions of the peak measurement: large enough for BLAS to reach its best,
#: a few seconds in all on two cores.
PEAK_SIZE, PEAK_REPEATS = 2048, 8
#: Rounds per cell when ``--rounds`` is not given: fewer at the published sizes, whose calls take
#: seconds to minutes each.
DEFAULT_ROUNDS = {"tiny": 7, "small": 7, "base": 3, "large": 2}
STAGES = ("encode", "generate")


def interleaved_medians(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median milliseconds of each call, one warm-up each, then ``rounds`` interleaved rounds."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def matmul_peak(threads: int = 0, size: int = PEAK_SIZE, repeats: int = PEAK_REPEATS) -> dict[str, float]:
    """Best fp32 GFLOP/s of a ``size`` square matmul in torch, numpy and ONNX Runtime, after a
    warm-up each.

    All three, because their GEMMs differ by more than the cells do: on an AMD EPYC (Zen), torch's
    MKL reached 156-181 GFLOP/s, numpy's OpenBLAS 199-208 and ONNX Runtime's MLAS 284-297 on the
    same two cores; a peak from torch alone would put ONNX cells above 100%.
    """
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    feeds = {"left": left.numpy(), "right": right.numpy()}
    session = _matmul_session(size, threads)
    runs: dict[str, Callable[[], object]] = {
        "torch": partial(torch.matmul, left, right),
        "numpy": partial(np.matmul, feeds["left"], feeds["right"]),
        "onnxruntime": partial(session.run, None, feeds),
    }
    peaks = {}
    for name, run in runs.items():
        run()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        peaks[name] = 2 * size**3 / best / 1e9
    return peaks


def _matmul_session(size: int, threads: int) -> Any:
    """An ONNX Runtime session of one ``[size, size] x [size, size]`` MatMul, both operands fed
    (as the encoder's activations are), ``threads`` intra-op threads (0: its default) and no
    spinning, as the benchmark's sessions."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    operands = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in ("left", "right")
    ]
    product = helper.make_tensor_value_info("product", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["left", "right"], ["product"])], "matmul", operands, [product]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def measure_peak(when: str, threads: int, console: Console) -> dict[str, float]:
    """:func:`matmul_peak`, printed and keyed ``"LIBRARY WHEN"``."""
    with console.status(f"measuring the fp32 matmul peak ({when})"):
        peaks = matmul_peak(threads)
    console.print(
        f"fp32 matmul peak at the {when} ({PEAK_SIZE}x{PEAK_SIZE}, best of {PEAK_REPEATS}): "
        f"torch {peaks['torch']:.1f}, numpy {peaks['numpy']:.1f}, "
        f"onnxruntime {peaks['onnxruntime']:.1f} GFLOP/s; "
        f"torch threads {torch.get_num_threads()}."
    )
    return {f"{library} {when}": value for library, value in peaks.items()}


def encoder_flops(config: Any, layout: EncoderLayout, batch: EncoderBatch) -> float:
    """Matmul FLOPs of the exported encoder on ``batch`` (the module docstring's formula)."""
    rows, n = batch.input_ids.shape
    d, layers = config.d_model, config.encoder_layers
    dense = 8 * n * d * d + 4 * n * d * config.encoder_ffn_dim
    if layout.attention == "sliding_window":
        windows = config.attention_window
        windows = windows if isinstance(windows, list) else [windows] * layers
        slots = batch.extra[GLOBAL_INDEX].shape[1]
        global_work = 4 * n * slots * d + 4 * n * d * d + 2 * slots * d * d + 4 * slots * n * d
        attention = sum(12 * n * (window // 2) * d + global_work for window in windows)
    elif layout.attention == "block_sparse":
        s, slots = layout.block_size, batch.extra[BLOCK_INDEX].shape[2]
        attention = layers * (8 * s * n * d + 4 * (n - 2 * s) * slots * s * d)
    else:
        attention = layers * 4 * n * n * d
    return float(rows * (layers * dense + attention))


def decoder_flops(config: Any, rows: int, width: int, new_tokens: int) -> float:
    """Matmul FLOPs of generating ``new_tokens`` after the encoder (the module docstring's formula)."""
    d, layers, n = config.d_model, config.decoder_layers, width
    cross = layers * 4 * n * d * d
    per_token = sum(
        layers * (12 * d * d + 4 * d * config.decoder_ffn_dim + 4 * keys * d + 4 * n * d)
        + 2 * d * config.vocab_size
        for keys in range(1, new_tokens + 1)
    )
    return float(rows * (cross + per_token))


@dataclass
class Subject:
    """One architecture, ready to time: the eager model and its exports."""

    arch: str
    model: Any
    tokenizer: Any
    layout: EncoderLayout
    graphs: dict[str, Seq2SeqGraphs]
    new_tokens: int

    @property
    def global_tokens(self) -> int:
        """Leading tokens that attend globally: LED's first, as in the study."""
        return 1 if self.layout.global_attention else 0

    def documents(self, length: int, count: int) -> list[np.ndarray]:
        """``count`` different shipped sample documents, each cut to exactly ``length`` tokens."""
        records = [fit_to_length(record, self.tokenizer, length) for record in load_sample()[:count]]
        return [np.asarray(self.tokenizer(record.input)["input_ids"], dtype=np.int64) for record in records]

    def batch(self, rows: Sequence[np.ndarray], width: int | None = None) -> EncoderBatch:
        """``rows`` padded as the layout pads them, or to ``width`` tokens (mask 0 past each row)."""
        pad, globals_ = self.model.config.pad_token_id, [self.global_tokens] * len(rows)
        batch = self.layout.batch(rows, pad, globals_)
        if width is None:
            return batch
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        ids[:, : batch.input_ids.shape[1]] = batch.input_ids
        mask = np.zeros_like(ids)
        mask[:, : batch.attention_mask.shape[1]] = batch.attention_mask
        return EncoderBatch(ids, mask, self.layout.feeds([len(row) for row in rows], globals_, width))

    def exported_calls(self, batch: EncoderBatch, label: str = "") -> dict[str, Callable[[], object]]:
        """Encoder pass and generation through each export, named ``FORMAT[ label] STAGE``."""
        config = DecodingConfig(min_new_tokens=self.new_tokens)
        calls: dict[str, Callable[[], object]] = {}
        for fmt, runner in self.graphs.items():
            arrays = (batch.input_ids, batch.attention_mask, batch.extra)
            calls[f"{fmt}{label} encode"] = partial(runner.encode, *arrays)
            calls[f"{fmt}{label} generate"] = partial(generate, runner, batch, config, self.new_tokens)
        return calls

    def eager_calls(self, rows: Sequence[np.ndarray]) -> dict[str, Callable[[], object]]:
        """transformers' encoder pass and ``generate`` on same-length ``rows``, unpadded."""
        ids = np.stack(rows)
        mask = np.ones_like(ids)
        globals_ = None
        if self.global_tokens:
            globals_ = np.repeat(global_mask(ids.shape[1], self.global_tokens)[None], len(rows), axis=0)
        extra = {} if globals_ is None else {"global_attention_mask": torch.from_numpy(globals_)}
        encoder = self.model.get_encoder()

        def encode() -> object:
            with torch.inference_mode():
                return encoder(
                    input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **extra
                )

        generate_ = partial(eager_generate, self.model, ids, mask, self.new_tokens, globals_)
        return {"eager encode": encode, "eager generate": generate_}

    def flops(self, batch: EncoderBatch) -> dict[str, float]:
        """Matmul FLOPs of each stage on ``batch``."""
        config = self.model.config
        encode = encoder_flops(config, self.layout, batch)
        rows, width = batch.input_ids.shape
        return {"encode": encode, "generate": encode + decoder_flops(config, rows, width, self.new_tokens)}


def prepare(
    arch: str,
    size: str,
    workdir: Path,
    lengths: Sequence[int],
    batches: Sequence[int],
    new_tokens: int,
    threads: int,
    console: Console,
) -> Subject:
    """Build the checkpoint and export it to every format, parity-checked where it is timed;
    ONNX Runtime sessions get ``threads`` intra-op threads (0: its default)."""
    with console.status(f"building {arch} {size}"):
        checkpoint = build_checkpoint(arch, size, workdir / f"{arch}-{size}", overwrite=True).path
    graphs: dict[str, Seq2SeqGraphs] = {}
    for fmt in FORMATS:
        with console.status(f"exporting {arch} {size} to {fmt} (with parity checks)"):
            out = workdir / f"{arch}-{size}-{fmt}"
            parity_lengths = sorted({*lengths, PADDING_TOKENS})
            export(
                checkpoint,
                fmt,
                out,
                lengths=parity_lengths,
                batch_sizes=batches,
                overwrite=True,
                new_tokens=new_tokens,
            )
        graphs[fmt] = load_graphs(out, threads=threads)
    model = load_model(checkpoint).model
    return Subject(arch, model, load_tokenizer(checkpoint), encoder_layout(model.config), graphs, new_tokens)


def gflops_per_s(flops: float, milliseconds: float) -> float:
    """Achieved GFLOP/s."""
    return flops / milliseconds / 1e6


def add_peak_shares(rows: list[dict[str, Any]], peak: float) -> None:
    """Each cell's achieved GFLOP/s (exported and eager) as a share of ``peak`` GFLOP/s."""
    for row in rows:
        row["peak_share"] = row["gflops_per_s"] / peak
        row["eager_peak_share"] = row["eager_gflops_per_s"] / peak


def time_cells(
    subject: Subject,
    lengths: Sequence[int],
    batches: Sequence[int],
    rounds: int,
    console: Console,
) -> list[dict[str, Any]]:
    """Eager against each export at every length and batch size (shares of the peak: later)."""
    rows = []
    for length in lengths:
        documents = subject.documents(length, max(batches))
        for batch_size in batches:
            batch = subject.batch(documents[:batch_size])
            calls = subject.eager_calls(documents[:batch_size]) | subject.exported_calls(batch)
            with console.status(f"timing {subject.arch} at {length} tokens, batch {batch_size}"):
                medians = interleaved_medians(calls, rounds)
            flops = subject.flops(batch)
            for fmt in FORMATS:
                for stage in STAGES:
                    eager_ms, exported_ms = medians[f"eager {stage}"], medians[f"{fmt} {stage}"]
                    rows.append(
                        {
                            "arch": subject.arch,
                            "format": fmt,
                            "length": length,
                            "batch": batch_size,
                            "stage": stage,
                            "gflop": flops[stage] / 1e9,
                            "eager_ms": eager_ms,
                            "exported_ms": exported_ms,
                            "ratio": eager_ms / exported_ms,
                            "gflops_per_s": gflops_per_s(flops[stage], exported_ms),
                            "eager_gflops_per_s": gflops_per_s(flops[stage], eager_ms),
                            "load_average": os.getloadavg()[0],
                        }
                    )
    return rows


def time_padding(subject: Subject, rounds: int, console: Console) -> list[dict[str, Any]]:
    """A 1,100-token input at the layout's width against the same input padded to 2,048 tokens.

    Nothing is timed where the layout itself pads to 2,048 (LED with a 1,024-token window): the
    two feeds are then identical.
    """
    document = subject.documents(PADDING_TOKENS, 1)
    own, bucket = subject.batch(document), subject.batch(document, BUCKET_WIDTH)
    width = own.input_ids.shape[1]
    if width >= BUCKET_WIDTH:
        console.print(
            f"{subject.arch}: {PADDING_TOKENS} tokens are padded to {width} by the layout; "
            f"nothing to compare with {BUCKET_WIDTH}."
        )
        return []
    calls = subject.exported_calls(own) | subject.exported_calls(bucket, f" {BUCKET_WIDTH}")
    with console.status(f"timing {subject.arch}: {PADDING_TOKENS} tokens at {width} and {BUCKET_WIDTH}"):
        medians = interleaved_medians(calls, rounds)
    own_flops, bucket_flops = subject.flops(own), subject.flops(bucket)
    rows = []
    for fmt in FORMATS:
        for stage in STAGES:
            own_ms, bucket_ms = medians[f"{fmt} {stage}"], medians[f"{fmt} {BUCKET_WIDTH} {stage}"]
            rows.append(
                {
                    "arch": subject.arch,
                    "format": fmt,
                    "stage": stage,
                    "tokens": PADDING_TOKENS,
                    "width": width,
                    "bucket_width": BUCKET_WIDTH,
                    "width_ms": own_ms,
                    "bucket_ms": bucket_ms,
                    "ratio": bucket_ms / own_ms,
                    "flop_ratio": bucket_flops[stage] / own_flops[stage],
                    "gflops_per_s": gflops_per_s(own_flops[stage], own_ms),
                    "bucket_gflops_per_s": gflops_per_s(bucket_flops[stage], bucket_ms),
                    "load_average": os.getloadavg()[0],
                }
            )
    return rows


def _ratio(value: float) -> str:
    style = "green" if value >= TARGET_RATIO else "red"
    return f"[{style}]{value:.2f}x[/]"


def render_cells(rows: list[dict[str, Any]], size: str, new_tokens: int, rounds: int, peak: float) -> Table:
    table = Table(
        title=f"Eager PyTorch vs exported, {size} checkpoints, median of {rounds} interleaved rounds "
        f"(ratio = eager / exported, target >= {TARGET_RATIO}x; % peak of {peak:.1f} GFLOP/s)"
    )
    columns = ("arch", "format", "length", "batch", "stage", "GFLOP", "eager ms", "exported ms", "ratio")
    for column in (*columns, "GFLOP/s", "% peak", "eager % peak"):
        table.add_column(column, justify="left" if column in ("arch", "format", "stage") else "right")
    for row in rows:
        table.add_row(
            row["arch"],
            row["format"],
            str(row["length"]),
            str(row["batch"]),
            row["stage"] if row["stage"] == "encode" else f"generate {new_tokens}",
            f"{row['gflop']:.4g}",
            f"{row['eager_ms']:.0f}",
            f"{row['exported_ms']:.0f}",
            _ratio(row["ratio"]),
            f"{row['gflops_per_s']:.1f}",
            f"{row['peak_share']:.0%}",
            f"{row['eager_peak_share']:.0%}",
        )
    return table


def render_padding(rows: list[dict[str, Any]], new_tokens: int) -> Table:
    table = Table(
        title=f"{PADDING_TOKENS} tokens at the layout's width vs padded to {BUCKET_WIDTH}, batch 1 "
        f"(ratio = {BUCKET_WIDTH} / own width, target >= {TARGET_RATIO}x; FLOP ratio: the ideal)"
    )
    columns = ("arch", "format", "stage", "width", "ms", f"ms at {BUCKET_WIDTH}", "ratio", "FLOP ratio")
    for column in columns:
        table.add_column(column, justify="left" if column in ("arch", "format", "stage") else "right")
    for row in rows:
        table.add_row(
            row["arch"],
            row["format"],
            row["stage"] if row["stage"] == "encode" else f"generate {new_tokens}",
            str(row["width"]),
            f"{row['width_ms']:.0f}",
            f"{row['bucket_ms']:.0f}",
            _ratio(row["ratio"]),
            f"{row['flop_ratio']:.2f}x",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--arch", choices=ARCHS, action="append", help="default: every one of --size")
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-exporters"))
    numbers = partial(parse_numbers, kind=int, positive=True)
    parser.add_argument("--lengths", type=numbers, default=(1024, 4096))
    parser.add_argument("--batches", type=numbers, default=(1, 4), help="batch sizes (default 1,4)")
    parser.add_argument("--rounds", type=int, help="default: 7 small, 3 base, 2 large")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch and ONNX Runtime intra-op threads (default: their own)"
    )
    args = parser.parse_args(argv)
    archs = args.arch or [arch for arch in ARCHS if (arch, args.size) in SHAPES]
    for arch in archs:
        try:
            model_shape(arch, args.size)
        except CheckpointError as exc:
            parser.error(str(exc))
    if max(args.batches) > len(load_sample()):
        parser.error(
            f"batches of up to {len(load_sample())} different sample documents, not {max(args.batches)}."
        )
    if (args.rounds is not None and args.rounds < 1) or args.new_tokens < 1 or args.threads < 0:
        parser.error("need --rounds >= 1, --new-tokens >= 1 and --threads >= 0.")
    rounds = args.rounds or DEFAULT_ROUNDS[args.size]
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    load_before = os.getloadavg()[0]
    peaks = measure_peak("start", args.threads, console)
    cells: list[dict[str, Any]] = []
    padding: list[dict[str, Any]] = []
    for arch in archs:
        subject = prepare(
            arch, args.size, args.workdir, args.lengths, args.batches, args.new_tokens, args.threads, console
        )
        cells += time_cells(subject, args.lengths, args.batches, rounds, console)
        padding += time_padding(subject, rounds, console)
        del subject  # free its model and sessions before the next architecture loads
    # Measured again at the end: a peak measured while something else ran would flatter every cell.
    peaks |= measure_peak("end", args.threads, console)
    peak = max(peaks.values())
    add_peak_shares(cells, peak)
    console.print(render_cells(cells, args.size, args.new_tokens, rounds, peak))
    if padding:
        console.print(render_padding(padding, args.new_tokens))
    for name, rows in (("cells", cells), ("1,100-token comparisons", padding)):
        missed = [row for row in rows if row["ratio"] < TARGET_RATIO]
        console.print(f"{len(rows) - len(missed)} of {len(rows)} {name} reach {TARGET_RATIO}x.")
    if any(row["peak_share"] > 1 for row in cells):
        console.print(
            "[red]Some cells exceed the measured peak: the peak was measured while something else "
            "used the CPUs, so every % peak here is too high.[/]"
        )
    load_after = os.getloadavg()[0]
    console.print(
        f"load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end, "
        f"on {os.cpu_count()} CPUs shared with whatever else runs."
    )
    results = {
        "size": args.size,
        "rounds": rounds,
        "new_tokens": args.new_tokens,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average": {"start": load_before, "end": load_after},
        "peak_gflops_per_s": peaks,
        "cells": cells,
        "padding": padding,
    }
    write_results(results, args.workdir / f"bench-exporters-{args.size}.json", console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
