"""Answers of the server's endpoints, shared by the server, its one client and the load generator.

They live outside :mod:`profiler.server` because the load generator reads them too and must know
the server only over HTTP (see docs/design.md, "Which way imports point"). The server returns these
types, so ``/openapi.json`` describes the real bodies; the client validates every answer with them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, computed_field

from profiler.artifact import Manifest
from profiler.documents import Document
from profiler.energy.baseline import IdleBaseline
from profiler.energy.common import Source
from profiler.modes import Mode
from profiler.validation import Count, Strict


class Batching(Strict):
    """How the server batches; also a sweep's ``[server]`` table, which passes them on."""

    max_batch_size: Count = 8
    #: How long a request waits for batch-mates. Units: ms.
    max_wait_ms: Annotated[float, Field(ge=0)] = 5.0
    #: Requests that may wait; beyond it, 503.
    max_queue: Count = 256


class ServerInfo(Document):
    """``GET /v1/info``: what is served, where it really runs, and the server's limits.

    Attributes:
        engine: ``eager``, ``onnx`` or ``torchscript``.
        device: where the model really runs (for ONNX, from the providers its sessions chose).
        providers: ONNX Runtime's execution providers as chosen; empty for PyTorch.
        source: the directory served (an artifact, or a checkpoint for eager).
        model_type: the transformers ``model_type``.
        buckets: the encoder lengths inputs are padded to. Units: tokens.
        truncate: inputs over the largest bucket are cut instead of refused with 413.
        max_body_bytes: the largest request body accepted.
        manifest: the artifact's manifest; None for an eager checkpoint.
    """

    engine: str
    device: str
    providers: list[str]
    source: str
    model_type: str
    buckets: list[int]
    truncate: bool
    batching: Batching
    max_body_bytes: int
    manifest: Manifest | None


class EnergyInfo(Document):
    """``GET /v1/energy``: where the server's joules come from, and its windows and baseline.

    Attributes:
        source: ``nvml-counter``, ``nvml-power``, ``rapl`` or ``estimate``.
        domains: what the source measures (GPUs, CPU packages, ...).
        method: how the source measures, in words.
        open_windows: the user windows open now.
        idle: the idle baseline the server holds, if one was measured.
        timeline_hz: power timeline samples per second.
        clock: the clock of every ``*_monotonic_s`` figure.
    """

    source: Source
    domains: list[str]
    method: str
    open_windows: list[str]
    idle: IdleBaseline | None
    timeline_hz: float
    clock: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimate(self) -> bool:
        """The figures are an estimate from CPU time, not a reading of a counter."""
        return self.source == "estimate"


class Timings(Document):
    """Milliseconds spent in each stage of this request."""

    queue_ms: float
    tokenize_ms: float
    encode_ms: float
    decode_ms: float
    total_ms: float


class EnergyShare(Document):
    """This request's share of its batch's energy, by busy engine time. Units: J."""

    joules: float
    batch_joules: float
    source: Source
    warnings: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimate(self) -> bool:
        """True when the figure is an estimate from CPU time, not a reading."""
        return self.source == "estimate"


class GenerateResponse(Document):
    request_id: str
    text: str = Field(description="Decoded output (empty in encode mode).")
    output_ids: list[int]
    input_tokens: int = Field(description="Tokens in the input after any truncation.")
    truncated: bool
    bucket: int = Field(description="Encoder length the input was padded to.")
    batch_size: int = Field(description="Requests in the batch this one ran in.")
    mode: Mode
    timings: Timings
    energy: EnergyShare


class ErrorBody(Document):
    type: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(Document):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorBody
