"""Bodies of the server's endpoints, requests and answers, shared by the server, its one client and
the load generator.

They live outside :mod:`profiler.server` because the load generator uses them too and must know
the server only over HTTP (see docs/design.md, "Which way imports point"). The server validates
requests with these types and returns them, so ``/openapi.json`` describes the real bodies; the
client and the load generator build their requests with them and validate every answer.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from profiler.artifact import Manifest, Precision
from profiler.attention_layout import EncoderLayout, GlobalAttention
from profiler.decoding_config import DecodingConfig
from profiler.documents import Document
from profiler.energy.baseline import IdleBaseline
from profiler.energy.common import Source
from profiler.modelinfo import MAX_DECODE_TOKENS
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
        buckets: the length classes requests are batched and reported by; the largest is the
            longest input served. Units: tokens.
        layout: how inputs are padded and their sparse attention described.
        global_attention: LED's global attention when a request does not say.
        decoding: how outputs are decoded: the checkpoint's generation settings, with the
            server's ``--decoding`` overrides.
        truncate: inputs over the largest bucket are cut instead of refused with 413.
        max_body_bytes: the largest request body accepted.
        precision: the graphs' numeric precision (the manifest's; fp32 for an eager checkpoint).
        manifest: the artifact's manifest; None for an eager checkpoint.
        new_weights: parameters that do not come from the checkpoint's weights file (random or
            unused), served because the user allowed it; empty for a complete checkpoint.
        resident_bytes: the server's resident memory (RSS) once warm-up has run every bucket: the
            weights as loaded plus what running them allocated; None until warm-up ends. Units: bytes.
    """

    engine: str
    device: str
    providers: list[str]
    source: str
    model_type: str
    buckets: list[int]
    layout: EncoderLayout
    global_attention: GlobalAttention
    decoding: DecodingConfig
    truncate: bool
    batching: Batching
    max_body_bytes: int
    precision: Precision = "fp32"
    manifest: Manifest | None
    new_weights: list[str]
    resident_bytes: int | None = None


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
    """Milliseconds spent in each stage of this request.

    ``queue_ms + tokenize_ms + encode_ms + decode_ms`` is about ``total_ms`` (the rest is parsing
    and answering). ``first_step_ms`` is the part of ``decode_ms`` until the first token was
    chosen (the decoder's first step, over the whole encoder output), so the time to the first
    token is queue, tokenize, encode and first step, and ``decode_ms - first_step_ms`` the rest of
    decoding. Encode, first step and decode are the batch's, shared by every request in it.
    """

    queue_ms: float
    tokenize_ms: float
    encode_ms: float
    first_step_ms: float
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
    bucket: int = Field(description="The smallest bucket that holds the input: its length class.")
    encoded_tokens: int = Field(
        description="Tokens the encoder computed per row of this input's batch: the batch's longest "
        "input padded as the model pads it (LED's window, BigBird's block)."
    )
    global_attention: GlobalAttention = Field(description="Which tokens attended globally (LED).")
    global_tokens: int = Field(description="How many leading tokens attended globally.")
    batch_size: int = Field(description="Requests in the batch this one ran in.")
    mode: Mode
    timings: Timings
    energy: EnergyShare


class TokenEvent(Document):
    """A streamed answer's ``token`` event: one generated token, sent as the decoder makes it."""

    index: int = Field(description="Position in `output_ids`, from 0.")
    token_id: int
    text: str = Field(
        description="What this token adds to the decoded text; empty while a character is "
        "incomplete (its bytes span tokens) or for a special token."
    )


class ErrorBody(Document):
    type: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(Document):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorBody


#: Upper bounds for a model without a decoder position table; a loaded model states its own
#: (see :func:`request_model`).
MAX_NEW_TOKENS = MAX_TARGET_LENGTH = MAX_DECODE_TOKENS


def _absent_by_default(schema: dict[str, Any]) -> None:
    """An optional field's schema without ``"default": null``: absent is allowed, null is not."""
    schema.pop("default", None)


class GenerateRequest(BaseModel):
    """One query: text (tokenized by the server) or token ids (special tokens included).

    Strict: ``true``, ``"5"`` or ``2.0`` are not integers, and an explicit ``null`` is refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["input_ids"]}]},
    )

    text: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Input text, e.g. a SCROLLS `input`.", json_schema_extra=_absent_by_default
    )
    input_ids: Annotated[list[int], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Token ids, special tokens included.", json_schema_extra=_absent_by_default
    )
    mode: Mode = Field(
        default="generate",
        description="generate: greedy decoding; forward: teacher-forced decoder pass over "
        "`target_length` positions; encode: encoder only.",
    )
    max_new_tokens: int = Field(default=32, ge=1, le=MAX_NEW_TOKENS, description="generate mode only.")
    target_length: int = Field(default=64, ge=1, le=MAX_TARGET_LENGTH, description="forward mode only.")
    stream: bool = Field(
        default=False,
        description="generate mode only: answer `text/event-stream`, a `token` event per generated "
        "token as it is made, then a `done` event with the usual answer (docs/serving.md).",
    )
    global_attention: GlobalAttention | SkipJsonSchema[None] = Field(
        default=None,
        description="LED only: the tokens that attend globally. first: the first token; query: the "
        "tokens before the first blank line of `text` (SCROLLS' `query\\n\\ndocument`); none. "
        "Default: the server's --global-attention.",
        json_schema_extra=_absent_by_default,
    )

    @model_validator(mode="before")
    @classmethod
    def no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(key) for key, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed; leave the field out instead")
        return data

    @field_validator("stream")
    @classmethod
    def stream_generates(cls, stream: bool, info: ValidationInfo) -> bool:
        mode = info.data.get("mode")
        if stream and mode not in (None, "generate"):
            raise ValueError(f"only generate mode makes tokens to stream; drop it for mode {mode}")
        return stream

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of `text` or `input_ids`")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is empty; send the document to process")
        return self


#: Seconds of idle measurement when the request does not say.
DEFAULT_IDLE_SECONDS = 5.0


class IdleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    seconds: float = Field(
        default=DEFAULT_IDLE_SECONDS,
        gt=0,
        le=600,
        description="How long to measure idle power; send no load meanwhile.",
    )


#: A tokenizer file's name: a bare file name, so a client can write it into a directory safely.
TokenizerFileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")]


class TokenizerFile(Document):
    """One file of the served tokenizer, base64-encoded (some tokenizers keep binary models).

    Attributes:
        name: the file's name, e.g. ``tokenizer.json``.
        content_base64: its bytes, base64 (RFC 4648, with padding).
    """

    name: TokenizerFileName
    content_base64: str


class TokenizerFiles(Document):
    """``GET /v1/tokenizer``: the files ``save_pretrained`` writes for the tokenizer the server
    loaded, so that a load generator with no copy of the model tokenizes exactly as the server does.
    A directory holding them loads with ``AutoTokenizer.from_pretrained``."""

    files: list[TokenizerFile]

    def write(self, directory: Path) -> None:
        """Write every file into ``directory`` (which must exist)."""
        for file in self.files:
            (directory / file.name).write_bytes(base64.b64decode(file.content_base64, validate=True))
