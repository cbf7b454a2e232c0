"""Locust's web UI with the load test: its flags in the start form, a start from the form, and the
SCROLLS stages tab, live over HTTP and rendered by a real browser (Debian's chromium)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from profiler.loadgen.live import LiveStatus
from profiler.loadgen.results import LoadTestResults
from profiler.server.launch import ServerProcess, free_port

from .test_locust import LOCUST, ROOT

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")


@pytest.fixture
def web_ui(server: ServerProcess, tmp_path: Path) -> Iterator[httpx.Client]:
    """`locust -f loadtests/scrolls.py --host URL` with its web UI on a free loopback port."""
    port = free_port()
    command = [
        *(str(LOCUST), "-f", "loadtests/scrolls.py", "--host", server.url),
        *("--web-host", "127.0.0.1", "--web-port", str(port), "--input-lengths", "1024,2048"),
    ]
    with (tmp_path / "locust.log").open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "locust.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the web UI did not come up"
            try:
                if client.get("/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def template_args(page: str) -> dict[str, object]:
    found = re.search(r"window\.templateArgs = (.*)", page)
    assert found is not None
    args: dict[str, object] = json.loads(found.group(1))
    return args


def start_form(server: ServerProcess, results: Path, **fields: str) -> dict[str, str]:
    """The start form as the web UI posts it (names after its camel-case round trip)."""
    return {
        "user_count": "2",
        "spawn_rate": "2",
        "host": server.url,
        "input_lengths": "1024,2048",
        "stage_seconds": "3",
        "min_requests": "2",
        "stability": "0",
        "warmup_seconds": "0.5",
        "max_new_tokens": "4",
        "p_99_ms": "",
        "stream": "false",
        "results": str(results),
        **fields,
    }


def test_the_tab_shows_each_stage_live_and_ends_on_the_results_file(
    web_ui: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    args = template_args(web_ui.get("/").text)
    assert args["extended_tabs"] == [{"title": "SCROLLS stages", "key": "scrolls"}]
    options = args["extra_options"]
    assert isinstance(options, dict)
    assert options["input_lengths"]["default_value"] == [1024, 2048]  # as given on the command line
    assert options["stage_seconds"]["help_text"] == "Least seconds of load per stage (default 30)."
    assert "global_attention" not in options  # command line only

    results = tmp_path / "ui-run.json"
    refused = web_ui.post("/swarm", data=start_form(server, results, stage_seconds="soon")).json()
    assert refused == {
        "success": False,
        "message": '--stage-seconds = "soon": expected a number',
        "host": server.url,
    }
    assert web_ui.post("/swarm", data=start_form(server, results)).json()["success"] is True

    running: list[LiveStatus] = []
    deadline = time.monotonic() + 180
    while (status := LiveStatus.model_validate_json(web_ui.get("/loadgen/status").text)).phase != "done":
        assert time.monotonic() < deadline, status
        if status.current == "generate@1024" and status.stages[0].requests:
            running.append(status)
        time.sleep(0.2)
    assert running, "never saw the first stage running with requests"
    seen = running[-1].stages[0]
    assert seen.state == "running"
    assert seen.least_left_s is not None
    assert seen.elapsed_s is not None
    assert seen.least_left_s == pytest.approx(max(0.0, 3.0 - seen.elapsed_s))
    assert (seen.energy_source, seen.energy_basis) == ("estimate", "requests so far")
    assert [stage.state for stage in running[-1].stages] == ["running", "waiting"]

    data = LoadTestResults.model_validate_json(results.read_text())
    assert (data.stage_seconds, data.users, data.max_new_tokens) == (3.0, 2, 4)  # the form's values
    assert (status.results_path, status.results_written) == (str(results), True)
    assert len(status.stages) == len(data.stages) == 2
    for stage, result in zip(status.stages, data.stages, strict=True):
        assert (stage.name, stage.state, stage.requests) == (result.name, "done", result.requests)
        assert seen.requests <= result.requests or stage.name != seen.name
        assert (stage.p50_ms, stage.p99_ms) == (result.summary.p50_ms, result.summary.p99_ms)
        assert stage.tokens_per_s == pytest.approx(result.tokens_per_s)
        assert stage.j_per_query == pytest.approx(result.gross_j_per_query)
        assert stage.energy_source == result.energy_source == "estimate"

    extended = web_ui.get("/stats/requests").json()["extended_stats"]
    (rows,) = [entry["data"] for entry in extended if entry["key"] == "scrolls"]
    assert [row["name"] for row in rows] == ["generate@1024", "generate@2048", "results file"]
    assert all(row["j_per_query"].endswith("J (estimate)") for row in rows[:2])
    assert rows[2]["state"] == f"{results} (written)"
    assert json.loads(web_ui.get("/loadgen/results").content) == json.loads(results.read_text())

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the rendered tab is unchecked")
    dom = subprocess.run(
        [
            *(CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
            *("--virtual-time-budget=10000", "--dump-dom", f"{web_ui.base_url}/?tab=scrolls"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", dom)
    for row in rows:
        at = cells.index(row["name"])
        assert cells[at : at + 2] == [row["name"], row["state"]]
    assert cells[cells.index("generate@2048") + 8] == rows[1]["j_per_query"]
