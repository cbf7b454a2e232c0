"""Real locust against a real server on loopback: `locust -f loadtests/scrolls.py` as documented.

Each run is a few seconds (two stages of 3 s, or one of 2 s); the whole module stays near a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

from profiler.energy.contention import DISTURBED_SHARE
from profiler.loadgen.results import LoadTestResults, StageResult
from profiler.server.launch import ServerProcess, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"


def locust(*args: str, timeout: float = 120, merged: bool = False) -> subprocess.CompletedProcess[str]:
    """Run locust from the checkout's root, exactly as the docs say (``merged``: stderr into
    stdout, as a terminal shows them).

    With ``--processes``, the master listens on a free port rather than locust's fixed 5557, so
    that another load test on this machine (another test run) cannot take its workers.
    """
    command = [str(LOCUST), "-f", "loadtests/scrolls.py", *args]
    if "--processes" in args:
        port = str(free_port())
        command += ["--master-bind-port", port, "--master-port", port]
    stderr = subprocess.STDOUT if merged else subprocess.PIPE
    return subprocess.run(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout, check=False
    )


def common(server: ServerProcess, tokenizer: Path, results: Path, *extra: str) -> list[str]:
    return [
        *("--headless", "--host", server.url, "--tokenizer", str(tokenizer), "--results", str(results)),
        *("--max-new-tokens", "4", "--only-summary", *extra),
        # Short stages: a warm-up, two successful requests, no stability wait.
        *("--warmup-seconds", "0.5", "--min-requests", "2", "--stability", "0"),
    ]


def locust_counts(prefix: Path) -> dict[str, int]:
    """Requests per name from locust's own statistics (``--json-file PREFIX`` writes PREFIX.json)."""
    stats = json.loads(prefix.with_name(prefix.name + ".json").read_text())
    return {entry["name"]: entry["num_requests"] for entry in stats}


def check_stage(stage: StageResult, length: int) -> None:
    assert stage.name == f"generate@{length}"
    assert stage.length == length
    ok = stage.requests - stage.failures
    assert stage.failures == 0, stage.failure_reasons
    assert ok > 0
    assert len(stage.latency_ms) == ok
    assert all(len(values) == ok for values in stage.server_timings_ms.values())
    assert len(stage.request_energy_j) == ok
    assert stage.buckets == {str(length): ok}
    assert stage.input_tokens == ok * length
    assert stage.window is not None
    assert stage.window.measurement.source == "estimate"
    assert stage.window.completed == ok  # the window holds exactly the stage's requests
    assert stage.energy_source == "estimate"
    assert (stage.gross_j_per_query or 0) > 0
    contention = stage.window.contention
    assert contention is not None
    # locust runs on the server's machine and said so: its tree is counted apart from others'.
    assert contention.load_generator_cpu_s is not None
    assert contention.load_generator_cpu_s > 0
    assert contention.server_cpu_s > 0
    summary = stage.summary
    p50, p90, p99 = summary.p50_ms or 0.0, summary.p90_ms or 0.0, summary.p99_ms or 0.0
    assert 0 < p50 <= p90 <= p99
    assert stage.complete


