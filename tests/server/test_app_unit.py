"""The real app from ``create_app`` driven in process through httpx's ASGI transport: no uvicorn, no
subprocess. The engine is the tiny LED checkpoint, eager, and its batch worker runs on a thread of
the test (``profiler serve`` runs it on the main thread); requests go through ``Admission`` as
run.py wraps the app, so the 503s it answers before routing are covered too."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from profiler import sse
from profiler.api import EnergyInfo, ErrorResponse, GenerateResponse, ServerInfo
from profiler.artifact import ArtifactError
from profiler.energy.contention import machine_id
from profiler.energy.timeline import Timeline
from profiler.energy.windows import OpenedWindow, WindowResult
from profiler.engines.engine import load_engine
from profiler.server.app import Admission, Service, create_app
from profiler.server.settings import ServeSettings
from profiler.workload import load_tokenizer

# A batch of the tiny model is far shorter than the estimate can resolve; the server says so on
# every such batch, and these tests read no joules closely.
pytestmark = pytest.mark.filterwarnings("ignore::profiler.energy.ShortWindowWarning")

TEXT = "Where is the committee located?\n\nThe committee reviewed the annual budget in March."
SETTINGS = ServeSettings(max_batch_size=4, max_wait_ms=0.0, max_queue=16)
#: Warm-up runs every bucket of the tiny model once: a second or two, far less on a quiet machine.
READY_WITHIN_S = 120.0


class InProcessServer:
    """One app, its service, and a client on one event loop kept for the app's whole life.

    One loop, because the batch worker resolves each request's future on the loop that queued it.
    """

    def __init__(self, checkpoint: Path, settings: ServeSettings) -> None:
        app = create_app(load_engine(checkpoint), load_tokenizer(checkpoint), settings)
        self.service: Service = app.state.service
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=Admission(app, self.service))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://in-process")
        self.worker: threading.Thread | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def start_worker(self) -> None:
        """Run the batch worker (warm-up first) on a thread, and wait until the app says ready."""
        self.worker = threading.Thread(target=self.service.serve_forever, name="batch-worker", daemon=True)
        self.worker.start()
        deadline = time.monotonic() + READY_WITHIN_S
        while not self.service.ready:
            assert self.worker.is_alive(), "the batch worker died during warm-up"
            assert time.monotonic() < deadline, f"not ready within {READY_WITHIN_S} s"
            time.sleep(0.05)

    def close(self) -> None:
        self.service.stop()
        if self.worker is not None:
            self.worker.join(timeout=30)
            assert not self.worker.is_alive(), "the batch worker did not stop"
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def counted(self, status: int) -> float:
        """Requests with ``status`` that /metrics has counted outside any bucket (errors)."""
        prefix = f'profiler_requests_total{{input_bucket="none",status="{status}"}}'
        for line in self.request("GET", "/metrics").text.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def server(tiny_checkpoints: dict[str, Path]) -> Iterator[InProcessServer]:
    """An app whose worker has warmed up, shared by the tests that need a ready model."""
    served = InProcessServer(tiny_checkpoints["led"], SETTINGS)
    served.start_worker()
    yield served
    served.close()


def test_before_the_worker_warms_up_generate_is_503_then_200_once_ready(
    tiny_checkpoints: dict[str, Path],
) -> None:
    served = InProcessServer(tiny_checkpoints["led"], SETTINGS)
    try:
        refused = served.request("POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 2})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "warming_up"
        assert served.counted(503) == 1  # refused before routing, and still counted
        assert served.request("GET", "/readyz").status_code == 503
        assert served.request("GET", "/healthz").json() == {"status": "ok"}
        served.start_worker()
        assert served.request("GET", "/readyz").json() == {"status": "ready"}
        answered = served.request("POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 2})
        assert answered.status_code == 200, answered.text
    finally:
        served.close()


def test_generate_answers_with_every_documented_field(server: InProcessServer) -> None:
    response = server.request("POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 6})
    assert response.status_code == 200, response.text
    body = GenerateResponse.model_validate(response.json())
    assert body.request_id == response.headers["x-request-id"]
    assert (body.mode, body.bucket, body.batch_size, body.truncated) == ("generate", 1024, 1, False)
    assert 0 < body.input_tokens < 1024
    assert 1 <= len(body.output_ids) <= 6
    assert body.timings.total_ms >= body.timings.encode_ms + body.timings.decode_ms
    assert (body.energy.source, body.energy.estimate) == ("estimate", True)
    assert 0 <= body.energy.joules <= body.energy.batch_joules
    names = [part.split(";")[0] for part in response.headers["server-timing"].split(", ")]
    assert names == ["queue", "tokenize", "encode", "first_step", "decode", "total"]


def test_input_ids_go_to_the_smallest_bucket_that_holds_them(server: InProcessServer) -> None:
    response = server.request("POST", "/v1/generate", json={"input_ids": [5] * 1025, "max_new_tokens": 2})
    assert response.status_code == 200, response.text
    assert (response.json()["input_tokens"], response.json()["bucket"]) == (1025, 2048)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "a", "temperature": 0.7}, "temperature"),
        ({"text": "a", "max_new_tokens": 0}, "max_new_tokens"),
        ({"input_ids": [5, 6.0]}, "input_ids.1"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    server: InProcessServer, body: dict[str, Any], field: str
) -> None:
    response = server.request("POST", "/v1/generate", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["message"].startswith(f"{field}: ")
    assert [item["field"] for item in error["details"]] == [field]


def test_malformed_json_is_400(server: InProcessServer) -> None:
    response = server.request(
        "POST", "/v1/generate", content=b'{"text": "a"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "malformed_json"


def test_an_input_over_the_largest_bucket_is_413(server: InProcessServer) -> None:
    response = server.request("POST", "/v1/generate", json={"input_ids": [5] * 4097})
    assert response.status_code == 413
    assert "largest bucket of 4096" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("GET", "/v1/generate", 405, "method_not_allowed"),
    ],
)
def test_framework_errors_have_the_documented_shape_and_are_counted(
    server: InProcessServer, method: str, path: str, status: int, kind: str
) -> None:
    before = server.counted(status)
    response = server.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["type"] == kind
    assert path in error["message"]
    if status == 405:
        assert response.headers["allow"] == "POST"
        assert "use POST" in error["message"]
    assert server.counted(status) == before + 1


def test_a_bad_body_is_counted_in_metrics(server: InProcessServer) -> None:
    before = server.counted(422)
    assert server.request("POST", "/v1/generate", json={"text": ""}).status_code == 422
    assert server.counted(422) == before + 1


def test_info_describes_the_engine_and_the_settings(
    server: InProcessServer, tiny_checkpoints: dict[str, Path]
) -> None:
    info = server.request("GET", "/v1/info").json()
    assert (info["engine"], info["device"], info["providers"]) == ("eager", "cpu", [])
    assert info["source"] == str(tiny_checkpoints["led"])
    assert info["buckets"] == [1024, 2048, 3072, 4096]
    assert info["batching"] == {"max_batch_size": 4, "max_wait_ms": 0.0, "max_queue": 16}
    assert (info["truncate"], info["max_body_bytes"]) == (False, SETTINGS.max_body_bytes)
    assert info["resident_bytes"] > 100 << 20  # measured once warm-up ran: torch alone is more


def test_every_answer_is_its_one_type_and_the_openapi_names_it(server: InProcessServer) -> None:
    """The server returns the types its client validates with, so both sides and the schema agree."""
    info = ServerInfo.model_validate(server.request("GET", "/v1/info").json())
    assert (info.model_type, info.manifest) == ("led", None)  # an eager checkpoint has no manifest
    energy = EnergyInfo.model_validate(server.request("GET", "/v1/energy").json())
    assert energy.estimate == (energy.source == "estimate")
    opened = server.request("POST", "/v1/energy/windows/typed")
    assert OpenedWindow.model_validate(opened.json()).name == "typed"
    closed = server.request("POST", "/v1/energy/windows/typed/end")
    assert WindowResult.model_validate(closed.json()).completed == 0
    assert Timeline.model_validate(server.request("GET", "/v1/energy/timeline").json()).samples
    paths = server.request("GET", "/openapi.json").json()["paths"]
    for path, method, name in [
        ("/v1/info", "get", "ServerInfo"),
        ("/v1/energy", "get", "EnergyInfo"),
        ("/v1/energy/windows/{name}", "post", "OpenedWindow"),
        ("/v1/energy/windows/{name}/end", "post", "WindowResult"),
        ("/v1/energy/windows/{name}", "get", "WindowResult"),
        ("/v1/energy/idle", "post", "IdleBaseline"),
        ("/v1/energy/timeline", "get", "Timeline"),
        ("/v1/generate", "post", "GenerateResponse"),
    ]:
        answers = paths[path][method]["responses"]
        ok = answers.get("200") or answers["201"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith(f"/{name}"), (path, method)
    assert "text/event-stream" in paths["/v1/generate"]["post"]["responses"]["200"]["content"]


def test_global_attention_defaults_to_the_first_token_and_each_request_may_choose(
    server: InProcessServer,
) -> None:
    """LED's global attention: the server's default (first), then per request, as transformers
    would run it; ``query`` counts the tokens before the blank line, the leading special one too."""
    info = ServerInfo.model_validate(server.request("GET", "/v1/info").json())
    assert (info.global_attention, info.layout.attention, info.layout.global_attention) == (
        "first",
        "sliding_window",
        True,
    )
    tokenizer = server.service.tokenizer
    query_ids = tokenizer("Where is the committee located?", add_special_tokens=False)["input_ids"]
    expected = {"first": 1, "none": 0, "query": 1 + len(query_ids)}
    answers = {}
    for mode, count in expected.items():
        body = {"text": TEXT, "max_new_tokens": 8, "global_attention": mode}
        response = server.request("POST", "/v1/generate", json=body)
        assert response.status_code == 200, response.text
        answer = GenerateResponse.model_validate(response.json())
        assert (answer.global_attention, answer.global_tokens) == (mode, count)
        assert answer.encoded_tokens == server.service.engine.graphs.layout.row_length(answer.input_tokens)
        answers[mode] = answer.output_ids
    default = server.request("POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 8}).json()
    assert (default["global_attention"], default["output_ids"]) == ("first", answers["first"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input_ids": [5] * 40, "global_attention": "query"}, "global_attention: query needs `text`"),
        ({"text": "no blank line here", "global_attention": "query"}, "query found no blank line"),
        ({"text": TEXT, "global_attention": "all"}, "global_attention: Input should be"),
    ],
)
def test_a_global_attention_the_input_cannot_have_is_422_naming_the_field(
    server: InProcessServer, body: dict[str, Any], message: str
) -> None:
    response = server.request("POST", "/v1/generate", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]


def test_a_model_without_global_attention_refuses_it_and_so_does_its_server(
    tiny_checkpoints: dict[str, Path],
) -> None:
    served = InProcessServer(tiny_checkpoints["bigbird-pegasus"], SETTINGS)
    try:
        served.start_worker()
        info = ServerInfo.model_validate(served.request("GET", "/v1/info").json())
        assert (info.global_attention, info.layout.attention) == ("none", "block_sparse")
        refused = served.request("POST", "/v1/generate", json={"text": TEXT, "global_attention": "first"})
        assert refused.status_code == 422
        assert refused.json()["error"]["message"].startswith(
            "global_attention: bigbird_pegasus has no global attention"
        )
        fine = served.request("POST", "/v1/generate", json={"text": TEXT, "global_attention": "none"})
        assert fine.status_code == 200, fine.text
    finally:
        served.close()
    engine = load_engine(tiny_checkpoints["bigbird-pegasus"])
    tokenizer = load_tokenizer(tiny_checkpoints["bigbird-pegasus"])
    with pytest.raises(ArtifactError, match=r"^--global-attention query: bigbird_pegasus has no global"):
        create_app(engine, tokenizer, ServeSettings(global_attention="query"))


def test_a_window_records_contention_and_never_counts_the_server_as_its_own_load_generator(
    server: InProcessServer,
) -> None:
    here = {"load_generator_pid": os.getpid(), "load_generator_machine": machine_id()}
    assert server.request("POST", "/v1/energy/windows/loadgen-here", json=here).status_code == 201
    elsewhere = {"load_generator_pid": 1, "load_generator_machine": "another-machine"}
    assert server.request("POST", "/v1/energy/windows/loadgen-elsewhere", json=elsewhere).status_code == 201
    spin_until = time.monotonic() + 0.3
    while time.monotonic() < spin_until:  # the server's own work
        pass
    results = [
        WindowResult.model_validate(server.request("POST", f"/v1/energy/windows/{name}/end").json())
        for name in ("loadgen-here", "loadgen-elsewhere")
    ]
    notes = []
    for result in results:
        assert result.contention is not None
        assert result.contention.load_generator_cpu_s is None
        assert result.contention.server_cpu_s >= 0.1
        assert result.contention.capacity_cpu_s > 0
        notes.append(result.contention.notes)
    # In process, the server's tree is the load generator's: counted once, as the server's; a pid
    # of another machine means nothing here.
    assert notes == [["the load generator's process tree holds the server: not counted apart."], []]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"load_generator_pid": 2**22 + 1}, "no load generator process 4194305 on the server's machine"),
        ({"load_generator_pid": "5"}, "load_generator_pid: "),
        ({"load_generator_pid": 0}, "load_generator_pid: "),
        ({"load_generator": 5}, "load_generator: "),
    ],
)
def test_a_window_body_that_names_no_process_here_is_422(
    server: InProcessServer, body: dict[str, Any], message: str
) -> None:
    response = server.request("POST", "/v1/energy/windows/bad-body", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request"
    assert message in response.json()["error"]["message"]
    assert "bad-body" not in server.request("GET", "/v1/energy").json()["open_windows"]


def test_an_engine_failure_mid_stream_is_an_error_event(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("the decoder broke")

    monkeypatch.setattr(server.service.engine.graphs, "decoder_step", broken)
    response = server.request(
        "POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 6, "stream": True}
    )
    assert response.status_code == 200
    parser = sse.EventParser()
    events = [event for line in response.text.splitlines() if (event := parser.line(line))]
    # The first token comes from the decoder's first step, before the step that fails.
    assert [event.name for event in events] == ["token", "error"]
    error = ErrorResponse.model_validate_json(events[1].data).error
    assert (error.type, error.message) == ("engine_error", "RuntimeError: the decoder broke")
    monkeypatch.undo()
    after = server.request("POST", "/v1/generate", json={"text": TEXT, "max_new_tokens": 2})
    assert after.status_code == 200, "the server lives on after a failed stream"
