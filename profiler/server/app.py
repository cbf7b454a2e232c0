"""The FastAPI app: `/v1/generate`, health, readiness, info, Prometheus metrics and energy windows.

Bodies are read and parsed here rather than by FastAPI so that every malformed input (bad UTF-8,
bad JSON, wrong fields) gets a 4xx JSON error that says what was wrong, never a 500. Every error,
FastAPI's own 404/405/422 included, has the one documented ``{"error": {...}}`` shape and is
counted in ``/metrics``.

Overload stays cheap: a full queue is refused before the body is read, tokenizing runs in worker
threads, and only one idle measurement runs at a time, so the event loop keeps answering
``/healthz`` and 503s while the engine is saturated.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, NamedTuple

import anyio
import orjson
import psutil  # type: ignore[import-untyped, unused-ignore]
from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from profiler import sse
from profiler.api import (
    Batching,
    EnergyInfo,
    EnergyShare,
    ErrorBody,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    IdleRequest,
    ServerInfo,
    Timings,
)
from profiler.artifact import ArtifactError
from profiler.attention_layout import GlobalAttention, query_tokens
from profiler.buckets import bucket_for, truncate_ids
from profiler.energy import IdleBaseline, WindowError
from profiler.energy.contention import ContentionError
from profiler.energy.timeline import Timeline
from profiler.energy.windows import OpenedWindow, OpenWindow, WindowResult
from profiler.engines.engine import Engine, Job, Outcome, TokenSink
from profiler.server.batcher import Batcher, QueueFull, Served, ShuttingDown
from profiler.server.energy import IdleBusy, ServerEnergy
from profiler.server.metrics import ServerMetrics
from profiler.server.schemas import (
    COMMON_ERRORS,
    ERROR_RESPONSES,
    problems,
    request_model,
)
from profiler.server.settings import ServeSettings
from profiler.server.streaming import Detokenizer, TokenStream
from profiler.server.tokenizer import add_tokenizer_route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


#: A window name as a path segment: letters, digits and ``_ . : @ -``, e.g. ``generate@2048``.
WindowName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:@-]{1,100}$", description="e.g. generate@2048")]
#: A time on the server's monotonic clock (the one its windows and timeline use).
Since = Annotated[float, Query(description="time.monotonic of the server")]
#: Whether a closed window's result lists each request's joules.
WithRequests = Annotated[bool, Query(description="Include each request's joules.")]
#: Worker threads that tokenize at once: a few long texts must not take every thread.
TOKENIZE_THREADS = 2
GENERATE_PATH = "/v1/generate"
QUEUE_FULL = "the queue is full ({} waiting); retry shortly."
RETRY = {"Retry-After": "1"}


def error(
    status: int, kind: str, message: str, details: list[Any] | None = None, **headers: str
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(type=kind, message=message, details=details or None))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers or None)


class BodyLimit:
    """ASGI middleware: answer 413 to bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int, count: Callable[[Response, int | None], Response]) -> None:
        self.app = app
        self.limit = limit
        self.count = count

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        response = error(
            413, "body_too_large", f"request body is over {self.limit} bytes; send a shorter input."
        )
        await self.count(response, None)(scope, receive, send)


class _TooLarge(Exception):
    pass


class Admission:
    """The outermost ASGI layer: a ``/v1/generate`` that nothing could take is refused here.

    Before FastAPI's own layers, routing, and reading the body, with a response built once: a
    503 then costs microseconds of the event loop, which under overload is what it has least of
    (measured: the full FastAPI path for each refusal kept the loop holding the GIL and starved
    the engine's thread).
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == GENERATE_PATH and scope["method"] == "POST":
            refusal = self.service.refusal()
            if refusal is not None:
                await self.service.metrics.count(refusal, None)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Tokens(NamedTuple):
    """A request's input as the engine will take it."""

    ids: list[int]
    truncated: bool
    #: Leading tokens with global attention.
    global_tokens: int