def test_headless_closed_loop(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    results = tmp_path / "run.json"
    stats = tmp_path / "locust"
    run = locust(
        *common(server, tiny_checkpoints["led"], results),
        *("-u", "2", "-r", "2", "--stage-seconds", "3", "--input-lengths", "1024,2048"),
        *("--json-file", str(stats)),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = LoadTestResults.model_validate_json(results.read_text())
    assert (data.schema_version, data.arrival, data.users, data.complete) == (1, "closed", 2, True)
    assert data.energy is not None
    assert data.energy.source == "estimate"
    check_stage(data.stages[0], 1024)
    check_stage(data.stages[1], 2048)
    assert [stage.nodes for stage in data.stages] == [{"local": stage.requests} for stage in data.stages]
    # Every request locust counted is in the results, with its raw latency.
    counts = locust_counts(stats)
    assert {name: counts[name] for name in ("generate@1024", "generate@2048")} == {
        stage.name: stage.requests for stage in data.stages
    }
    assert data.stages[0].duration_s == pytest.approx(3.0, abs=1.0)
    assert [(stage.end_reason, stage.enough_requests) for stage in data.stages] == [("measured", True)] * 2
    assert all(stage.warmup_requests >= 1 for stage in data.stages)  # each user's first, left out
    assert "generate@2048" in run.stdout
    assert "J (estimate)" in run.stdout
    assert data.slo.passed is True


def test_processes_gather_every_workers_samples_and_slo_miss_exits_3(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    results = tmp_path / "run.json"
    stats = tmp_path / "locust"
    run = locust(
        *common(server, tiny_checkpoints["led"], results),
        *("--processes", "2", "-u", "2", "-r", "2", "--stage-seconds", "3", "--input-lengths", "1024,2048"),
        *("--p99-ms", "0.001", "--json-file", str(stats)),
    )
    assert run.returncode == 3, run.stderr[-3000:]
    assert "SLO missed: generate@1024: p99" in run.stderr
    data = LoadTestResults.model_validate_json(results.read_text())
    counts = locust_counts(stats)
    for stage, length in zip(data.stages, (1024, 2048), strict=True):
        check_stage(stage, length)
        assert len(stage.nodes) == 2
        assert all(count > 0 for count in stage.nodes.values())
        assert stage.requests == counts[stage.name]
    assert data.slo.passed is False
    assert [violation.split(":")[0] for violation in data.slo.violations] == [
        "generate@1024",
        "generate@2048",
    ]


def test_open_loop_with_idle_baseline(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    results = tmp_path / "run.json"
    run = locust(
        *common(server, tiny_checkpoints["led"], results),
        *("-u", "2", "-r", "2", "--stage-seconds", "2", "--input-lengths", "1024"),
        *("--arrival", "poisson", "--rate", "10", "--idle-seconds", "0.5"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = LoadTestResults.model_validate_json(results.read_text())
    assert (data.arrival, data.rate, data.idle_measured) == ("poisson", 10.0, True)
    assert data.idle is not None
    assert data.idle.source == "estimate"
    stage = data.stages[0]
    check_stage(stage, 1024)
    assert stage.offered_rps == 10.0
    assert 2 <= stage.requests <= 60
    assert stage.net_j_per_query is not None
    assert all(lag >= 0 for lag in stage.lag_ms)
    assert "offered/sent" in run.stdout


def test_stream_records_time_to_first_token_and_per_output_token(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    results = tmp_path / "run.json"
    run = locust(
        *common(server, tiny_checkpoints["led"], results, "--stream"),
        *("-u", "2", "-r", "2", "--stage-seconds", "3", "--input-lengths", "2048"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = LoadTestResults.model_validate_json(results.read_text())
    assert data.stream is True
    stage = data.stages[0]
    check_stage(stage, 2048)
    ok = stage.requests - stage.failures
    assert len(stage.ttft_ms) == ok
    # Each request's first token came before its answer ended, after the server's encoder pass.
    encode_ms = stage.server_timings_ms["encode_ms"]
    for ttft, latency, encode in zip(stage.ttft_ms, stage.latency_ms, encode_ms, strict=True):
        assert encode < ttft < latency
    assert stage.ttft_summary is not None
    assert stage.tpot_summary is not None
    assert stage.output_tokens == 4 * ok  # --max-new-tokens 4: every answer has a TPOT
    assert len(stage.tpot_ms) == ok
    assert all(tpot > 0 for tpot in stage.tpot_ms)
    assert "TTFT p50 ms" in run.stdout


def test_only_host_fetches_the_servers_tokenizer_and_the_table_follows_locusts_stats(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`locust -f loadtests/scrolls.py --host URL` alone: exact lengths cut with the tokenizer the
    server serves; headless, this tool's table comes after locust's own final statistics."""
    results = tmp_path / "run.json"
    run = locust(
        *("--headless", "--host", server.url, "-u", "2", "-r", "2", "--results", str(results)),
        *("--stage-seconds", "2", "--input-lengths", "1024", "--max-new-tokens", "4"),
        *("--warmup-seconds", "0.5", "--min-requests", "2", "--stability", "0"),
        merged=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    data = LoadTestResults.model_validate_json(results.read_text())
    check_stage(data.stages[0], 1024)  # every input exactly 1024 tokens, so the tokenizers agree
    assert [source.source for source in data.workload] == ["sample"]
    out = run.stdout
    locusts = out.index("Response time percentiles")
    ours = out.index(f"generate on {server.url}")
    assert locusts < out.index("Aggregated", locusts) < ours < out.index(f"results: {results}")
    assert "Traceback" not in out


def test_no_server_to_fetch_the_tokenizer_from_is_one_line() -> None:
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = locust("--headless", "--host", host, "--input-lengths", "1024", timeout=60)
    assert run.returncode == 2
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: --host {host}: could not fetch the served model's tokenizer")
    assert "--tokenizer DIR" in line
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--arrival", "poisson"), "--arrival poisson needs --rate"),
        (("--input-lengths", "1024,x"), "argument --input-lengths"),
        (("--dataset", "/no/such/file.jsonl"), "no such file"),
        (("--processes", "2", "--rate", "3"), "add --arrival poisson"),  # the forked workers stop too
    ],
)
def test_bad_flags_stop_locust_with_a_message(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    run = locust(
        "--headless", "--host", "http://127.0.0.1:9", "--tokenizer", str(tmp_path), *args, timeout=60
    )
    assert run.returncode == 2
    assert message in run.stderr


def test_a_stage_beside_a_cpu_burner_is_flagged_disturbed(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path, cpu_burner: psutil.Process
) -> None:
    results = tmp_path / "run.json"
    started, before = time.monotonic(), cpu_burner.cpu_times()
    run = locust(
        *common(server, tiny_checkpoints["led"], results),
        *("-u", "1", "-r", "1", "--stage-seconds", "3", "--input-lengths", "1024"),
    )
    elapsed, after = time.monotonic() - started, cpu_burner.cpu_times()
    assert run.returncode == 0, run.stderr[-3000:]
    (stage,) = LoadTestResults.model_validate_json(results.read_text()).stages
    check_stage(stage, 1024)
    contention = stage.window.contention if stage.window else None
    assert contention is not None
    # The burner's CPU rate over the whole run, expected over the stage's window.
    burner_rate = ((after.user + after.system) - (before.user + before.system)) / elapsed
    assert contention.others_cpu_s >= 0.5 * burner_rate * contention.duration_s
    if burner_rate / contention.cpu_count > 2 * DISTURBED_SHARE:  # a clear share of the machine
        assert contention.disturbed
        assert f"disturbed: generate@1024: others used {contention.others_share:.0%}" in run.stdout
