"""The results file: one typed document (what the sweep reads), SLO evaluation, atomic writing."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

from profiler.energy.contention import Contention
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.results import (
    LatencySummary,
    LoadTestResults,
    SloVerdict,
    StageResult,
    StageRun,
    build_results,
    default_results_path,
    evaluate_slo,
    stage_result,
    write_results,
)
from profiler.loadgen.stopping import StageRules
from profiler.loadgen.table import print_results

from .fakes import ENERGY, INFO, ok_sample, window_result


def results_for(stages: list[StageResult], **config: object) -> LoadTestResults:
    return build_results(
        LoadConfig(**config),  # type: ignore[arg-type]
        host="http://h:1",
        users=2,
        spawn_rate=2.0,
        stages=stages,
        energy=ENERGY,
        idle=None,
        idle_measured=False,
        server=INFO,
        workload=[],
        started_wall_s=1.0,
        ended_wall_s=2.0,
        complete=True,
    )


def one_stage() -> StageResult:
    run = StageRun(index=0, name="generate@1024", length=1024, duration_s=2.0, load_s=2.0)
    return stage_result(run, [ok_sample(0, 10.0), ok_sample(0, 30.0)], "estimate", StageRules())


def test_the_file_round_trips_through_its_one_type(tmp_path: Path) -> None:
    results = results_for([one_stage()], p99_ms=25.0)
    path = write_results(results, tmp_path / "run.json")
    text = path.read_text()
    assert LoadTestResults.model_validate_json(text) == results
    raw = json.loads(text)
    assert raw["schema_version"] == 1
    # Derived figures are written for people and other tools, and recomputed on reading.
    assert raw["stages"][0]["summary"] == {"p50_ms": 20.0, "p90_ms": 28.0, "p99_ms": 29.8, "mean_ms": 20.0}
    assert raw["slo"]["passed"] is False
    raw["stages"][0]["summary"]["p50_ms"] = 1.0
    raw["slo"]["passed"] = True
    again = LoadTestResults.model_validate(raw)
    assert again.stages[0].summary.p50_ms == 20.0
    assert again.slo.passed is False


def test_a_field_of_the_wrong_type_or_unknown_is_named() -> None:
    raw = json.loads(results_for([one_stage()]).model_dump_json())
    raw["stages"][0]["requests"] = "2"
    raw["stages"][0]["p95_ms"] = 1.0
    with pytest.raises(ValidationError) as caught:
        LoadTestResults.model_validate(raw)
    assert {".".join(map(str, e["loc"])) for e in caught.value.errors()} == {
        "stages.0.requests",
        "stages.0.p95_ms",
    }


def test_stage_figures_from_raw_samples() -> None:
    stage = one_stage()
    assert stage.latency_ms == [10.0, 30.0]
    assert stage.summary == LatencySummary(p50_ms=20.0, p90_ms=28.0, p99_ms=29.8, mean_ms=20.0)
    assert stage.throughput_rps == 1.0
    assert stage.input_tokens == 2048
    assert stage.output_tokens == 4
    assert stage.tokens_per_s == 1026.0
    assert stage.request_energy_j == [0.25, 0.25]
    assert stage.energy_source == "estimate"
    assert stage.gross_j_per_query is None
    assert set(stage.server_timings_ms) == {
        "queue_ms",
        "tokenize_ms",
        "encode_ms",
        "first_step_ms",
        "decode_ms",
        "total_ms",
    }
    assert (stage.ttft_ms, stage.tpot_ms, stage.ttft_summary, stage.tpot_summary) == ([], [], None, None)


def test_streamed_samples_give_ttft_and_tpot_and_older_files_still_load() -> None:
    run = StageRun(index=0, name="generate@1024", length=1024, duration_s=2.0, load_s=2.0)
    samples = [
        replace(ok_sample(0, 10.0), ttft_ms=4.0, tpot_ms=2.0),
        replace(ok_sample(0, 30.0), ttft_ms=8.0, tpot_ms=None),
        replace(ok_sample(0, 30.0), ok=False, ttft_ms=1.0, tpot_ms=1.0),
    ]
    stage = stage_result(run, samples, "estimate", StageRules())
    assert (stage.ttft_ms, stage.tpot_ms) == ([4.0, 8.0], [2.0])
    assert stage.ttft_summary == LatencySummary(p50_ms=6.0, p90_ms=7.6, p99_ms=7.96, mean_ms=6.0)
    assert stage.tpot_summary is not None
    assert stage.tpot_summary.p50_ms == 2.0
    streamed = results_for([stage], stream=True)
    raw = json.loads(streamed.model_dump_json())
    assert (raw["stream"], raw["stages"][0]["ttft_ms"], raw["stages"][0]["tpot_summary"]["p50_ms"]) == (
        True,
        [4.0, 8.0],
        2.0,
    )
    assert LoadTestResults.model_validate(raw) == streamed
    # Files written before streaming existed (no stream flag, no TTFT or TPOT) still load.
    raw = json.loads(results_for([one_stage()]).model_dump_json())
    del raw["stream"]
    for key in ("ttft_ms", "tpot_ms", "ttft_summary", "tpot_summary"):
        del raw["stages"][0][key]
    old = LoadTestResults.model_validate(raw)
    assert (old.stream, old.stages[0].ttft_ms, old.stages[0].ttft_summary) == (False, [], None)


def test_empty_stage_has_null_summary() -> None:
    stage = stage_result(StageRun(index=0, name="encode@4096", length=4096), [], None, StageRules())
    assert stage.requests == 0
    assert stage.summary.p99_ms is None
    assert stage.throughput_rps == 0.0


def test_slo_evaluation() -> None:
    stage = one_stage()
    assert evaluate_slo([stage], None, None) == SloVerdict(p99_ms=None, max_fail_ratio=None, violations=[])
    assert evaluate_slo([stage], None, None).passed
    assert evaluate_slo([stage], 30.0, 0.0).passed is True
    missed = evaluate_slo([stage], 29.0, None)
    assert missed.violations == ["generate@1024: p99 29.8 ms > 29 ms"]
    empty = stage_result(StageRun(index=1, name="generate@2048", length=2048), [], None, StageRules())
    verdict = evaluate_slo([stage, empty], 100.0, 0.5)
    assert verdict.passed is False
    assert [v.split(":")[0] for v in verdict.violations] == ["generate@2048", "generate@2048"]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep" / "run.json"
    first = results_for([one_stage()])
    write_results(first, path)
    assert LoadTestResults.model_validate_json(path.read_text()) == first

    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_results(results_for([]), path)
    assert LoadTestResults.model_validate_json(path.read_text()) == first  # the old file is untouched
    assert os.listdir(path.parent) == ["run.json"]  # no temporary file left behind


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_has_the_mode_any_new_file_gets(tmp_path: Path, umask: int, mode: int) -> None:
    """Readable by others under the usual umask (it was 0600 from a temporary file), never more
    than the umask allows, and the same when it replaces an older file."""
    path = tmp_path / "run.json"
    previous = os.umask(umask)
    try:
        write_results(results_for([one_stage()]), path)
        assert path.stat().st_mode & 0o777 == mode
        path.chmod(0o600)
        write_results(results_for([one_stage()]), path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_default_path_is_under_reports() -> None:
    assert default_results_path(0.0) == Path("reports/loadtest-19700101-000000.json")


def _contention(others_cpu_s: float) -> Contention:
    """A 1 s window of a 2-CPU server that used 0.5 s, while others used ``others_cpu_s``."""
    return Contention(
        duration_s=1.0,
        cpu_count=2,
        capacity_cpu_s=2.0,
        busy_cpu_s=0.5 + others_cpu_s,
        steal_cpu_s=0.0,
        server_cpu_s=0.5,
        load_generator_cpu_s=None,
        load_average_open=4.8,
        load_average_close=5.2,
        gpu_processes=None,
    )


def test_the_table_prints_a_line_for_each_disturbed_stage() -> None:
    stages = [
        one_stage().model_copy(
            update={"name": name, "window": window_result(name, 2).model_copy(update={"contention": c})}
        )
        for name, c in (("generate@1024", _contention(0.76)), ("generate@2048", _contention(0.1)))
    ]
    out = io.StringIO()
    print_results(results_for(stages), None, Console(file=out, width=200))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("disturbed")]
    assert lines == ["disturbed: generate@1024: others used 38% of the CPUs (load 5.2)."]
