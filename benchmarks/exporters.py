"""Exported vs eager latency, side by side in one run: ``python -m benchmarks exporters``.

For each architecture (small demo checkpoints), format and bucket it times the encoder pass and
32-token greedy generation at batch 1 on the shipped sample document cut to the bucket's length,
eager PyTorch against the exported artifact, interleaving the variants round by round so that
drift on a shared machine hits all of them alike. It prints medians and eager/exported ratios
(above 1 means the export is faster) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from exporters.export import DEFAULT_LENGTHS, export
from exporters.parity import eager_generate, global_mask
from profiler.artifact import FORMATS
from profiler.checkpoints import ARCHS, build_checkpoint
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import generate
from profiler.engines.graphs import Seq2SeqGraphs, load_graphs
from profiler.modelinfo import encoder_layout
from profiler.validation import parse_numbers
from profiler.workload import fit_to_length, load_sample

#: Ratio the exporters issue asks for at every bucket.
TARGET_RATIO = 1.3


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


def bench_arch(
    arch: str, workdir: Path, lengths: Sequence[int], rounds: int, new_tokens: int, console: Console
) -> list[dict[str, Any]]:
    """Build, export (both formats) and time one architecture at every bucket."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    checkpoint = build_checkpoint(arch, "small", workdir / f"{arch}-small", overwrite=True).path
    graphs: dict[str, Seq2SeqGraphs] = {}
    for fmt in FORMATS:
        with console.status(f"exporting {arch} to {fmt} (with parity checks)"):
            out = workdir / f"{arch}-{fmt}"
            export(checkpoint, fmt, out, lengths=lengths, overwrite=True, new_tokens=new_tokens)
        graphs[fmt] = load_graphs(out)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    encoder = model.get_encoder()
    document = load_sample()[0]
    rows = []
    for length in lengths:
        record = fit_to_length(document, tokenizer, length)
        input_ids = tokenizer(record.input, return_tensors="np")["input_ids"].astype(np.int64)
        mask = np.ones_like(input_ids)
        # LED as the study ran it: global attention on the first token, in every variant.
        layout = encoder_layout(model.config)
        global_tokens = [1] if layout.global_attention else None
        globals_mask = global_mask(input_ids.shape[1], 1)[None] if global_tokens else None
        extra = {} if globals_mask is None else {"global_attention_mask": torch.from_numpy(globals_mask)}
        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)

        def eager_encode(
            ids: torch.Tensor = ids_t, m: torch.Tensor = mask_t, kw: dict[str, torch.Tensor] = extra
        ) -> object:
            with torch.inference_mode():
                return encoder(input_ids=ids, attention_mask=m, **kw)

        calls: dict[str, Callable[[], object]] = {
            "eager encode": eager_encode,
            "eager generate": partial(eager_generate, model, input_ids, mask, new_tokens, globals_mask),
        }
        for name, runner in graphs.items():
            batch = layout.batch(list(input_ids), runner.decoder.pad_token_id, global_tokens)
            arrays = (batch.input_ids, batch.attention_mask, batch.extra)
            calls[f"{name} encode"] = partial(runner.encode, *arrays)
            calls[f"{name} generate"] = partial(
                generate, runner, batch, DecodingConfig(min_new_tokens=new_tokens), new_tokens
            )
        with console.status(f"timing {arch} at {length} tokens"):
            medians = interleaved_medians(calls, rounds)
        for fmt in FORMATS:
            for stage in ("encode", "generate"):
                eager_ms, exported_ms = medians[f"eager {stage}"], medians[f"{fmt} {stage}"]
                rows.append(
                    {
                        "arch": arch,
                        "format": fmt,
                        "bucket": length,
                        "stage": stage,
                        "eager_ms": eager_ms,
                        "exported_ms": exported_ms,
                        "ratio": eager_ms / exported_ms,
                    }
                )
    return rows


def render(rows: list[dict[str, Any]], new_tokens: int, rounds: int) -> Table:
    table = Table(
        title=f"Eager PyTorch vs exported, small checkpoints, batch 1, median of {rounds} interleaved rounds "
        f"(ratio = eager / exported; target >= {TARGET_RATIO})"
    )
    for column in ("arch", "format", "bucket", "stage", "eager ms", "exported ms", "ratio"):
        table.add_column(column, justify="left" if column in ("arch", "format", "stage") else "right")
    for row in rows:
        ratio = row["ratio"]
        style = "green" if ratio >= TARGET_RATIO else "red"
        stage = row["stage"] if row["stage"] == "encode" else f"generate {new_tokens}"
        table.add_row(
            row["arch"],
            row["format"],
            str(row["bucket"]),
            stage,
            f"{row['eager_ms']:.1f}",
            f"{row['exported_ms']:.1f}",
            f"[{style}]{ratio:.2f}x[/]",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-exporters"))
    parser.add_argument(
        "--lengths", type=partial(parse_numbers, kind=int, positive=True), default=DEFAULT_LENGTHS
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--arch", choices=ARCHS, action="append", help="default: both")
    args = parser.parse_args(argv)
    console = Console()
    rows = []
    for arch in args.arch or ARCHS:
        rows += bench_arch(arch, args.workdir, args.lengths, args.rounds, args.new_tokens, console)
    console.print(render(rows, args.new_tokens, args.rounds))
    below = [row for row in rows if row["ratio"] < TARGET_RATIO]
    console.print(
        f"{len(rows) - len(below)} of {len(rows)} cells reach {TARGET_RATIO}x; "
        f"torch threads {torch.get_num_threads()}, numpy {np.__version__}."
    )
    write_results(rows, args.workdir / "bench-exporters.json", console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
