"""The one client of `profiler serve`'s API, for the sweep, `profiler eval`, the load generator's
coordinator and the benchmarks; the load itself goes through locust's users.

Every answer is checked as the typed document the server writes (:mod:`profiler.api`, the
energy documents), and every failure is a :class:`ServerCallError` naming the endpoint and the
server's answer. Under locust the process is gevent-patched, so these blocking calls yield to
the users and heartbeats while they wait.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from profiler.api import (
    EnergyInfo,
    GenerateRequest,
    GenerateResponse,
    IdleRequest,
    ServerInfo,
    TokenizerFiles,
)
from profiler.attention_layout import GlobalAttention
from profiler.documents import Document
from profiler.energy.baseline import IdleBaseline
from profiler.energy.contention import machine_id
from profiler.energy.timeline import Timeline, TimelineSample
from profiler.energy.windows import OpenedWindow, OpenWindow, WindowResult
from profiler.errors import ProfilerError

D = TypeVar("D", bound=Document)

logger = logging.getLogger(__name__)


class ServerCallError(ProfilerError):
    """A call that failed; the message names the endpoint and the server's answer."""


class ServerClient:
    """Calls to one server's endpoints.

    Args:
        host: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        client: an httpx client to use (tests pass one with a mock transport).
        timeout: seconds per call, on top of any idle measurement's own length.
    """

    def __init__(self, host: str, client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.client = client or httpx.Client(base_url=self.host, timeout=timeout)

    def _call(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, timeout=timeout or self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerCallError(f"{method} {self.host}{path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ServerCallError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerCallError(f"{what}: the answer is not JSON ({exc}).") from exc
        if not isinstance(body, dict):
            raise ServerCallError(f"{what}: expected a JSON object, got {type(body).__name__}.")
        return body

    @classmethod
    def _document(cls, kind: type[D], response: httpx.Response, what: str) -> D:
        """The answer as its typed document; a server of another version is named as such."""
        body = cls._json(response, what)
        try:
            return kind.model_validate(body)
        except ValidationError as exc:
            found = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ServerCallError(
                f"{what}: the answer is not a {kind.__name__} ({found}); is the server the same "
                "profiler version?"
            ) from exc

    def ready(self) -> bool:
        """``GET /readyz`` is 200: the model is loaded and warmed up (False while it is not, or
        while nothing listens yet)."""
        try:
            return self._call("GET", "/readyz").status_code == 200
        except ServerCallError:
            return False

    def info(self) -> ServerInfo:
        """``GET /v1/info``: engine, device, buckets, batching and the artifact's manifest."""
        return self._document(ServerInfo, self._call("GET", "/v1/info"), "GET /v1/info")

    def generate(
        self, input_ids: list[int], max_new_tokens: int, global_attention: GlobalAttention | None = None
    ) -> GenerateResponse:
        """``POST /v1/generate`` in generate mode: the text, the bucket and batch, the timings
        (``global_attention``: LED's, else the server's default)."""
        body = GenerateRequest(input_ids=input_ids, max_new_tokens=max_new_tokens)
        if global_attention is not None:  # absent, not null: the server's default applies
            body.global_attention = global_attention
        response = self._call("POST", "/v1/generate", json=body.model_dump(exclude_unset=True))
        return self._document(GenerateResponse, response, "POST /v1/generate")

    def tokenizer(self) -> TokenizerFiles:
        """``GET /v1/tokenizer``: the served model's tokenizer files."""
        response = self._call("GET", "/v1/tokenizer")
        if response.status_code == 404:
            raise ServerCallError(
                f"GET {self.host}/v1/tokenizer: not found; the server is an older profiler that does not "
                "serve its tokenizer."
            )
        return self._document(TokenizerFiles, response, "GET /v1/tokenizer")

    def timeline(self, since: float = 0.0) -> list[TimelineSample]:
        """``GET /v1/energy/timeline``: power samples after ``since`` (the server's monotonic clock)."""
        response = self._call("GET", "/v1/energy/timeline", params={"since": since})
        return self._document(Timeline, response, "GET /v1/energy/timeline").samples

    def energy(self) -> EnergyInfo:
        """``GET /v1/energy``: the source, whether it is an estimate, the method, the idle baseline."""
        return self._document(EnergyInfo, self._call("GET", "/v1/energy"), "GET /v1/energy")

    def measure_idle(self, seconds: float) -> IdleBaseline:
        """``POST /v1/energy/idle``: blocks for ``seconds`` while the server measures idle power."""
        response = self._call(
            "POST",
            "/v1/energy/idle",
            timeout=seconds + self.timeout,
            json=IdleRequest(seconds=seconds).model_dump(),
        )
        return self._document(IdleBaseline, response, "POST /v1/energy/idle")

    def open_window(self, name: str, load_generator_pid: int | None = None) -> None:
        """``POST /v1/energy/windows/{name}``; a window of that name left open by an earlier,
        interrupted run is closed first (and its figures dropped). ``load_generator_pid``: the
        load generator's root process, which the server counts apart if it runs on its machine."""
        path = f"/v1/energy/windows/{name}"
        body = None
        if load_generator_pid is not None:
            body = OpenWindow(
                load_generator_pid=load_generator_pid, load_generator_machine=machine_id()
            ).model_dump()
        response = self._call("POST", path, json=body)
        if response.status_code == 409:
            logger.warning("energy window %r was still open (an interrupted run?); reopening it.", name)
            self._call("POST", f"{path}/end")
            response = self._call("POST", path, json=body)
        self._document(OpenedWindow, response, f"POST {path}")

    def close_window(self, name: str) -> WindowResult:
        """``POST /v1/energy/windows/{name}/end?requests=false``: the window's measurement and J/query."""
        path = f"/v1/energy/windows/{name}/end"
        response = self._call("POST", path, params={"requests": "false"})
        return self._document(WindowResult, response, f"POST {path}")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
