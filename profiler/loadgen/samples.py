"""Raw per-request samples: made from each answer, shipped from workers, gathered per stage.

Locust rounds response times to about two significant digits in its own statistics, so every
request is also kept here, unrounded, with what the server said about it (its stage timings, its
bucket and batch, its share of energy). Workers send their samples to the master in messages of
:func:`to_message` shape; :class:`StageCollector` gathers one stage's samples from every node and
knows when each node has sent its last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from profiler.api import ErrorResponse, GenerateResponse, Timings
from profiler.jsonl import field_errors
from profiler.loadgen.schedule import Timing
from profiler.sse import Event

#: The server's stage timings every successful answer carries, in milliseconds.
TIMING_KEYS = tuple(Timings.model_fields)
#: Longest failure reason kept (exception texts can hold whole bodies).
MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Sample:
    """One request, as the load generator saw it and as the server described it.

    Attributes:
        stage: index of the stage the request was sent in.
        ok: a 2xx answer with a well-formed body. A bucket other than the stage's length is
            still a success; ``bucket`` records where it landed.
        latency_ms: see :class:`~profiler.loadgen.schedule.Timing`; ``service_ms`` and ``lag_ms`` too.
        sent_wall_s: when it was sent (``time.time``).
        status: the HTTP status, or None when no answer came (refused, reset, timed out).
        reason: why it failed (``HTTP 503 queue_full``, ``ConnectionRefusedError``); None if ok.
        response_bytes: size of the answer's body.
        timings: the server's ``timings`` (ms), on success.
        energy_j / energy_source: the request's share of its batch's joules and where they came from.
        ttft_ms: a streamed answer's first token event, from the same start as ``latency_ms``;
            None when not streamed.
        tpot_ms: a streamed answer's time per output token after the first: (last token event -
            first) / (tokens - 1); None when not streamed or for a single token.
    """

    stage: int
    ok: bool
    latency_ms: float
    service_ms: float
    lag_ms: float
    sent_wall_s: float
    status: int | None
    reason: str | None = None
    response_bytes: int = 0
    bucket: int | None = None
    batch_size: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    energy_j: float | None = None
    energy_source: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """A plain dict (msgpack and JSON safe) for a worker's message to the master."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Sample:
        """The inverse of :meth:`to_wire` (unknown keys from a newer worker are ignored)."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _error_type(body: bytes | str) -> str | None:
    """The ``type`` of the server's JSON error body, or None if it is not one."""
    try:
        return ErrorResponse.model_validate_json(body).error.type
    except ValidationError:
        return None


def error_reason(status: int, body: bytes) -> str:
    """``HTTP 503 queue_full`` from the server's JSON error body, or the status alone."""
    kind = _error_type(body)
    return f"HTTP {status}" if kind is None else f"HTTP {status} {kind}"


def from_answer(stage: int, status: int, body: bytes, timing: Timing, sent_wall_s: float) -> Sample:
    """A sample from an HTTP answer: success with the server's figures, or failure with a reason."""
    base: dict[str, Any] = {
        "stage": stage,
        "latency_ms": timing.latency_ms,
        "service_ms": timing.service_ms,
        "lag_ms": timing.lag_ms,
        "sent_wall_s": sent_wall_s,
        "status": status,
        "response_bytes": len(body),
    }
    if not 200 <= status < 300:
        return Sample(ok=False, reason=error_reason(status, body), **base)
    try:
        answer = GenerateResponse.model_validate_json(body)
    except ValidationError as exc:
        return Sample(ok=False, reason=_clip(f"malformed answer: {field_errors(exc)}"), **base)
    return _answered(answer, base)


def _answered(answer: GenerateResponse, base: dict[str, Any]) -> Sample:
    return Sample(
        ok=True,
        bucket=answer.bucket,
        batch_size=answer.batch_size,
        input_tokens=answer.input_tokens,
        output_tokens=len(answer.output_ids),
        truncated=answer.truncated,
        timings=answer.timings.model_dump(),
        energy_j=answer.energy.joules,
        energy_source=answer.energy.source,
        **base,
    )


def from_stream(
    stage: int,
    events: Sequence[tuple[float, Event]],
    response_bytes: int,
    timing: Timing,
    sent_wall_s: float,
) -> Sample:
    """A sample from a streamed 200 answer: its events, each with when it arrived (ms from the
    request's start, as latency is counted). It succeeded if it ended with ``done`` after one
    ``token`` event per output token."""
    base: dict[str, Any] = {
        "stage": stage,
        "latency_ms": timing.latency_ms,
        "service_ms": timing.service_ms,
        "lag_ms": timing.lag_ms,
        "sent_wall_s": sent_wall_s,
        "status": 200,
        "response_bytes": response_bytes,
    }
    last = events[-1][1] if events else None
    if last is None or last.name not in ("done", "error"):
        return Sample(ok=False, reason="stream ended without its done event", **base)
    if last.name == "error":
        return Sample(ok=False, reason=f"stream error {_error_type(last.data) or 'unknown'}", **base)
    try:
        answer = GenerateResponse.model_validate_json(last.data)
    except ValidationError as exc:
        return Sample(ok=False, reason=_clip(f"malformed answer: {field_errors(exc)}"), **base)
    token_ms = [at for at, event in events if event.name == "token"]
    if len(token_ms) != len(answer.output_ids):
        reason = f"malformed stream: {len(token_ms)} token events for {len(answer.output_ids)} output ids"
        return Sample(ok=False, reason=reason, **base)
    if token_ms:
        base["ttft_ms"] = token_ms[0]
        if len(token_ms) > 1:
            base["tpot_ms"] = (token_ms[-1] - token_ms[0]) / (len(token_ms) - 1)
    return _answered(answer, base)


def from_error(stage: int, error: BaseException, timing: Timing, sent_wall_s: float) -> Sample:
    """A sample for a request that got no HTTP answer (connection refused or reset, timeout)."""
    text = str(error)
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return Sample(
        stage=stage,
        ok=False,
        latency_ms=timing.latency_ms,
        service_ms=timing.service_ms,
        lag_ms=timing.lag_ms,
        sent_wall_s=sent_wall_s,
        status=None,
        reason=_clip(reason),
    )


def to_message(
    stage: int, samples: Iterable[Sample], final: bool, unsent: int = 0, run: str = ""
) -> dict[str, Any]:
    """A worker's ``loadgen_samples`` message: some samples of one stage of run ``run``; ``final``
    if the last, then with the open-loop arrivals that process never sent."""
    return {
        "run": run,
        "stage": stage,
        "final": final,
        "unsent": unsent,
        "samples": [sample.to_wire() for sample in samples],
    }


class StageCollector:
    """One stage's samples from every node, and which nodes have sent their last."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.nodes: Counter[str] = Counter()
        self.finals: set[str] = set()
        self.unsent = 0

    def add(self, node: str, message: Mapping[str, Any]) -> None:
        """Take one ``loadgen_samples`` message from ``node``."""
        batch = [Sample.from_wire(item) for item in message.get("samples", [])]
        self.samples.extend(batch)
        self.nodes[node] += len(batch)
        self.unsent += int(message.get("unsent", 0))
        if message.get("final"):
            self.finals.add(node)

    def complete(self, expected: Iterable[str]) -> bool:
        """Whether every expected node has sent its final message for this stage."""
        return set(expected) <= self.finals
