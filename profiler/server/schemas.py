"""Request and response bodies of the HTTP API (they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema

from profiler.api import ErrorResponse
from profiler.modelinfo import MAX_DECODE_TOKENS, max_decode_tokens
from profiler.modes import Mode

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

    @model_validator(mode="before")
    @classmethod
    def no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(key) for key, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed; leave the field out instead")
        return data

    @model_validator(mode="after")
    def one_input(self) -> GenerateRequest:
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of `text` or `input_ids`")
        if self.text is not None and not self.text.strip():
            raise ValueError("`text` is empty; send the document to process")
        return self


def request_model(decoder_positions: int) -> type[GenerateRequest]:
    """:class:`GenerateRequest` bounded by a loaded model's decoder, so that its schema and its
    422 messages state the real limits (the first decoder position holds the start token)."""
    limit = max_decode_tokens(decoder_positions)
    fields = GenerateRequest.model_fields
    return create_model(
        "GenerateRequest",
        __base__=GenerateRequest,
        __doc__=GenerateRequest.__doc__,
        max_new_tokens=(
            int,
            Field(default=min(32, limit), ge=1, le=limit, description=fields["max_new_tokens"].description),
        ),
        target_length=(
            int,
            Field(default=min(64, limit), ge=1, le=limit, description=fields["target_length"].description),
        ),
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Body is not UTF-8 JSON."},
    404: {"model": ErrorResponse, "description": "No such energy window."},
    409: {
        "model": ErrorResponse,
        "description": "An energy window of that name is already open, or an idle measurement runs.",
    },
    413: {"model": ErrorResponse, "description": "Body too large, or input over the largest bucket."},
    422: {
        "model": ErrorResponse,
        "description": "Fields missing, unknown, of the wrong type or out of range.",
    },
    500: {"model": ErrorResponse, "description": "The engine failed on this request's batch, or the server."},
    503: {"model": ErrorResponse, "description": "Warming up, queue full or shutting down; see Retry-After."},
}


#: Every endpoint can answer these; FastAPI's own 422 shape is replaced by :class:`ErrorResponse`.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {status: ERROR_RESPONSES[status] for status in (422, 500)}

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


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """A validation error as ``{"field", "problem"}`` items, without pydantic's union noise.

    An optional field fails as a union (its value, or null); the null branch's complaint and the
    branch tag in the location say nothing a client can use, so they are left out.
    """
    errors = exc.errors(include_url=False, include_input=False)
    optional = {error["loc"][0] for error in errors if error["type"] == "none_required" and error["loc"]}
    found = []
    for error in errors:
        loc = list(error["loc"])
        if error["type"] == "none_required":
            continue
        if loc and loc[0] in optional and len(loc) > 1:
            del loc[1]
        found.append({"field": ".".join(map(str, loc)) or "body", "problem": error["msg"]})
    return found