class ApiError(Exception):
    """A request that gets a 4xx/5xx JSON answer; raised anywhere in the request path."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        details: list[Any] | None = None,
        retry_after: bool = False,
    ) -> None:
        super().__init__(message)
        self.response = error(status, kind, message, details, **(RETRY if retry_after else {}))


class Admitted(NamedTuple):
    """A request parsed, tokenized and queued: what its answer is built from."""

    query: GenerateRequest
    request_id: str
    tokens: Tokens
    #: The smallest bucket that holds the input.
    bucket: int
    global_attention: GlobalAttention
    tokenize_ms: float
    #: When the request arrived (``time.perf_counter``).
    started: float
    future: asyncio.Future[Served[tuple[Outcome, EnergyShare]]]
    #: The token stream of a ``stream: true`` request; None otherwise.
    stream: TokenStream | None


class Service:
    """The request path of one loaded engine: parse, tokenize, batch, measure, answer."""

    def __init__(self, engine: Engine, tokenizer: Any, settings: ServeSettings) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.settings = settings
        #: Whether the model has global attention (LED), and what a request gets when it does not say.
        self.has_global = engine.graphs.layout.global_attention
        self.global_attention: GlobalAttention = settings.global_attention or (
            "first" if self.has_global else "none"
        )
        if self.global_attention != "none" and not self.has_global:
            raise ArtifactError(
                f"--global-attention {self.global_attention}: {engine.model_type} has no global "
                "attention; leave the option out."
            )
        #: The request body type, bounded by this model's decoder.
        self.request_type = request_model(engine.decoder.max_target_positions)
        #: Requests admitted and being parsed or tokenized, not yet queued (event loop only).
        self.preparing = 0
        #: Streamed requests queued or running, by request id (read by the batch thread).
        self.streams: dict[str, TokenStream] = {}
        self.tokenizing = anyio.CapacityLimiter(TOKENIZE_THREADS)
        #: Built once: refusing is the hot path under overload.
        self.refusals = {
            "warming_up": error(503, "warming_up", "the model is still warming up; retry.", None, **RETRY),
            "queue_full": error(503, "queue_full", QUEUE_FULL.format(settings.max_queue), None, **RETRY),
        }
        self.metrics = ServerMetrics()
        self.energy = ServerEnergy()
        self.batcher: Batcher[tuple[Outcome, EnergyShare]] = Batcher(
            self.run_batch,
            settings.max_batch_size,
            settings.max_wait_ms,
            settings.max_queue,
            self.metrics.observe_batch,
            prepare=self._warm_up,
            on_ready=self._ready,
        )
        self.metrics.track_queue(self.batcher.depth)
        self.ready = False
        #: Set once warm-up has run every bucket (stays set through shutdown, unlike ``ready``).
        self.warmed = threading.Event()
        #: How long warm-up took, and when it ended (``time.monotonic``); 0 and None until then.
        self.warm_up_s = 0.0
        self.ready_at: float | None = None
        #: Resident memory after warm-up (ServerInfo.resident_bytes); None until then.
        self.resident_bytes: int | None = None
        self.stopping = threading.Event()

    def serve_forever(self) -> None:
        """Warm up every bucket, report ready, then run batches on this thread until :meth:`stop`."""
        if not self.stopping.is_set():
            self.batcher.run()

    def _warm_up(self) -> None:
        started = time.perf_counter()
        self.engine.warm_up()
        self.warm_up_s = time.perf_counter() - started

    def _ready(self) -> None:
        self.resident_bytes = psutil.Process().memory_info().rss
        if not self.stopping.is_set():  # a stop during warm-up: it never becomes ready
            self.ready_at = time.monotonic()
            self.ready = True
        self.warmed.set()

    def in_flight(self) -> int:
        """Requests admitted and not yet answered by the engine: being parsed or tokenized,
        queued, or in the running batch."""
        return self.preparing + self.batcher.depth()

    def run_batch(self, jobs: list[Job], request_ids: list[str]) -> list[tuple[Outcome, EnergyShare]]:
        """One engine batch inside its own energy window; streamed requests get their tokens as
        the decoder makes them."""
        streams = [self.streams.get(request_id) for request_id in request_ids]
        on_token: TokenSink | None = None
        if any(streams):

            def on_token(row: int, index: int, token: int) -> None:
                stream = streams[row]
                if stream is not None:
                    stream.push(index, token)

        return self.energy.run_batch(lambda: self.engine.run(jobs, on_token), request_ids)

    def stop(self) -> None:
        """Refuse new work, finish what is queued, stop batching (safe to call more than once)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.ready = False
        self.batcher.close()
        self.energy.close()

    def parse(self, body: bytes) -> GenerateRequest:
        try:
            parsed = orjson.loads(body)  # rejects invalid UTF-8 as well as invalid JSON
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "malformed_json", f"body is not UTF-8 JSON: {exc}") from exc
        try:
            return self.request_type.model_validate(parsed)
        except ValidationError as exc:
            raise invalid_request(problems(exc)) from exc

    def refusal(self) -> Response | None:
        """The 503 for a request that nothing could take now, or None to let it in."""
        if not self.ready:
            return self.refusals["warming_up"]
        if self.preparing + self.batcher.waiting >= self.settings.max_queue:
            return self.refusals["queue_full"]
        return None

    async def token_ids(self, query: GenerateRequest, global_attention: GlobalAttention) -> Tokens:
        """The ids to run, whether they were truncated to the largest bucket, and how many leading
        tokens attend globally."""
        global_tokens = {"none": 0, "first": 1, "query": 0}[global_attention]
        if query.text is not None:
            # In a worker thread: a long text takes seconds to tokenize, and the fast tokenizer
            # releases the GIL while it works, so the loop goes on serving.
            ids, global_tokens = await anyio.to_thread.run_sync(
                self._tokenize, query.text, global_attention, limiter=self.tokenizing
            )
        elif global_attention == "query":
            raise ApiError(
                422,
                "invalid_request",
                "global_attention: query needs `text` (its tokens before the first blank line are "
                "the query); send text, or global_attention first or none.",
            )
        else:
            ids = list(query.input_ids or [])
            vocab = self.engine.decoder.vocab_size
            bad = [token for token in ids if not 0 <= token < vocab]
            if bad:
                message = (
                    f"input_ids has {len(bad)} id(s) outside the vocabulary [0, {vocab}), e.g. {bad[0]}."
                )
                raise ApiError(422, "invalid_request", message)
        limit = self.engine.max_length
        if len(ids) <= limit:
            return Tokens(ids, False, global_tokens)
        if not self.settings.truncate:
            message = (
                f"input is {len(ids)} tokens, over the largest bucket of {limit}; "
                "send a shorter input or start the server with --truncate."
            )
            raise ApiError(413, "input_too_long", message)
        return Tokens(truncate_ids(ids, limit), True, min(global_tokens, limit))

    def _tokenize(self, text: str, global_attention: GlobalAttention) -> tuple[list[int], int]:
        """Ids, and the global token count (``query``: the tokens that start before the first blank
        line, the leading special token among them)."""
        if global_attention != "query":
            ids: list[int] = self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
            return ids, 1 if global_attention == "first" else 0
        encoded = self.tokenizer(text, add_special_tokens=True, verbose=False, return_offsets_mapping=True)
        count = query_tokens(text, encoded["offset_mapping"])
        if count is None:
            raise ApiError(
                422,
                "invalid_request",
                "global_attention: query found no blank line in `text`; send `query\\n\\ndocument` "
                "(as SCROLLS does), or global_attention first or none.",
            )
        return encoded["input_ids"], count

    def resolve_global_attention(self, query: GenerateRequest) -> GlobalAttention:
        """The request's own choice, else the server's; refused for a model without global attention."""
        chosen = query.global_attention or self.global_attention
        if chosen != "none" and not self.has_global:
            raise ApiError(
                422,
                "invalid_request",
                f"global_attention: {self.engine.model_type} has no global attention; leave the field "
                "out or send none.",
            )
        return chosen

    async def generate(self, request: Request, started: float) -> Response:
        admitted = await self.admit(request, started)
        if admitted.stream is not None:
            return self.streamed(admitted, admitted.stream)
        try:
            served = await admitted.future
        except Exception as exc:  # the engine failed this batch; the server lives on
            raise ApiError(500, "engine_error", engine_failure(exc)) from exc
        payload = self.answer(admitted, served)
        timings = payload.timings
        response = Response(
            orjson.dumps(payload.model_dump()),
            media_type="application/json",
            headers={"X-Request-ID": admitted.request_id},
        )
        response.headers["Server-Timing"] = ", ".join(
            f"{name.removesuffix('_ms')};dur={value:.3f}" for name, value in timings.model_dump().items()
        )
        return self.metrics.count(response, payload.bucket)

    async def admit(self, request: Request, started: float) -> Admitted:
        """Parse, tokenize and queue a request; every refusal is an :class:`ApiError` (a JSON
        answer with its status, streamed or not)."""
        self.preparing += 1
        try:
            query = self.parse(await request.body())
            if query.stream and self.engine.decoding.num_beams > 1:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"stream: this server decodes with beam search (num_beams="
                    f"{self.engine.decoding.num_beams}), which settles tokens only at the end; leave "
                    "stream out, or serve with --decoding num_beams=1.",
                )
            global_attention = self.resolve_global_attention(query)
            tokenize_started = time.perf_counter()
            tokens = await self.token_ids(query, global_attention)
            tokenize_ms = (time.perf_counter() - tokenize_started) * 1000
            job = Job(tokens.ids, query.mode, query.max_new_tokens, query.target_length, tokens.global_tokens)
            request_id = uuid.uuid4().hex
            bucket = bucket_for(self.engine.buckets, len(tokens.ids)) or self.engine.max_length
            stream = TokenStream() if query.stream else None
            if stream is not None:  # before submit: the batch may start at once
                self.streams[request_id] = stream
            try:
                future = self.batcher.submit(job, bucket, request_id)
            except QueueFull as exc:
                self.streams.pop(request_id, None)
                raise ApiError(
                    503, "queue_full", QUEUE_FULL.format(self.settings.max_queue), retry_after=True
                ) from exc
            except ShuttingDown as exc:
                self.streams.pop(request_id, None)
                raise ApiError(503, "shutting_down", "the server is shutting down.") from exc
        finally:
            self.preparing -= 1
        return Admitted(
            query, request_id, tokens, bucket, global_attention, tokenize_ms, started, future, stream
        )

    def answer(self, admitted: Admitted, served: Served[tuple[Outcome, EnergyShare]]) -> GenerateResponse:
        """The answer document of a finished request; its latency goes to the metrics."""
        outcome, energy = served.result
        total_ms = (time.perf_counter() - admitted.started) * 1000
        timings = Timings(
            queue_ms=served.queue_ms,
            tokenize_ms=admitted.tokenize_ms,
            encode_ms=outcome.encode_ms,
            first_step_ms=outcome.first_step_ms,
            decode_ms=outcome.decode_ms,
            total_ms=total_ms,
        )
        query, tokens = admitted.query, admitted.tokens
        decoded = self.tokenizer.decode(outcome.output_ids, skip_special_tokens=True)
        self.metrics.observe_answer(
            outcome.bucket, total_ms / 1000, len(tokens.ids), len(outcome.output_ids), energy
        )
        return GenerateResponse(
            request_id=admitted.request_id,
            text=decoded if query.mode == "generate" else "",
            output_ids=outcome.output_ids,
            input_tokens=len(tokens.ids),
            truncated=tokens.truncated,
            bucket=outcome.bucket,
            encoded_tokens=outcome.padded_length,
            global_attention=admitted.global_attention,
            global_tokens=tokens.global_tokens,
            batch_size=outcome.batch_size,
            mode=query.mode,
            timings=timings,
            energy=energy,
        )

    def streamed(self, admitted: Admitted, stream: TokenStream) -> Response:
        """A ``text/event-stream`` answer: each token as the engine makes it, then the answer (or
        an ``error`` event when the engine fails once the stream has begun)."""
        future, request_id = admitted.future, admitted.request_id

        def ended(_: object) -> None:
            self.streams.pop(request_id, None)
            stream.end()

        def failure() -> ErrorResponse | None:
            exc = future.exception()
            if exc is None:
                return None
            return ErrorResponse(error=ErrorBody(type="engine_error", message=engine_failure(exc)))

        future.add_done_callback(ended)
        events = stream.events(
            Detokenizer(self.tokenizer), lambda: self.answer(admitted, future.result()), failure
        )
        response = StreamingResponse(
            events,
            media_type=sse.MEDIA_TYPE,
            headers={"X-Request-ID": request_id, "Cache-Control": "no-cache"},
        )
        return self.metrics.count(response, admitted.bucket)


