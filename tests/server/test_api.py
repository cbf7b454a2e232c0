"""Every endpoint and error of the HTTP API, against a live `profiler serve` on loopback."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from profiler.server.launch import ServerProcess, start_server

pytestmark = pytest.mark.integration

TEXT = "Where is the committee located?\n\nThe committee reviewed the annual budget in March."


@pytest.fixture(scope="module")
def server(served_models: dict[str, Path]) -> Iterator[ServerProcess]:
    live = start_server(served_models["led/onnx"], "--max-batch-size", "4", "--max-wait-ms", "50")
    yield live
    assert live.stop() == 0


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def test_health_ready_info(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    info = client.get("/v1/info").json()
    assert info["engine"] == "onnx"
    assert (info["device"], info["providers"]) == ("cpu", ["CPUExecutionProvider"])
    assert info["buckets"] == [1024, 2048, 4096]
    assert info["batching"] == {"max_batch_size": 4, "max_wait_ms": 50.0, "max_queue": 256}
    assert info["manifest"]["format"] == "onnx"
    assert info["manifest"]["parity"]


def test_generate_returns_text_ids_bucket_and_timings(client: httpx.Client) -> None:
    response = client.post("/v1/generate", json={"text": TEXT, "max_new_tokens": 6})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket"] == 1024
    assert 0 < body["input_tokens"] < 1024
    assert 1 <= len(body["output_ids"]) <= 6
    assert isinstance(body["text"], str)
    timings = body["timings"]
    assert set(timings) == {"queue_ms", "tokenize_ms", "encode_ms", "first_step_ms", "decode_ms", "total_ms"}
    assert timings["total_ms"] >= timings["encode_ms"] + timings["decode_ms"]
    assert 0 < timings["first_step_ms"] <= timings["decode_ms"]
    header = response.headers["server-timing"]
    assert [part.split(";")[0] for part in header.split(", ")] == [
        "queue",
        "tokenize",
        "encode",
        "first_step",
        "decode",
        "total",
    ]


def test_input_ids_pick_the_smallest_bucket_that_holds_them(client: httpx.Client) -> None:
    for length, bucket in [(10, 1024), (1024, 1024), (1025, 2048), (4096, 4096)]:
        body = client.post("/v1/generate", json={"input_ids": [5] * length, "max_new_tokens": 2}).json()
        assert (body["input_tokens"], body["bucket"]) == (length, bucket)


def test_modes(client: httpx.Client) -> None:
    forward = client.post("/v1/generate", json={"text": TEXT, "mode": "forward", "target_length": 12}).json()
    assert len(forward["output_ids"]) == 12
    encode = client.post("/v1/generate", json={"text": TEXT, "mode": "encode"}).json()
    assert encode["output_ids"] == []
    assert encode["timings"]["encode_ms"] > 0


BAD_BODIES = [
    (b'{"text": "abc"', 400, "malformed_json"),
    (b'{"text": "\\ud800\xff"}', 400, "malformed_json"),
    (b"\xff\xfe\x00", 400, "malformed_json"),
    (b'["text"]', 422, "invalid_request"),
    (b'{"text": 5}', 422, "text"),
    (b'{"text": "a", "temperature": 0.7}', 422, "temperature"),
    (b'{"text": ""}', 422, "text"),
    (b'{"text": "   "}', 422, "empty"),
    (b'{"text": "a", "input_ids": [5]}', 422, "exactly one"),
    (b"{}", 422, "exactly one"),
    (b'{"input_ids": []}', 422, "input_ids"),
    (b'{"input_ids": [5, 99999999]}', 422, "outside the vocabulary"),
    (b'{"input_ids": [-1]}', 422, "outside the vocabulary"),
    (b'{"text": "a", "max_new_tokens": 0}', 422, "max_new_tokens"),
    (b'{"text": "a", "max_new_tokens": 100000}', 422, "max_new_tokens"),
    (b'{"text": "a", "max_new_tokens": "many"}', 422, "max_new_tokens"),
    (b'{"text": "a", "max_new_tokens": true}', 422, "max_new_tokens: Input should be a valid integer"),
    (b'{"text": "a", "max_new_tokens": "5"}', 422, "max_new_tokens: Input should be a valid integer"),
    (b'{"text": "a", "max_new_tokens": 2.0}', 422, "max_new_tokens: Input should be a valid integer"),
    (b'{"input_ids": [true]}', 422, "input_ids.0: Input should be a valid integer"),
    (b'{"input_ids": [5, 6.0]}', 422, "input_ids.1: Input should be a valid integer"),
    (b'{"text": null, "input_ids": [5]}', 422, "text: null is not allowed"),
    (b'{"text": "a", "max_new_tokens": 5000}', 422, "less than or equal to 1023"),
    (b'{"text": "a", "mode": "train"}', 422, "mode"),
    (b'{"text": "a", "mode": "forward", "target_length": 1024}', 422, "target_length"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_BODIES)
def test_bad_requests_get_a_4xx_json_error(
    client: httpx.Client, body: bytes, status: int, needle: str
) -> None:
    response = client.post("/v1/generate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in f"{error['type']} {error['message']}"


def test_over_the_largest_bucket_is_413_naming_the_limit(client: httpx.Client) -> None:
    response = client.post("/v1/generate", json={"input_ids": [5] * 4097})
    assert response.status_code == 413
    assert "largest bucket of 4096" in response.json()["error"]["message"]


def test_a_body_over_the_size_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/generate", json={"text": "x" * (2 << 20)})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "body_too_large"


def test_the_server_survives_bad_input_and_counts_it(client: httpx.Client) -> None:
    for body, _, _ in BAD_BODIES:
        client.post("/v1/generate", content=body)
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/generate", json={"text": TEXT, "max_new_tokens": 2}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'profiler_requests_total{input_bucket="none",status="422"}' in metrics
    assert 'profiler_requests_total{input_bucket="1024",status="200"}' in metrics
    assert "profiler_request_latency_seconds_bucket" in metrics
    assert "profiler_queue_depth" in metrics
    assert "profiler_batch_size_bucket" in metrics


def test_requests_of_one_bucket_are_batched(client: httpx.Client) -> None:
    def call(i: int) -> dict[str, Any]:
        body: dict[str, Any] = client.post(
            "/v1/generate", json={"input_ids": [5 + i] * 300, "max_new_tokens": 4}
        ).json()
        return body

    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(call, range(4)))
    assert max(body["batch_size"] for body in bodies) > 1
    assert all(body["bucket"] == 1024 for body in bodies)


def test_openapi_describes_every_endpoint_and_error(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/v1/info", "/metrics", "/v1/generate"} <= set(schema["paths"])
    generate = schema["paths"]["/v1/generate"]["post"]
    assert {"200", "400", "413", "422", "500", "503"} <= set(generate["responses"])
    body_schema = generate["requestBody"]["content"]["application/json"]["schema"]
    assert {"text", "input_ids", "mode", "max_new_tokens"} <= set(body_schema["properties"])
    assert body_schema["oneOf"] == [{"required": ["text"]}, {"required": ["input_ids"]}]
    assert body_schema["properties"]["text"]["type"] == "string"  # present means a string, never null
    assert body_schema["properties"]["max_new_tokens"]["maximum"] == 1023  # this model's real limit
    idle = schema["paths"]["/v1/energy/idle"]["post"]
    assert not idle["requestBody"].get("required", False)
    assert "409" in idle["responses"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("DELETE", "/v1/generate", 405, "method_not_allowed"),
        ("GET", "/v1/generate", 405, "method_not_allowed"),
        ("GET", "/v1/energy/timeline?since=soon", 422, "invalid_request"),
        ("POST", "/v1/energy/windows/bad%20name", 422, "invalid_request"),
    ],
)
def test_the_frameworks_own_errors_have_the_documented_shape_and_are_counted(
    client: httpx.Client, method: str, path: str, status: int, kind: str
) -> None:
    def counted() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f'profiler_requests_total{{input_bucket="none",status="{status}"}}'):
                return float(line.split()[-1])
        return 0.0

    before = counted()
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == kind
    assert error["message"]
    if status == 405:
        assert "POST" in response.headers["allow"]
        assert "use POST" in error["message"]
    assert counted() == before + 1


def metric_values(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics parsed as Prometheus text: (sample name, labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_the_tokens_and_joules_of_answered_requests(client: httpx.Client) -> None:
    before = metric_values(client)
    answers = [
        client.post("/v1/generate", json={"text": TEXT, "max_new_tokens": 5}).json(),
        client.post("/v1/generate", json={"input_ids": [5] * 1500, "max_new_tokens": 3}).json(),
    ]
    client.post("/v1/generate", json={"text": ""})  # a refusal: counted as a request, no tokens
    after = metric_values(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    for bucket in (1024, 2048):
        mine = [answer for answer in answers if answer["bucket"] == bucket]
        assert len(mine) == 1, answers
        (answer,) = mine
        label = {"input_bucket": str(bucket)}
        assert grew("profiler_input_tokens_total", **label) == answer["input_tokens"]
        assert grew("profiler_output_tokens_total", **label) == len(answer["output_ids"])
        energy = answer["energy"]
        assert energy["source"] in {"estimate", "rapl", "nvml-counter", "nvml-power"}
        joules = grew("profiler_energy_joules_total", source=energy["source"], **label)
        assert joules == pytest.approx(energy["joules"], rel=1e-9)
        assert joules > 0
        assert grew("profiler_requests_total", status="200", **label) == 1
        assert grew("profiler_request_latency_seconds_count", **label) == 1
    assert grew("profiler_requests_total", status="422", input_bucket="none") == 1
    names = {name for name, _ in after}
    assert not any(
        ("bucket", bucket) in labels for _, labels in after for bucket in ("1024", "2048", "none")
    ), "a label named bucket is back beside the histograms' le"
    assert {"profiler_request_latency_seconds_bucket", "profiler_batch_size_bucket"} <= names


def referenced(page: str) -> list[str]:
    """What a docs page loads: src/href/spec-url attributes and Swagger UI's ``url:`` setting."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', page) + re.findall(r"\burl: '([^']+)'", page)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_every_asset_from_this_server(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assets = referenced(html)
    assert any(asset.endswith(".js") for asset in assets), assets
    assert "/openapi.json" in assets
    assert "http://" not in html
    assert "https://" not in html
    for asset in assets:
        assert re.match(r"/[^/]", asset), f"{page} loads {asset} from elsewhere"  # a path on this host
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000, asset
    if page == "/docs":
        assert '"validatorUrl": null' in html  # no validity badge fetched from swagger.io


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_swagger_ui_renders_every_endpoint_in_a_browser_with_no_other_host(server: ServerProcess) -> None:
    """Every name but the server's own address fails to resolve, so the page works offline or not at all."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    schema = httpx.get(f"{server.url}/openapi.json").json()
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == set(schema["paths"]), dom[-2000:]
