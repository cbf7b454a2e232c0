"""The records of a run: one :class:`ResultRecord` per sweep cell (``results.jsonl``), one
:class:`CapacityRecord` per capacity search (``capacity.jsonl``) and one :class:`AccuracyRecord`
per score (``accuracy.jsonl``), each typed once for its writer, the report and the tests.

A result record carries ``schema_version``. Version 1 records (written before the records were
typed, e.g. by the demo of earlier releases) are read through :func:`upgrade_v1`, the one place
that knows their layout; nothing else ever sees a version-1 record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from profiler.artifact import Precision
from profiler.attention_layout import GlobalAttention
from profiler.decoding_config import DecodingConfig
from profiler.documents import Document
from profiler.energy.baseline import IdleBaseline
from profiler.energy.timeline import TimelineSample
from profiler.jsonl import RecordsError
from profiler.loadgen.capacity import Capacity
from profiler.loadgen.config import Arrival
from profiler.loadgen.results import StageResult
from profiler.modes import Mode

#: The version this code writes.
RESULT_SCHEMA_VERSION = 2


#: The load level of a capacity search's records, where a cell's is ``arrival:level``.
CAPACITY_LEVEL = "capacity"


def cell_key(model: str, fmt: str, level: str, repeat: int, length: int) -> str:
    """A record's key, ``model|format|level|repeat N|length``: a resumed sweep skips the keys
    already recorded, and a report reads a results file's stages under the same keys."""
    return f"{model}|{fmt}|{level}|repeat {repeat}|{length}"


class LoadShape(Document):
    """A cell's load: closed loop (``concurrency`` users back to back) or open loop (``rate`` req/s)."""

    arrival: Arrival
    concurrency: int | None
    rate: float | None

    @model_validator(mode="after")
    def one_level(self) -> LoadShape:
        if (self.arrival == "closed") != (self.concurrency is not None) or (self.rate is None) == (
            self.concurrency is None
        ):
            raise ValueError("closed loop has a concurrency and no rate; open loop a rate and no concurrency")
        return self

    @classmethod
    def at(cls, arrival: Arrival, level: float) -> LoadShape:
        """The shape of ``level`` users (closed loop) or requests/s (open loop)."""
        closed = arrival == "closed"
        return cls(
            arrival=arrival, concurrency=int(level) if closed else None, rate=None if closed else level
        )

    @property
    def level(self) -> float:
        """Users in closed loop, requests/s in open loop."""
        return float(self.concurrency if self.concurrency is not None else self.rate or 0.0)


class ResultRecord(Document):
    """One cell of a sweep: a model in one format at one load level, repeat and input length.

    Attributes:
        cell: the record's key (``model|format|arrival:level|repeat N|length``); a resumed sweep
            skips the cells already recorded.
        checkpoint: the checkpoint the cell's artifact came from.
        engine / device: what the server reported running (``GET /v1/info``).
        bucket: the stage's input length. Units: tokens.
        stage: the load test's stage for this length, every raw sample and its energy window.
        idle: the idle baseline measured before the server's first locust run.
        timeline: the server's power timeline samples inside the stage's energy window.
        peak_rss_bytes: the server's resident-memory high-water mark so far.
        peak_gpu_memory_bytes: the most GPU memory the timeline saw in the stage; None without NVML.
        recorded_wall_s: when the record was appended. ``time.time()``.
        new_weights: parameters of the served model that did not come from its weights file,
            measured anyway because the sweep's model said ``allow_new_weights``.
        global_attention: LED's global attention the requests ran with (``none`` for records
            written before it existed: no engine had it then).
        decoding: how the server decoded (``GET /v1/info``); None for records written before it
            was recorded (those decoded plain greedy).
    """

    schema_version: Literal[2] = 2
    run_id: str
    cell: str
    model: str
    checkpoint: str
    format: str
    engine: str
    device: str
    bucket: int
    mode: Mode
    max_new_tokens: int
    load: LoadShape
    repeat: int = Field(ge=1)
    stage: StageResult
    idle: IdleBaseline | None
    timeline: list[TimelineSample]
    peak_rss_bytes: int | None
    peak_gpu_memory_bytes: int | None
    recorded_wall_s: float
    new_weights: list[str] = Field(default_factory=list)
    global_attention: GlobalAttention = "none"
    decoding: DecodingConfig | None = None
    #: The served artifact's precision (``GET /v1/info``); fp32 for records written before it was.
    precision: Precision = "fp32"


