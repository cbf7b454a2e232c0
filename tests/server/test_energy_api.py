"""Energy over HTTP: windows, per-request joules, idle baseline, timeline (the estimate, for real)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from profiler.api import DEFAULT_IDLE_SECONDS
from profiler.server.launch import ServerProcess, start_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(served_models: dict[str, Path]) -> Iterator[httpx.Client]:
    server: ServerProcess = start_server(served_models["bigbird-pegasus/onnx"])
    with server.client() as http:
        yield http
    assert server.stop() == 0


def generate(client: httpx.Client, tokens: int = 1500) -> dict[str, object]:
    response = client.post("/v1/generate", json={"input_ids": [11] * tokens, "max_new_tokens": 8})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_energy_info_names_its_source(client: httpx.Client) -> None:
    info = client.get("/v1/energy").json()
    assert info["source"] == "estimate"  # no GPU and no readable RAPL here
    assert info["estimate"] is True
    assert "estimate" in info["method"]
    assert info["timeline_hz"] == 10


def test_each_response_carries_its_share_of_energy(client: httpx.Client) -> None:
    body = generate(client)
    energy = body["energy"]
    assert isinstance(energy, dict)
    assert energy["source"] == "estimate"
    assert energy["estimate"] is True
    assert 0 < energy["joules"] <= energy["batch_joules"]
    assert body["request_id"]


def test_a_window_measures_its_stage_and_splits_it_over_requests(client: httpx.Client) -> None:
    assert client.post("/v1/energy/windows/generate@2048").status_code == 201
    again = client.post("/v1/energy/windows/generate@2048")
    assert again.status_code == 409
    assert "already open" in again.json()["error"]["message"]
    ids = [generate(client)["request_id"] for _ in range(3)]
    closed = client.post("/v1/energy/windows/generate@2048/end", params={"requests": "true"})
    assert closed.status_code == 200, closed.text
    result = closed.json()
    measurement = result["measurement"]
    assert measurement["source"] == "estimate"
    assert measurement["total_j"] > 0
    assert measurement["duration_s"] > 0
    assert result["completed"] == 3
    assert result["per_query"]["gross_j"] == pytest.approx(measurement["total_j"] / 3)
    shares = result["requests"]["energy_j"]
    assert set(shares) == set(ids)
    assert math.fsum(shares.values()) == pytest.approx(measurement["total_j"], rel=1e-12)
    assert client.get("/v1/energy/windows/generate@2048").json() == result


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/v1/energy/windows/never-opened/end", 404),
        ("get", "/v1/energy/windows/never-opened", 404),
        ("post", "/v1/energy/windows/bad name", 422),
        ("post", "/v1/energy/windows/" + "x" * 101, 422),
    ],
)
def test_window_errors(client: httpx.Client, method: str, path: str, status: int) -> None:
    response = client.request(method.upper(), path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_idle_baseline_gives_net_energy_per_query(client: httpx.Client) -> None:
    idle = client.post("/v1/energy/idle", json={"seconds": 0.5})
    assert idle.status_code == 200, idle.text
    assert idle.json()["source"] == "estimate"
    client.post("/v1/energy/windows/with-idle")
    generate(client)
    result = client.post("/v1/energy/windows/with-idle/end").json()
    assert result["idle"]["source"] == "estimate"
    assert result["per_query"]["net_j"] is not None
    assert result["per_query"]["net_j"] <= result["per_query"]["gross_j"]
    for bad in ({"seconds": 0}, {"seconds": 601}, {"secs": 1}, {"seconds": True}, {"seconds": "1"}):
        assert client.post("/v1/energy/idle", json=bad).status_code == 422


def test_user_windows_cannot_touch_the_servers_own(client: httpx.Client) -> None:
    """Names a client picks live apart from the server's per-batch and idle windows."""
    names = [f"batch:{n}" for n in range(40)] + [f"idle:{n}" for n in range(40)]
    for name in names:
        assert client.post(f"/v1/energy/windows/{name}").status_code == 201
    for _ in range(3):
        generate(client, 300)  # the server's own batch windows open and close meanwhile
    assert set(names) <= set(client.get("/v1/energy").json()["open_windows"])
    for name in names:
        result = client.post(f"/v1/energy/windows/{name}/end")
        assert result.status_code == 200, result.text
        assert result.json()["measurement"]["name"] == name


def test_one_idle_measurement_at_a_time_and_windows_stay_quick_meanwhile(client: httpx.Client) -> None:
    """40 concurrent idle calls (no body: the default length): one measures, 39 get 409 at once."""
    with ThreadPoolExecutor(40) as pool:
        calls = [pool.submit(client.post, "/v1/energy/idle") for _ in range(40)]
        time.sleep(0.5)
        started = time.perf_counter()
        assert client.post("/v1/energy/windows/during-idle").status_code == 201
        assert client.post("/v1/energy/windows/during-idle/end").status_code == 200
        window_s = time.perf_counter() - started
        for n in range(5):  # the server's idle windows are not reachable by their old names
            response = client.post(f"/v1/energy/windows/idle:{n}/end")
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "no_such_window"
        responses = [call.result() for call in calls]
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 39
    assert all(r.json()["error"]["type"] == "idle_running" for r in responses if r.status_code == 409)
    measured = next(r.json() for r in responses if r.status_code == 200)
    assert measured["duration_s"] == pytest.approx(DEFAULT_IDLE_SECONDS, abs=0.5)
    assert window_s < 2.0


def test_timeline_samples_cpu_at_10_hz(client: httpx.Client) -> None:
    samples = client.get("/v1/energy/timeline").json()["samples"]
    assert len(samples) >= 5
    assert {"t_monotonic_s", "t_wall_s", "cpu_tree_pct", "cpu_system_pct", "gpus"} <= set(samples[-1])
    later = client.get("/v1/energy/timeline", params={"since": samples[-2]["t_monotonic_s"]}).json()[
        "samples"
    ]
    assert later[0]["t_monotonic_s"] == samples[-1]["t_monotonic_s"]
