"""The server's control endpoints, over a mock transport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from profiler.client import ServerCallError, ServerClient

from .fakes import INFO, window_result


def control(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[ServerClient, list[str]]:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        query = f"?{request.url.query.decode()}" if request.url.query else ""
        seen.append(f"{request.method} {request.url.path}{query}")
        return handler(request)

    client = httpx.Client(base_url="http://server", transport=httpx.MockTransport(record))
    return ServerClient("http://server", client), seen


def test_a_window_left_open_is_closed_and_reopened() -> None:
    state = {"open": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/end"):
            state["open"] = False
            return httpx.Response(200, json=window_result("generate@1024", completed=0).model_dump())
        if state["open"]:
            return httpx.Response(409, json={"error": {"type": "window_open", "message": "open"}})
        state["open"] = True
        return httpx.Response(201, json={"name": "generate@1024", "source": "estimate"})

    server, seen = control(handler)
    server.open_window("generate@1024")
    assert seen == [
        "POST /v1/energy/windows/generate@1024",
        "POST /v1/energy/windows/generate@1024/end",
        "POST /v1/energy/windows/generate@1024",
    ]
    assert server.close_window("generate@1024").completed == 0
    assert seen[-1] == "POST /v1/energy/windows/generate@1024/end?requests=false"


def test_info_is_the_servers_document_and_errors_say_where() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(200, json=INFO.model_dump(mode="json"))
        return httpx.Response(404, json={"error": {"type": "no_such_window", "message": "none"}})

    server, _ = control(handler)
    assert server.info() == INFO
    with pytest.raises(ServerCallError, match=r"POST /v1/energy/windows/x/end: HTTP 404"):
        server.close_window("x")


def test_an_info_of_another_shape_names_its_fields() -> None:
    body = {**INFO.model_dump(mode="json"), "buckets": ["1024"], "gpu": True}
    server, _ = control(lambda request: httpx.Response(200, json=body))
    with pytest.raises(
        ServerCallError, match=r"GET /v1/info: the answer is not a ServerInfo \(buckets.0: .*; gpu: Extra"
    ):
        server.info()


def test_an_unreachable_server_is_a_control_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    server, _ = control(handler)
    with pytest.raises(ServerCallError, match="ConnectError"):
        server.energy()


def test_an_answer_that_is_not_a_window_result_names_the_field() -> None:
    body = window_result("generate@1024", completed=4).model_dump()
    body["per_query"]["net_clamped"] = False  # a field no server of this version writes
    server, _ = control(lambda request: httpx.Response(200, json=body))
    with pytest.raises(ServerCallError, match=r"not a WindowResult \(per_query.net_clamped: Extra inputs"):
        server.close_window("generate@1024")
