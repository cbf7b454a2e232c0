"""The server's side of the HTTP API's bodies: the request body bounded by the loaded model, the
error answers as the OpenAPI lists them, and validation errors as a client reads them. The bodies
themselves live in :mod:`profiler.api`, shared with the client and the load generator."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, create_model

from profiler.api import ErrorResponse, GenerateRequest
from profiler.modelinfo import max_decode_tokens


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
