"""Request and response bodies of the HTTP API (they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Upper bounds the schema states; the server narrows them to the loaded model's limits.
MAX_NEW_TOKENS = 1024
MAX_TARGET_LENGTH = 1024


class GenerateRequest(BaseModel):
    """One query: text (tokenized by the server) or token ids (special tokens included)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1, description="Input text, e.g. a SCROLLS `input`.")
    input_ids: list[int] | None = Field(
        default=None, min_length=1, description="Token ids, special tokens included."
    )
    mode: Literal["generate", "forward", "encode"] = Field(
        default="generate",
        description="generate: greedy decoding; forward: teacher-forced decoder pass over "
        "`target_length` positions; encode: encoder only.",
    )
    max_new_tokens: int = Field(default=32, ge=1, le=MAX_NEW_TOKENS, description="generate mode only.")
    target_length: int = Field(default=64, ge=1, le=MAX_TARGET_LENGTH, description="forward mode only.")

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of `text` or `input_ids`")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is empty; send the document to process")
        return self


class Timings(BaseModel):
    """Milliseconds spent in each stage of this request."""

    queue_ms: float
    tokenize_ms: float
    encode_ms: float
    decode_ms: float
    total_ms: float


class EnergyShare(BaseModel):
    """This request's share of its batch's energy, by busy engine time."""

    joules: float
    batch_joules: float
    source: str = Field(description="nvml-counter, nvml-power, rapl or estimate.")
    estimate: bool = Field(description="True when the figure is an estimate from CPU time, not a reading.")
    warnings: list[str]


class GenerateResponse(BaseModel):
    request_id: str
    text: str = Field(description="Decoded output (empty in encode mode).")
    output_ids: list[int]
    input_tokens: int = Field(description="Tokens in the input after any truncation.")
    truncated: bool
    bucket: int = Field(description="Encoder length the input was padded to.")
    batch_size: int = Field(description="Requests in the batch this one ran in.")
    mode: str
    timings: Timings
    energy: EnergyShare


class ErrorBody(BaseModel):
    type: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Body is not UTF-8 JSON."},
    404: {"model": ErrorResponse, "description": "No such energy window."},
    409: {"model": ErrorResponse, "description": "An energy window of that name is already open."},
    413: {"model": ErrorResponse, "description": "Body too large, or input over the largest bucket."},
    422: {
        "model": ErrorResponse,
        "description": "Fields missing, unknown, of the wrong type or out of range.",
    },
    500: {"model": ErrorResponse, "description": "The engine failed on this request's batch."},
    503: {"model": ErrorResponse, "description": "Warming up, queue full or shutting down; see Retry-After."},
}


class IdleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=600, description="How long to measure idle power; no load meanwhile.")
