"""The server's control endpoints, over a mock transport."""

from __future__ import annotations

import httpx
import pytest

from profiler.loadgen.control import ControlError, ServerControl


def control(handler) -> tuple[ServerControl, list[str]]:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        query = f"?{request.url.query.decode()}" if request.url.query else ""
        seen.append(f"{request.method} {request.url.path}{query}")
        return handler(request)  # type: ignore[no-any-return]

    client = httpx.Client(base_url="http://server", transport=httpx.MockTransport(record))
    return ServerControl("http://server", client), seen


def test_a_window_left_open_is_closed_and_reopened() -> None:
    state = {"open": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/end"):
            state["open"] = False
            return httpx.Response(200, json={"measurement": {}, "completed": 0, "per_query": None})
        if state["open"]:
            return httpx.Response(409, json={"error": {"type": "window_open"}})
        state["open"] = True
        return httpx.Response(201, json={"name": "generate@1024", "open": True})

    server, seen = control(handler)
    server.open_window("generate@1024")
    assert seen == [
        "POST /v1/energy/windows/generate@1024",
        "POST /v1/energy/windows/generate@1024/end",
        "POST /v1/energy/windows/generate@1024",
    ]
    assert server.close_window("generate@1024")["completed"] == 0
    assert seen[-1] == "POST /v1/energy/windows/generate@1024/end?requests=false"


def test_info_drops_the_manifest_and_errors_say_where() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(200, json={"buckets": [1024], "manifest": {"big": True}})
        return httpx.Response(404, json={"error": {"type": "no_such_window"}})

    server, _ = control(handler)
    assert server.info() == {"buckets": [1024]}
    with pytest.raises(ControlError, match=r"POST /v1/energy/windows/x/end: HTTP 404"):
        server.close_window("x")


def test_an_unreachable_server_is_a_control_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    server, _ = control(handler)
    with pytest.raises(ControlError, match="ConnectError"):
        server.energy()
