"""The results file: its schema (what the sweep reads), SLO evaluation, atomic writing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from profiler.loadgen.config import LoadConfig
from profiler.loadgen.results import (
    StageRun,
    build_results,
    default_results_path,
    evaluate_slo,
    stage_result,
    write_results,
)

from .fakes import ENERGY, ok_sample

#: The schema the sweep reads (docs/loadtests.md); fields may be added, never removed or renamed.
TOP_KEYS = {
    "schema", "host", "mode", "max_new_tokens", "target_length", "arrival", "rate", "users",
    "stage_seconds", "energy", "idle", "stages", "slo",
}  # fmt: skip
STAGE_KEYS = {
    "name", "length", "started_wall_s", "ended_wall_s", "duration_s", "offered_rps", "requests",
    "failures", "failure_reasons", "latency_ms", "server_timings_ms", "request_energy_j", "buckets",
    "batch_sizes", "input_tokens", "output_tokens", "throughput_rps", "tokens_per_s", "window",
    "energy_source", "gross_j_per_query", "net_j_per_query", "summary",
}  # fmt: skip


def results_for(stages: list[dict[str, Any]], **config: object) -> dict[str, Any]:
    return build_results(
        LoadConfig(**config),  # type: ignore[arg-type]
        host="http://h:1",
        users=2,
        spawn_rate=2.0,
        stages=stages,
        energy=dict(ENERGY),
        idle=None,
        idle_measured=False,
        server=None,
        workload=[],
        started_wall_s=1.0,
        ended_wall_s=2.0,
        complete=True,
    )


def one_stage() -> dict[str, Any]:
    run = StageRun(index=0, name="generate@1024", length=1024, duration_s=2.0, load_s=2.0)
    return stage_result(run, [ok_sample(0, 10.0), ok_sample(0, 30.0)], "estimate")


def test_schema_has_every_field_the_sweep_reads() -> None:
    results = results_for([one_stage()])
    assert set(results) >= TOP_KEYS
    assert results["schema"] == 1
    stage = results["stages"][0]
    assert set(stage) >= STAGE_KEYS
    assert set(stage["server_timings_ms"]) == {
        "queue_ms",
        "tokenize_ms",
        "encode_ms",
        "decode_ms",
        "total_ms",
    }
    assert set(stage["summary"]) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms"}
    assert set(results["slo"]) == {"p99_ms", "max_fail_ratio", "passed", "violations"}
    json.dumps(results, allow_nan=False)  # plain JSON


def test_stage_figures_from_raw_samples() -> None:
    stage = one_stage()
    assert stage["latency_ms"] == [10.0, 30.0]
    assert stage["summary"] == {"p50_ms": 20.0, "p90_ms": 28.0, "p99_ms": 29.8, "mean_ms": 20.0}
    assert stage["throughput_rps"] == 1.0
    assert stage["input_tokens"] == 2048
    assert stage["output_tokens"] == 4
    assert stage["tokens_per_s"] == 1026.0
    assert stage["request_energy_j"] == [0.25, 0.25]
    assert stage["energy_source"] == "estimate"
    assert stage["gross_j_per_query"] is None


def test_empty_stage_has_null_summary() -> None:
    stage = stage_result(StageRun(index=0, name="encode@4096", length=4096), [], None)
    assert stage["requests"] == 0
    assert stage["summary"]["p99_ms"] is None
    assert stage["throughput_rps"] == 0.0


def test_slo_evaluation() -> None:
    stage = one_stage()
    assert evaluate_slo([stage], None, None) == {
        "p99_ms": None,
        "max_fail_ratio": None,
        "passed": True,
        "violations": [],
    }
    assert evaluate_slo([stage], 30.0, 0.0)["passed"] is True
    missed = evaluate_slo([stage], 29.0, None)
    assert missed["violations"] == ["generate@1024: p99 29.8 ms > 29 ms"]
    empty = stage_result(StageRun(index=1, name="generate@2048", length=2048), [], None)
    verdict = evaluate_slo([stage, empty], 100.0, 0.5)
    assert verdict["passed"] is False
    assert [v.split(":")[0] for v in verdict["violations"]] == ["generate@2048", "generate@2048"]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep" / "run.json"
    write_results({"schema": 1, "nan": float("nan")}, path)
    assert json.loads(path.read_text()) == {"schema": 1, "nan": None}

    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(OSError, match="disk full"):
        write_results({"schema": 2}, path)
    assert json.loads(path.read_text())["schema"] == 1  # the old file is untouched
    assert os.listdir(path.parent) == ["run.json"]  # no temporary file left behind


def test_default_path_is_under_reports() -> None:
    assert default_results_path(0.0) == Path("reports/loadtest-19700101-000000.json")
