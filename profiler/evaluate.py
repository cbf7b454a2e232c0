"""`profiler eval`: run SCROLLS records through a model and score them as the official scorer does.

The target is a running server's URL, or an artifact/checkpoint directory served in-process by
the same engines. Every input is cut to the chosen length the way the server truncates (the first
``length - 1`` tokens and the closing special token), so accuracy is measured on exactly what the
efficiency figures were measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.accuracy import AccuracyError, TaskScore, references_from_records, score_task
from profiler.buckets import truncate_ids
from profiler.client import ServerCallError, ServerClient
from profiler.jsonl import RecordsError
from profiler.results import AccuracyRecord
from profiler.rundir import RunDirectory
from profiler.workload import Record, load_tokenizer


@dataclass(frozen=True)
class EvalTarget:
    """What answered: for the accuracy record beside the efficiency results."""

    model: str
    format: str
    generate: Callable[[list[list[int]]], list[str]]
    tokenizer: Any


def examples(records: Sequence[Record]) -> list[Record]:
    """One record per example id (rows sharing an id are its extra references)."""
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.id, record)
    return list(seen.values())


def _batches(items: Sequence[list[int]], size: int) -> Iterator[list[list[int]]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def local_target(path: Path, max_new_tokens: int, batch_size: int) -> EvalTarget:
    """An artifact or checkpoint served in-process by the profiler's own engine."""
    from profiler.engines.engine import Job, load_engine

    engine = load_engine(path)
    tokenizer = load_tokenizer(path)

    def generate(inputs: list[list[int]]) -> list[str]:
        texts: list[str] = []
        for batch in _batches(inputs, batch_size):
            outcomes = engine.run([Job(ids, "generate", max_new_tokens) for ids in batch])
            texts += [tokenizer.decode(o.output_ids, skip_special_tokens=True) for o in outcomes]
        return texts

    model = Path(engine.manifest.source_path if engine.manifest else engine.source).name
    return EvalTarget(model, engine.kind, generate, tokenizer)


def remote_target(url: str, max_new_tokens: int, tokenizer_dir: Path | None) -> EvalTarget:
    """A running `profiler serve`; its tokenizer comes from --tokenizer or the served directory."""
    client = ServerClient(url, timeout=600)
    try:
        info = client.info()
    except ServerCallError as exc:
        raise AccuracyError(
            f"{url}: no profiler server answered ({exc}); start one with `profiler serve`."
        ) from exc
    source = Path(info.source)
    tokenizer = load_tokenizer(tokenizer_dir or source)

    def generate(inputs: list[list[int]]) -> list[str]:
        try:
            return [client.generate(ids, max_new_tokens).text for ids in inputs]
        except ServerCallError as exc:
            raise AccuracyError(str(exc)) from exc

    model = Path(info.manifest.source_path if info.manifest else info.source).name
    return EvalTarget(model, info.engine, generate, tokenizer)


def predict(target: EvalTarget, records: Sequence[Record], length: int) -> dict[str, str]:
    """Predictions ``{id: text}`` for one record per example id, inputs cut to ``length`` tokens."""
    chosen = examples(records)
    inputs = [
        truncate_ids(target.tokenizer(record.input, verbose=False)["input_ids"], length) for record in chosen
    ]
    return dict(zip((record.id for record in chosen), target.generate(inputs), strict=True))


def score(task: str, predictions: dict[str, str], records: Sequence[Record]) -> TaskScore:
    return score_task(task, predictions, references_from_records(records))


def record_accuracy(run_dir: Path, target: EvalTarget, length: int, result: TaskScore) -> Path:
    """Append the score to ``run_dir/accuracy.jsonl``, where `profiler report` puts it beside efficiency.

    Written as sweep results are (one fsynced line), so a killed eval cannot damage earlier scores.

    Raises:
        AccuracyError: ``run_dir`` is not a directory, or the file holds a damaged line.
    """
    if not run_dir.is_dir():
        raise AccuracyError(f"--run {run_dir}: no such directory; pass a run directory of `profiler sweep`.")
    store = RunDirectory(run_dir).accuracy
    record = AccuracyRecord(
        model=target.model,
        format=target.format,
        input_length=length,
        task=result.task,
        score=result.score,
        metrics=result.metrics,
        count=result.count,
    )
    try:
        store.open()
    except RecordsError as exc:
        raise AccuracyError(f"{result.task} score {result.score:.4f} was not recorded: {exc}") from exc
    store.append(record)
    return store.path