class CapacityRecord(Document):
    """A sweep's capacity search for one model in one format at one input length
    (``capacity.jsonl``).

    Attributes:
        cell: the record's key (``model|format|capacity|repeat N|length``); a resumed sweep skips
            the searches already recorded.
        engine / device: what the server reported running.
        capacity: the SLO, the sustained rate, goodput, joules per good query and every probe.
    """

    run_id: str
    cell: str
    model: str
    checkpoint: str
    format: str
    engine: str
    device: str
    mode: Mode
    max_new_tokens: int
    global_attention: GlobalAttention = "none"
    repeat: int = Field(ge=1)
    capacity: Capacity
    recorded_wall_s: float
    precision: Precision = "fp32"


#: Stage fields that early version-1 writers did not record, with what the version-1 reader took
#: their absence to mean (nothing unsent, no failures kept apart, no window error, and a stage not
#: flagged as cut short).
_V1_STAGE_DEFAULTS: dict[str, Any] = {
    "unsent": 0,
    "service_ms": [],
    "lag_ms": [],
    "failed_latency_ms": [],
    "truncated": 0,
    "window_error": None,
    "nodes": {},
    "complete": True,  # unknown to such writers; the version-1 report flagged only an explicit False
}


def upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record in the version-2 layout.

    Version 1 named its version ``schema``, repeated the stage's energy source at the top level,
    and, from its earliest writers, may lack the stage's load time, send rate and drain figures.
    """
    record = {key: value for key, value in raw.items() if key not in ("schema", "energy_source")}
    record["schema_version"] = 2
    stage = dict(record.get("stage") or {})
    if stage.get("energy_source") is None:
        stage["energy_source"] = raw.get("energy_source")
    for key, value in _V1_STAGE_DEFAULTS.items():
        stage.setdefault(key, value)
    if "load_s" not in stage and "duration_s" in stage:
        stage["load_s"] = stage["duration_s"]
    if "sent_rps" not in stage and "requests" in stage and "load_s" in stage:
        stage["sent_rps"] = stage["requests"] / stage["load_s"] if stage["load_s"] > 0 else 0.0
    record["stage"] = stage
    return record


def parse_result(raw: dict[str, Any]) -> ResultRecord:
    """One line of ``results.jsonl`` as a record, upgraded from version 1 where it is one.

    Raises:
        ValidationError: a field is missing or wrong.
        RecordsError: a version this code cannot read.
    """
    version = raw.get("schema_version", raw.get("schema"))
    if version == 1 and "schema" in raw:
        return ResultRecord.model_validate(upgrade_v1(raw))
    if version != RESULT_SCHEMA_VERSION:
        raise RecordsError(
            f"schema version {version!r}, and this profiler reads versions 1 and {RESULT_SCHEMA_VERSION}; "
            "report it with the profiler version that wrote it"
        )
    return ResultRecord.model_validate(raw)


class AccuracyRecord(Document):
    """One line of ``accuracy.jsonl``: a model's SCROLLS score on a task at one input length.

    Attributes:
        format: the engine that produced the predictions (``eager``, ``onnx``, ``torchscript``).
        input_length: the length inputs were cut to. Units: tokens.
        score: the leaderboard's number for the task; ``metrics`` holds the official keys.
        count: examples scored.
        global_attention: LED's global attention the examples ran with (``none`` for scores
            recorded before it existed).
        decoding: how outputs were decoded; None for scores recorded before it was (plain greedy).
    """

    schema_version: Literal[1] = 1
    model: str
    format: str
    input_length: int
    global_attention: GlobalAttention = "none"
    decoding: DecodingConfig | None = None
    task: str
    score: float
    metrics: dict[str, float]
    count: int
    #: The precision of the artifact that answered; fp32 for scores recorded before it was.
    precision: Precision = "fp32"
