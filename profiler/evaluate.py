"""`profiler eval`: run SCROLLS records through a model and score them as the official scorer does.

The target is a running server's URL, or an artifact/checkpoint directory served in-process by
the same engines. Every input is cut to the chosen length the way the server truncates (the first
``length - 1`` tokens and the closing special token), so accuracy is measured on exactly what the
efficiency figures were measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.accuracy import AccuracyError, TaskScore, references_from_records, score_task
from profiler.artifact import Precision
from profiler.attention_layout import GlobalAttention, query_tokens
from profiler.buckets import truncate_ids
from profiler.client import ServerCallError, ServerClient
from profiler.decoding_config import DecodingConfig
from profiler.jsonl import RecordsError
from profiler.results import AccuracyRecord
from profiler.rundir import RunDirectory
from profiler.workload import Record, load_tokenizer


@dataclass(frozen=True)
class EvalInput:
    """One example as the model takes it: ids cut to the length, and its leading global tokens."""

    ids: list[int]
    global_tokens: int


@dataclass(frozen=True)
class EvalTarget:
    """What answered: for the accuracy record beside the efficiency results."""

    model: str
    format: str
    generate: Callable[[list[EvalInput]], list[str]]
    tokenizer: Any
    #: LED's global attention the examples ran with.
    global_attention: GlobalAttention
    #: How outputs were decoded.
    decoding: DecodingConfig
    #: The precision of the graphs that answered (fp32 for a checkpoint).
    precision: Precision = "fp32"


def examples(records: Sequence[Record]) -> list[Record]:
    """One record per example id (rows sharing an id are its extra references)."""
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.id, record)
    return list(seen.values())


def _batches(items: Sequence[EvalInput], size: int) -> Iterator[list[EvalInput]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _without_global(model_type: str, asked: GlobalAttention | None) -> None:
    if asked not in (None, "none"):
        raise AccuracyError(
            f"--global-attention {asked}: {model_type} has no global attention; leave the option out."
        )


def local_target(
    path: Path,
    max_new_tokens: int,
    batch_size: int,
    global_attention: GlobalAttention | None = None,
    decoding_overrides: Mapping[str, object] | None = None,
) -> EvalTarget:
    """An artifact or checkpoint served in-process by the profiler's own engine; LED's global
    attention is ``global_attention``, else ``first`` as the server's default, and outputs are
    decoded with the checkpoint's generation settings and ``decoding_overrides``."""
    from profiler.engines.engine import Job, load_engine

    engine = load_engine(path, decoding_overrides=decoding_overrides)
    tokenizer = load_tokenizer(path)
    if not engine.graphs.layout.global_attention:
        _without_global(engine.model_type, global_attention)
    chosen = global_attention or ("first" if engine.graphs.layout.global_attention else "none")

    def generate(inputs: list[EvalInput]) -> list[str]:
        texts: list[str] = []
        for batch in _batches(inputs, batch_size):
            jobs = [
                Job(item.ids, "generate", max_new_tokens, global_tokens=item.global_tokens) for item in batch
            ]
            outcomes = engine.run(jobs)
            texts += tokenizer.batch_decode([o.output_ids for o in outcomes], skip_special_tokens=True)
        return texts

    model = Path(engine.manifest.source_path if engine.manifest else engine.source).name
    return EvalTarget(model, engine.kind, generate, tokenizer, chosen, engine.decoding, engine.precision)


def remote_target(
    url: str,
    max_new_tokens: int,
    tokenizer_dir: Path | None,
    global_attention: GlobalAttention | None = None,
    decoding_overridden: bool = False,
    in_flight: int = 1,
) -> EvalTarget:
    """A running `profiler serve`; its tokenizer comes from --tokenizer or the served directory.
    ``in_flight`` requests are sent at once, so the server may batch them (its answers do not
    depend on what shares a batch).

    Inputs go as ids cut to the length, so ``query`` (found in the text) is refused: the server
    finds the query in text it is sent, not in ids. The server decodes as it was started to, so a
    decoding override here is refused too.
    """
    if decoding_overridden:
        raise AccuracyError(
            "--decoding applies to a model directory; a server decodes as it was started: "
            "profiler serve ... --decoding NAME=VALUE."
        )
    if global_attention == "query":
        raise AccuracyError(
            "--global-attention query needs the text, which a remote target is not sent (inputs go as "
            "ids cut to --input-length); evaluate the model directory instead, or use first or none."
        )
    client = ServerClient(url, timeout=600)
    try:
        info = client.info()
    except ServerCallError as exc:
        raise AccuracyError(
            f"{url}: no profiler server answered ({exc}); start one with `profiler serve`."
        ) from exc
    if not info.layout.global_attention:
        _without_global(info.model_type, global_attention)
    source = Path(info.source)
    tokenizer = load_tokenizer(tokenizer_dir or source)

    def answer(item: EvalInput) -> str:
        return client.generate(item.ids, max_new_tokens, global_attention).text

    def generate(inputs: list[EvalInput]) -> list[str]:
        try:
            with ThreadPoolExecutor(max_workers=in_flight) as pool:
                return list(pool.map(answer, inputs))
        except ServerCallError as exc:
            raise AccuracyError(str(exc)) from exc

    model = Path(info.manifest.source_path if info.manifest else info.source).name
    chosen = global_attention or info.global_attention
    return EvalTarget(model, info.engine, generate, tokenizer, chosen, info.decoding, info.precision)


def eval_input(target: EvalTarget, record: Record, length: int) -> EvalInput:
    """The record tokenized and cut as the server cuts it, with its global tokens as the server
    counts them.

    Raises:
        AccuracyError: ``query`` global attention and a record with no query (no blank line).
    """
    query = target.global_attention == "query"
    encoded = target.tokenizer(record.input, verbose=False, return_offsets_mapping=query)
    ids = truncate_ids(encoded["input_ids"], length)
    count = 1 if target.global_attention == "first" else 0
    if query:
        found = query_tokens(record.input, encoded["offset_mapping"])
        if found is None:
            raise AccuracyError(
                f"record {record.id!r} has no query (no blank line before its document) for "
                "--global-attention query; use first or none for this task."
            )
        count = found
    return EvalInput(ids, min(count, len(ids)))


def predict(target: EvalTarget, records: Sequence[Record], length: int) -> dict[str, str]:
    """Predictions ``{id: text}`` for one record per example id, inputs cut to ``length`` tokens."""
    chosen = examples(records)
    inputs = [eval_input(target, record, length) for record in chosen]
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
        precision=target.precision,
        input_length=length,
        global_attention=target.global_attention,
        decoding=target.decoding,
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
