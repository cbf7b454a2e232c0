"""`profiler report FILE` on one load test's results file (what `locust -f loadtests/scrolls.py`
writes), `profiler report --json`, and the one-line refusals of files that are neither."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loadgen.fakes import ENERGY, INFO, ok_sample, window_result
from typer.testing import CliRunner, Result

from profiler.cli import app
from profiler.loadgen.capacity import SearchSpec, Slo, capacity_of, judge
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.results import (
    LoadTestResults,
    StageResult,
    StageRun,
    build_results,
    stage_result,
    write_results,
)
from profiler.loadgen.stopping import StageRules
from profiler.report.document import ReportDocument
from profiler.report.loadtest import report_dir
from profiler.server.launch import ServerProcess, start_server
from profiler.stats import percentile

from .conftest import DATA

ROOT = Path(__file__).resolve().parents[2]
#: Each stage's raw latencies (ms), by input length: the report's figures are checked against
#: percentiles computed here from them.
LATENCIES = {1024: [40.0, 55.0, 61.0, 70.0], 2048: [90.0, 120.0, 150.0]}


def stage(length: int, latencies: list[float]) -> StageResult:
    name = f"generate@{length}"
    run = StageRun(
        index=0,
        name=name,
        length=length,
        duration_s=3.0,
        load_s=3.0,
        window=window_result(name, len(latencies)),
        complete=True,
    )
    return stage_result(run, [ok_sample(0, ms, length) for ms in latencies], "estimate", StageRules())


def loadtest(path: Path, **config: object) -> Path:
    results = build_results(
        LoadConfig(input_lengths=tuple(LATENCIES), **config),  # type: ignore[arg-type]
        host="http://127.0.0.1:8000",
        users=3,
        spawn_rate=3.0,
        stages=[stage(length, latencies) for length, latencies in LATENCIES.items()],
        energy=ENERGY,
        idle=None,
        idle_measured=False,
        server=INFO,
        workload=[],
        started_wall_s=1.7e9,
        ended_wall_s=1.7e9 + 7,
        complete=True,
    )
    return write_results(results, path)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], prog_name="profiler")


def test_a_results_file_is_reported_stage_by_stage(tmp_path: Path) -> None:
    path = loadtest(tmp_path / "loadtest-20261203-120000.json")
    result = invoke("report", path)
    assert result.exit_code == 0, result.output
    out = report_dir(path)
    assert out == tmp_path / "loadtest-20261203-120000-report"
    assert {p.name for p in out.iterdir()} >= {
        "report.md",
        "report.html",
        "summary.csv",
        "latency_vs_length.png",
    }
    with (out / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # One cell per stage: the server's model, eager (no manifest), closed loop at the test's users.
    assert [(r["model"], r["format"], r["engine"], r["input_length"], r["concurrency"]) for r in rows] == [
        ("led", "eager", "eager", "1024", "3"),
        ("led", "eager", "eager", "2048", "3"),
    ]
    for row, latencies in zip(rows, LATENCIES.values(), strict=True):
        assert float(row["p50_ms"]) == pytest.approx(percentile(latencies, 50.0))
        assert row["energy_source"] == "estimate"
        assert float(row["gross_j_per_query"]) == pytest.approx(12.0 / len(latencies))
    markdown = (out / "report.md").read_text()
    assert f"From `{path}`" in markdown
    assert "load test settings (JSON)" in markdown
    assert '"users": 3' in markdown
    assert "(estimate)" in result.output


def test_json_prints_one_document_and_writes_nothing(tmp_path: Path) -> None:
    path = loadtest(tmp_path / "run.json")
    before = sorted(os.listdir(tmp_path))
    result = invoke("report", path, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == before
    document = ReportDocument.model_validate_json(result.stdout)  # stdout is the document, nothing else
    assert (document.kind, document.run_id, document.energy_sources) == ("loadtest", "run", ["estimate"])
    assert [c.input_length for c in document.cells] == list(LATENCIES)
    assert document.cells[1].p50_ms == pytest.approx(percentile(LATENCIES[2048], 50.0))
    titles = [section.title for section in document.sections]
    assert titles[:3] == ["Latency and throughput", "Where the time goes", "Energy and resources"]
    latency = document.sections[0].tables[0]
    headers = [c.header for c in latency.columns]
    p50 = [row[headers.index("p50 ms")] for row in latency.rows]
    assert [e.value for e in p50] == pytest.approx([percentile(v, 50.0) for v in LATENCIES.values()])
    assert all(e.text == f"{e.value:.1f}" for e in p50)


def test_json_of_a_run_directory_with_compare(tmp_path: Path) -> None:
    result = invoke("report", DATA / "gpu-h100", "--compare", DATA / "cpu-demo", "--json")
    assert result.exit_code == 0, result.output
    document = ReportDocument.model_validate_json(result.stdout)
    assert document.kind == "run"
    assert document.environment is not None
    assert document.config is not None
    assert document.config.startswith('run_id = "gpu-h100"')
    assert document.energy_sources == ["nvml-counter"]
    assert document.compare is not None
    assert document.compare.rows
    assert document.compare.title.startswith("Compare: gpu-h100 (new) vs cpu-demo (baseline)")
    assert document.compare_config_diff is not None
    assert document.compare_config_diff[:2] == [
        "--- cpu-demo/config.toml (baseline)",
        "+++ gpu-h100/config.toml (new)",
    ]
    assert '+run_id = "gpu-h100"' in document.compare_config_diff
    raw = json.loads(result.stdout)
    assert raw["schema_version"] == 1
    assert not list(DATA.glob("gpu-h100/report.*"))  # the recorded data was not written into


def test_a_capacity_search_file_reports_its_searches(tmp_path: Path) -> None:
    slo = Slo(latency_ms=100.0)
    results = LoadTestResults.model_validate_json(loadtest(tmp_path / "base.json").read_text())
    probes = [
        judge(
            slo,
            stage=f"{s.name} @ {rate:g} rps",
            offered_rps=rate,
            sent_rps=rate,
            unsent=0,
            duration_s=s.duration_s,
            latency_ms=s.latency_ms,
            failures=0,
            window_j=12.0,
            energy_source="estimate",
        )
        for rate, s in zip((1.0, 2.0), results.stages, strict=True)
    ]
    found = capacity_of(1024, slo, SearchSpec(), probes)
    path = tmp_path / "capacity.json"
    path.write_text(results.model_copy(update={"capacity": [found]}).model_dump_json())
    result = invoke("report", path, "--json")
    assert result.exit_code == 0, result.output
    document = ReportDocument.model_validate_json(result.stdout)
    assert document.cells == []  # a search's stages are its probes, reported by the search
    (section,) = document.sections
    assert section.title == "Capacity under an SLO"
    (row,) = section.tables[0].rows
    assert [e.text for e in row[:4]] == ["led", "eager", "cpu", "1024"]
    assert row[5].value == found.sustained_rps == 1.0  # 2 rps's stage (2048's samples) missed 100 ms


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("not json", ("neither a run directory nor a load test's results file (not JSON",)),
        ('{"cells": []}', ("neither a run directory nor a load test's results file", "without `stages`")),
        ("[1, 2]", ("neither a run directory nor a load test's results file",)),
        ('{"schema_version": 7, "stages": []}', ("schema version 7", "reads version 1")),
        (
            '{"schema_version": 1, "stages": []}',
            ("not a complete load test's results file (host: Field required",),
        ),
    ],
    ids=["text", "other-json", "array", "future-version", "incomplete"],
)
def test_a_file_that_is_neither_is_refused_in_one_line(
    tmp_path: Path, content: str, needles: tuple[str]
) -> None:
    path = tmp_path / "thing.json"
    path.write_text(content)
    assert_one_line_error(invoke("report", path), str(path), *needles)
    assert_one_line_error(invoke("report", path, "--json"), *needles)
    assert_one_line_error(invoke("report", DATA / "cpu-demo", "--compare", path), "comparison run", *needles)


def test_a_results_file_without_a_finished_stage(tmp_path: Path) -> None:
    raw = json.loads(loadtest(tmp_path / "run.json").read_text())
    raw["stages"] = []
    (tmp_path / "run.json").write_text(json.dumps(raw))
    assert_one_line_error(
        invoke("report", tmp_path / "run.json"), "holds no finished stage", "--stage-seconds"
    )


def test_a_run_directory_file_points_at_its_folder() -> None:
    path = DATA / "cpu-demo" / "results.jsonl"
    assert_one_line_error(
        invoke("report", path), "one file of a run directory", f"pass its folder, {path.parent}."
    )


@pytest.fixture(scope="module")
def server(
    tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = start_server(
        tiny_checkpoints["led"], "--threads", "1", log=tmp_path_factory.mktemp("serve") / "serve.log"
    )
    yield process
    process.stop()


@pytest.mark.integration
def test_real_locust_results_are_readable_by_others_and_reported(
    server: ServerProcess, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """`locust -f loadtests/scrolls.py` as documented, then `profiler report` on the file it wrote."""
    results = tmp_path / "loadtest.json"
    umask = os.umask(0o022)
    os.umask(umask)
    locust = subprocess.run(
        [
            str(Path(sys.executable).parent / "locust"),
            *("-f", "loadtests/scrolls.py", "--headless", "--host", server.url),
            *("--tokenizer", str(tiny_checkpoints["led"]), "--results", str(results)),
            *("-u", "1", "-r", "1", "--stage-seconds", "2", "--input-lengths", "1024,2048"),
            *("--max-new-tokens", "4", "--only-summary", "--warmup-seconds", "0.5"),
            *("--min-requests", "2", "--stability", "0"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert locust.returncode == 0, locust.stderr[-3000:]
    assert results.stat().st_mode & 0o777 == 0o666 & ~umask  # 0644 under the usual umask, not 0600
    stages = LoadTestResults.model_validate_json(results.read_text()).stages
    report = subprocess.run(
        [sys.executable, "-m", "profiler", "report", str(results)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    with (report_dir(results) / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["format"], r["input_length"]) for r in rows] == [
        ("led", "eager", "1024"),
        ("led", "eager", "2048"),
    ]
    for row, stage in zip(rows, stages, strict=True):
        assert float(row["p50_ms"]) == pytest.approx(percentile(stage.latency_ms, 50.0))
        assert row["energy_source"] == "estimate"
    assert (report_dir(results) / "report.html").stat().st_size > 0
    assert "(estimate)" in report.stdout