def engine_failure(exc: BaseException) -> str:
    """What an engine error's answer says: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


def invalid_request(found: list[dict[str, str]]) -> ApiError:
    summary = "; ".join(f"{item['field']}: {item['problem']}" for item in found)
    return ApiError(422, "invalid_request", summary, list(found))


def add_energy_routes(app: FastAPI, energy: ServerEnergy) -> None:
    """Named energy windows, idle baseline and power timeline, for a load generator anywhere."""

    @app.get("/v1/energy", summary="Energy source, domains, open windows, idle baseline.")
    async def energy_info() -> EnergyInfo:
        return energy.describe()

    @app.post(
        "/v1/energy/windows/{name}",
        status_code=201,
        summary="Open a named energy window (the body may name the load generator's process).",
        responses={409: ERROR_RESPONSES[409], 422: ERROR_RESPONSES[422]},
    )
    async def open_window(name: WindowName, body: OpenWindow | None = None) -> OpenedWindow:
        try:
            return energy.begin(name, body)
        except WindowError as exc:
            raise ApiError(409, "window_open", str(exc)) from exc
        except ContentionError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from exc

    @app.post(
        "/v1/energy/windows/{name}/end",
        summary="Close a window: its energy, queries, J/query.",
        responses={404: ERROR_RESPONSES[404]},
    )
    async def close_window(
        name: WindowName,
        requests: WithRequests = False,
    ) -> WindowResult:
        try:
            return await run_in_threadpool(energy.end, name, requests)
        except WindowError as exc:
            raise ApiError(404, "no_such_window", str(exc)) from exc

    @app.get(
        "/v1/energy/windows/{name}",
        summary="A closed window's result, again.",
        responses={404: ERROR_RESPONSES[404]},
    )
    async def read_window(name: WindowName) -> WindowResult:
        result = energy.window(name)
        if result is None:
            raise ApiError(
                404, "no_such_window", f"no closed energy window {name!r}; open and close it first."
            )
        return result

    @app.post(
        "/v1/energy/idle",
        summary="Measure idle power now (send no load meanwhile); one measurement at a time.",
        responses={409: ERROR_RESPONSES[409]},
    )
    async def idle(body: IdleRequest | None = None) -> IdleBaseline:
        seconds = (body or IdleRequest()).seconds
        try:
            baseline = await run_in_threadpool(energy.measure_idle, seconds)
        except IdleBusy as exc:
            raise ApiError(409, "idle_running", str(exc)) from exc
        return baseline

    @app.get("/v1/energy/timeline", summary="Power timeline samples after a monotonic time.")
    async def timeline(
        since: Since = 0.0,
    ) -> Timeline:
        return energy.timeline_since(since)


def add_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Every error in the documented shape, counted, whoever raised it."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return metrics.count(exc.response, None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            kind, message = "not_found", f"no endpoint at {request.url.path}; the API is listed at /docs."
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "another method")
            kind = "method_not_allowed"
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}."
        else:
            kind, message = "http_error", str(exc.detail)
        return metrics.count(error(exc.status_code, kind, message, None, **(exc.headers or {})), None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        found = [
            {"field": ".".join(map(str, item["loc"])) or "request", "problem": item["msg"]}
            for item in exc.errors()
        ]
        if any(item.get("type") == "json_invalid" for item in exc.errors()):
            summary = "; ".join(item["problem"] for item in found)
            return metrics.count(error(400, "malformed_json", f"body is not UTF-8 JSON: {summary}"), None)
        return metrics.count(invalid_request(found).response, None)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        # Starlette logs the traceback to the server's log after this answer is sent.
        message = f"the server failed on this request ({type(exc).__name__}); its log has the details."
        return metrics.count(error(500, "internal_error", message), None)


def create_app(engine: Engine, tokenizer: Any, settings: ServeSettings) -> FastAPI:
    """The app for one loaded engine; warm-up runs in the background until ``/readyz`` is 200."""
    service = Service(engine, tokenizer, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield  # the batches run on the main thread (see profiler.server.run); stop them here
        await run_in_threadpool(service.stop)

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from this server (the package
    # ships them), not from a CDN, so they work on a machine without internet. validatorUrl None:
    # Swagger UI would otherwise fetch a validity badge from swagger.io.
    app = FastAPIOffline(
        title="long-context-profiler",
        summary="Serves one exported (or eager) seq2seq model for latency, throughput and energy profiling.",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, count=service.metrics.count)
    add_error_handlers(app, service.metrics)

    @app.get("/healthz", summary="The process is up.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="The model is loaded and every bucket warmed up.",
        responses={503: ERROR_RESPONSES[503]},
    )
    async def readyz() -> dict[str, str]:
        if not service.ready:
            raise ApiError(503, "warming_up", "the model is still warming up.", retry_after=True)
        return {"status": "ready"}

    @app.get("/v1/info", summary="Manifest, engine, device, buckets and batching settings.")
    async def info() -> ServerInfo:
        return ServerInfo(
            engine=engine.kind,
            device=engine.device,  # where it really runs, not merely what was asked for
            providers=engine.providers,
            source=str(engine.source),
            model_type=engine.model_type,
            buckets=engine.buckets,
            layout=engine.graphs.layout,
            global_attention=service.global_attention,
            decoding=engine.decoding,
            truncate=settings.truncate,
            batching=Batching.model_validate(settings.model_dump(include=set(Batching.model_fields))),
            max_body_bytes=settings.max_body_bytes,
            precision=engine.precision,
            manifest=engine.manifest,
            new_weights=engine.new_weights,
            resident_bytes=service.resident_bytes,
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics.",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        payload, content_type = service.metrics.render()
        return Response(payload, media_type=content_type)

    add_energy_routes(app, service.energy)
    add_tokenizer_route(app, tokenizer)

    @app.post(
        GENERATE_PATH,
        summary="Run one query through the model.",
        response_model=GenerateResponse,
        responses={
            200: {
                "description": "The answer; with `stream: true`, server-sent events: `token` "
                "(a TokenEvent) per generated token, then `done` (this answer) or `error`.",
                "content": {sse.MEDIA_TYPE: {"schema": sse.EVENT_SCHEMA}},
            },
            **ERROR_RESPONSES,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": service.request_type.model_json_schema()}},
            }
        },
    )
    async def generate(request: Request) -> Response:
        return await service.generate(request, time.perf_counter())

    return app
