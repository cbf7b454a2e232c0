"""Schemathesis against a live server's own OpenAPI: no request the schema allows (or nearly
allows) may get a 5xx, and every answer must match what the schema documents for its status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from profiler.server.launch import ServerProcess, start_server

pytestmark = pytest.mark.integration

#: Longest idle measurement a generated case may ask for: the schema allows 600 s.
IDLE_SECONDS_CAP = 0.2


@pytest.fixture(scope="module")
def live(served_models: dict[str, Path]) -> Iterator[ServerProcess]:
    server = start_server(served_models["led/onnx"], "--max-wait-ms", "0")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def api_schema(live: ServerProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_schema(case: schemathesis.Case[Any], live: ServerProcess) -> None:
    if case.path == "/v1/energy/idle" and isinstance(case.body, dict):
        seconds = case.body.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > IDLE_SECONDS_CAP:
            case.body["seconds"] = IDLE_SECONDS_CAP
    case.call_and_validate(
        base_url=live.url, checks=[not_a_server_error, response_schema_conformance], timeout=120
    )


def test_a_streamed_answer_honours_its_schema(
    api_schema: schemathesis.BaseSchema, live: ServerProcess
) -> None:
    """Every server-sent event of a streamed answer matches the documented event schema (the fuzz
    above draws ``stream: true`` only now and then)."""
    operation = api_schema["/v1/generate"]["POST"]
    case = operation.Case(body={"text": "Where is it?\n\nThe office is in Varn.", "stream": True})
    response = case.call(base_url=live.url, timeout=120)
    assert response.headers["content-type"][0].startswith("text/event-stream")
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
