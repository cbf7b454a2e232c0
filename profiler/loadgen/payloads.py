"""Request bodies for each stage: SCROLLS documents at each input length, serialised once.

The master (or the single local process) builds every body when locust starts and ships each
stage's bodies to the workers with the stage's start, so workers need neither the tokenizer nor
the dataset, and every process sends the very same documents.

- ``--tokenizer DIR``, or the server's own tokenizer when neither it nor ``--dataset`` is given
  (:mod:`profiler.loadgen.prepare` fetches it): bodies carry ``input_ids`` of exactly the
  stage's length, special tokens included, so each lands in the intended bucket unpadded.
  Documents come from ``--dataset`` (records shorter than the length are skipped) or from the
  shipped sample; where no sample record is long enough, :func:`profiler.workload.synthesize`
  writes one that is.
- ``--dataset`` without a tokenizer: the records go as ``text``, unchanged, in every stage; the
  server tokenizes them and its bucketing and truncation rules decide where they land (each
  response names its bucket, and the results count them). The stage's length is then a label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from profiler.api import GenerateRequest
from profiler.documents import Document
from profiler.errors import ConfigError
from profiler.loadgen.config import LoadConfig
from profiler.workload import (
    Record,
    WorkloadError,
    fit_to_length,
    load_jsonl,
    load_sample,
    load_tokenizer,
    synthesize,
    token_count,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


class WorkloadSource(Document):
    """Where one stage's documents came from, for the results file (not the bodies themselves).

    Attributes:
        source: ``sample``, ``synthesized``, ``dataset`` (cut to length) or ``dataset-text``.
        records: the ``pid`` of each body's record, in order.
        skipped: dataset records passed over because they are shorter than the length.
    """

    length: int
    source: Literal["sample", "synthesized", "dataset", "dataset-text"]
    records: list[str]
    skipped: int


@dataclass(frozen=True)
class StagePayload:
    """The bodies one stage cycles through.

    Attributes:
        length: the stage's input length. Units: tokens.
        bodies: JSON request bodies for ``POST /v1/generate``.
        source: ``sample``, ``synthesized``, ``dataset`` (cut to length) or ``dataset-text``.
        record_ids: the ``pid`` of each body's record, in order.
        skipped: dataset records passed over because they are shorter than the length.
    """

    length: int
    bodies: tuple[str, ...]
    source: str
    record_ids: tuple[str, ...]
    skipped: int = 0

    def describe(self) -> WorkloadSource:
        """For the results file: where the documents came from."""
        return WorkloadSource.model_validate(
            {
                "length": self.length,
                "source": self.source,
                "records": list(self.record_ids),
                "skipped": self.skipped,
            }
        )


def request_body(config: LoadConfig, *, input_ids: list[int] | None = None, text: str | None = None) -> str:
    """One ``POST /v1/generate`` body in the configured mode (fields of other modes are left out)."""
    fields: dict[str, Any] = {"input_ids": input_ids} if input_ids is not None else {"text": text}
    if config.mode == "generate":
        fields["max_new_tokens"] = config.max_new_tokens
        if config.stream:
            fields["stream"] = True
    elif config.mode == "forward":
        fields["target_length"] = config.target_length
    if config.global_attention is not None:
        fields["global_attention"] = config.global_attention
    return GenerateRequest(mode=config.mode, **fields).model_dump_json(exclude_unset=True)


def _ids(tokenizer: PreTrainedTokenizerBase, record: Record, length: int) -> list[int]:
    ids: list[int] = tokenizer(record.input, add_special_tokens=True, verbose=False)["input_ids"]
    if len(ids) != length:  # fit_to_length guarantees this; a mismatch means a tokenizer quirk
        raise ConfigError(f"record {record.pid!r} tokenized to {len(ids)} tokens, not {length}.")
    return ids


def _fit(
    records: list[Record], tokenizer: PreTrainedTokenizerBase, length: int, limit: int
) -> tuple[list[Record], int]:
    """Up to ``limit`` records cut to exactly ``length`` tokens, and how many were too short."""
    fitted: list[Record] = []
    skipped = 0
    for record in records:
        if len(fitted) == limit:
            break
        try:
            fitted.append(fit_to_length(record, tokenizer, length))
        except WorkloadError:
            skipped += 1
    return fitted, skipped


def _tokenized_stage(
    config: LoadConfig,
    tokenizer: PreTrainedTokenizerBase,
    records: list[Record],
    length: int,
    from_dataset: bool,
) -> StagePayload:
    fitted, skipped = _fit(records, tokenizer, length, config.records)
    source = "dataset" if from_dataset else "sample"
    if not fitted and from_dataset:
        longest = max(token_count(tokenizer, record.input) for record in records)
        raise ConfigError(
            f"--dataset {config.dataset}: no record has {length} tokens or more under this tokenizer "
            f"(the longest has {longest}); use shorter --input-lengths or a dataset of longer documents."
        )
    if not fitted:  # the shipped sample is too short for this length: write documents that are not
        fitted = synthesize(tokenizer, [length], count=max(1, config.records // 2), seed=config.seed)
        fitted = fitted[: config.records]
        source = "synthesized"
    if skipped and from_dataset:
        logger.info("%d dataset record(s) are shorter than %d tokens and were skipped.", skipped, length)
    bodies = tuple(request_body(config, input_ids=_ids(tokenizer, record, length)) for record in fitted)
    return StagePayload(length, bodies, source, tuple(record.pid for record in fitted), skipped)


def build_payloads(config: LoadConfig, tokenizer_dir: Path | None = None) -> dict[int, StagePayload]:
    """Bodies for every stage, keyed by input length (seconds: it loads the tokenizer).

    ``tokenizer_dir``: the tokenizer to cut documents with, if not ``config.tokenizer``; with
    neither, the records go as text.

    Raises:
        ConfigError: the dataset or tokenizer cannot be used, or no record reaches a length.
    """
    try:
        records = load_jsonl(config.dataset) if config.dataset is not None else load_sample()
        directory = tokenizer_dir or config.tokenizer
        if directory is None:
            logger.warning(
                "no --tokenizer: every stage sends the same %s records as text; the server's buckets "
                "decide where they land and the stage lengths are labels only.",
                min(len(records), config.records),
            )
            chosen = records[: config.records]
            bodies = tuple(request_body(config, text=record.input) for record in chosen)
            ids = tuple(record.pid for record in chosen)
            return {
                length: StagePayload(length, bodies, "dataset-text", ids) for length in config.input_lengths
            }
        tokenizer = load_tokenizer(directory)
        return {
            length: _tokenized_stage(config, tokenizer, records, length, config.dataset is not None)
            for length in config.input_lengths
        }
    except WorkloadError as exc:
        raise ConfigError(str(exc)) from exc
