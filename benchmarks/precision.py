"""int8 against fp32 ONNX on the CPU, side by side in one run.

``python -m benchmarks precision`` builds LED at each ``--sizes`` (small: the demo's; base: LED
base's shape, random weights), exports it to ONNX in fp32 and in int8 (ONNX Runtime's dynamic
quantization of the linear layers), and times both, interleaved round by round so that drift on a
shared machine hits both alike, at each ``--lengths``: the encoder pass and ``--new-tokens`` greedy
tokens, on one shipped sample document cut to that length (global attention on its first token).
Per cell it prints the medians, fp32/int8 ratios, and the fraction of int8's greedy tokens
identical to fp32's at the same position (fp32 ONNX matches PyTorch token for token: its export's
parity check says so), and per size the artifacts' sizes.

The exports skip the export's own parity check: a random-weight model's int8 tokens agree too
little for the default bound (docs/exporting.md, "Reduced precision"); the agreement is measured
here instead. ``--checkpoint DIR`` benchmarks a checkpoint of your own (a trained one) instead of
building ``--sizes``; with ``--eval JSONL --task TASK`` each precision's predictions on that SCROLLS
validation set are scored too (the task's metric, per length): the score columns.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks import write_results
from benchmarks.exporters import interleaved_medians
from exporters.export import export
from profiler.artifact import Manifest
from profiler.checkpoints import build_checkpoint
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import decode
from profiler.engines.graphs import Seq2SeqGraphs, load_graphs
from profiler.validation import parse_numbers
from profiler.workload import fit_to_length, load_sample, load_tokenizer

PRECISIONS = ("fp32", "int8")
#: Rounds per cell when ``--rounds`` is not given: base's calls take seconds each.
DEFAULT_ROUNDS = {"small": 5, "base": 2}


def export_both(
    checkpoint: Path, name: str, workdir: Path, lengths: Sequence[int], console: Console
) -> dict[str, Path]:
    """``checkpoint`` exported to ONNX in each of :data:`PRECISIONS` (parity measured here, not there)."""
    out = {}
    for precision in PRECISIONS:
        path = workdir / f"{name}-onnx-{precision}"
        with console.status(f"exporting {name} to ONNX {precision}"):
            started = time.perf_counter()
            export(
                checkpoint,
                "onnx",
                path,
                lengths=lengths,
                overwrite=True,
                skip_parity=True,
                precision=precision,
            )
        console.print(f"exported {name} to ONNX {precision} in {time.perf_counter() - started:.0f} s")
        out[precision] = path
    return out


def document(tokenizer: Any, length: int) -> np.ndarray:
    """The first shipped sample document cut to exactly ``length`` tokens."""
    record = fit_to_length(load_sample()[0], tokenizer, length)
    return np.asarray(tokenizer(record.input)["input_ids"], dtype=np.int64)


def calls(
    graphs: dict[str, Seq2SeqGraphs], ids: np.ndarray, new_tokens: int
) -> tuple[dict[str, Callable[[], object]], dict[str, Callable[[], np.ndarray]]]:
    """(timed calls ``PRECISION encode`` / ``PRECISION generate``, each precision's greedy tokens)."""
    timed: dict[str, Callable[[], object]] = {}
    tokens: dict[str, Callable[[], np.ndarray]] = {}
    plain = DecodingConfig(min_new_tokens=new_tokens)
    for precision, runner in graphs.items():
        batch = runner.layout.batch(
            [ids], runner.decoder.pad_token_id, [1 if runner.layout.global_attention else 0]
        )

        def encode(runner: Seq2SeqGraphs = runner, batch: Any = batch) -> object:
            return runner.encode(batch.input_ids, batch.attention_mask, batch.extra)

        def generate(runner: Seq2SeqGraphs = runner, batch: Any = batch) -> np.ndarray:
            hidden = runner.encode(batch.input_ids, batch.attention_mask, batch.extra)
            return np.asarray(decode(runner, hidden, batch.attention_mask, plain, new_tokens)[0])

        timed[f"{precision} encode"] = encode
        timed[f"{precision} generate"] = generate
        tokens[precision] = generate
    return timed, tokens


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of positions where ``other`` has ``reference``'s token."""
    common = min(len(reference), len(other))
    return float((reference[:common] == other[:common]).sum()) / max(len(reference), len(other), 1)


def eval_scores(
    artifacts: dict[str, Path], dataset: Path, task: str, lengths: Sequence[int], new_tokens: int
) -> dict[tuple[str, int], float]:
    """Each precision's score on ``dataset`` (the task's metric) at each length."""
    from profiler.evaluate import local_target, predict, score
    from profiler.workload import load_jsonl

    records = load_jsonl(dataset)
    scores = {}
    for precision, path in artifacts.items():
        target = local_target(path, new_tokens, batch_size=1)
        for length in lengths:
            scores[(precision, length)] = score(task, predict(target, records, length), records).score
    return scores


def measure(
    name: str,
    checkpoint: Path,
    args: argparse.Namespace,
    rounds: int,
    console: Console,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One model's cells and its artifacts' sizes."""
    artifacts = export_both(checkpoint, name, args.workdir, args.lengths, console)
    graphs = {precision: load_graphs(path, threads=args.threads) for precision, path in artifacts.items()}
    tokenizer = load_tokenizer(checkpoint)
    scores = eval_scores(artifacts, args.eval, args.task, args.lengths, args.new_tokens) if args.eval else {}
    rows = []
    for length in args.lengths:
        timed, tokens = calls(graphs, document(tokenizer, length), args.new_tokens)
        with console.status(f"timing {name} at {length} tokens ({rounds} rounds)"):
            medians = interleaved_medians(timed, rounds)
        produced = {precision: call() for precision, call in tokens.items()}
        row: dict[str, Any] = {"model": name, "length": length, "load_average": os.getloadavg()[0]}
        for stage in ("encode", "generate"):
            fp32, int8 = medians[f"fp32 {stage}"], medians[f"int8 {stage}"]
            row |= {f"fp32_{stage}_ms": fp32, f"int8_{stage}_ms": int8, f"{stage}_ratio": fp32 / int8}
        row["token_agreement"] = agreement(produced["fp32"], produced["int8"])
        for precision in PRECISIONS:
            if (precision, length) in scores:
                row[f"{precision}_score"] = scores[(precision, length)]
        rows.append(row)
    sizes = {precision: Manifest.read(path).file_sizes for precision, path in artifacts.items()}
    return rows, {"model": name, "file_sizes": sizes}


def render(rows: list[dict[str, Any]], new_tokens: int, rounds: dict[str, int]) -> Table:
    scored = any("fp32_score" in row for row in rows)
    table = Table(
        title=f"ONNX on the CPU, fp32 vs int8: medians (rounds {rounds}), {new_tokens}-token greedy generate"
    )
    for column in (
        "model",
        "tokens",
        "encode fp32 ms",
        "int8 ms",
        "fp32/int8",
        "generate fp32 ms",
        "int8 ms",
        "fp32/int8",
        "same tokens",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    if scored:
        table.add_column("score fp32", justify="right")
        table.add_column("score int8", justify="right")
    for row in rows:
        cells = [
            row["model"],
            f"{row['length']:,}",
            f"{row['fp32_encode_ms']:.0f}",
            f"{row['int8_encode_ms']:.0f}",
            f"{row['encode_ratio']:.2f}x",
            f"{row['fp32_generate_ms']:.0f}",
            f"{row['int8_generate_ms']:.0f}",
            f"{row['generate_ratio']:.2f}x",
            f"{row['token_agreement']:.0%}",
        ]
        if scored:
            cells += [
                f"{row.get('fp32_score', float('nan')):.2f}",
                f"{row.get('int8_score', float('nan')):.2f}",
            ]
        table.add_row(*cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    numbers = lambda text: parse_numbers(text, int, positive=True)  # noqa: E731
    parser.add_argument("--sizes", type=lambda text: tuple(text.split(",")), default=("small", "base"))
    parser.add_argument("--lengths", type=numbers, default=(1024, 4096))
    parser.add_argument("--rounds", type=int, help="default: 5 small, 2 base")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-precision"))
    parser.add_argument(
        "--checkpoint", type=Path, help="benchmark this checkpoint instead of building --sizes"
    )
    parser.add_argument("--eval", type=Path, help="SCROLLS validation JSONL: score each precision on it")
    parser.add_argument("--task", help="the --eval set's SCROLLS task (its metric)")
    args = parser.parse_args(argv)
    if args.eval is not None and args.task is None:
        parser.error("--eval needs --task, the SCROLLS task whose metric scores it")
    unknown = [size for size in args.sizes if size not in DEFAULT_ROUNDS]
    if unknown:
        parser.error(f"--sizes {','.join(unknown)}: choose from {', '.join(DEFAULT_ROUNDS)}")
    console = Console()
    args.workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    subjects = (
        [(args.checkpoint.name, args.checkpoint, "base")]
        if args.checkpoint
        else [
            (
                f"led-{size}",
                build_checkpoint("led", size, args.workdir / f"led-{size}", overwrite=True).path,
                size,
            )
            for size in args.sizes
        ]
    )
    rows, sizes, rounds = [], [], {}
    for name, checkpoint, size in subjects:
        rounds[name] = args.rounds or DEFAULT_ROUNDS[size]
        cells, files = measure(name, checkpoint, args, rounds[name], console)
        rows += cells
        sizes.append(files)
    console.print(render(rows, args.new_tokens, rounds))
    for entry in sizes:
        totals = {precision: sum(files.values()) / 1e6 for precision, files in entry["file_sizes"].items()}
        weights = {
            precision: files.get("weights.bin", 0) / 1e6 for precision, files in entry["file_sizes"].items()
        }
        console.print(
            f"{entry['model']}: artifact fp32 {totals['fp32']:.1f} MB (weights.bin {weights['fp32']:.1f}), "
            f"int8 {totals['int8']:.1f} MB (weights.bin {weights['int8']:.1f}): "
            f"{totals['fp32'] / totals['int8']:.2f}x smaller"
        )
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    write_results({"cells": rows, "artifacts": sizes}, args.workdir / "bench-precision.json", console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
