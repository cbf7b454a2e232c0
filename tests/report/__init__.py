"""Helpers for report tests: result records built as :class:`profiler.results.ResultRecord`, the
type ``profiler sweep`` writes and the report reads (the energy window by the classes the server
uses)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from profiler.energy.baseline import IdleBaseline, PerQueryEnergy
from profiler.energy.common import Source
from profiler.energy.contention import Contention
from profiler.energy.meter import Measurement
from profiler.energy.timeline import TimelineSample
from profiler.energy.windows import WindowResult
from profiler.environment import Environment
from profiler.loadgen.config import Arrival
from profiler.loadgen.results import StageResult
from profiler.results import AccuracyRecord, LoadShape, ResultRecord
from profiler.rundir import RunDirectory


def make_record(
    model: str = "led-small",
    fmt: str = "onnx",
    length: int = 1024,
    concurrency: int | None = 1,
    repeat: int = 1,
    latency_ms: Sequence[float] = (100.0, 110.0, 120.0),
    *,
    engine: str | None = None,
    device: str = "cpu",
    rate: float | None = None,
    source: str | None = "estimate",
    gross_j: float | None = 1.0,
    net_j: float | None = 0.8,
    net_clamped: bool = False,
    throughput_rps: float = 10.0,
    tokens_per_s: float | None = None,
    duration_s: float = 4.0,
    window_j: float | None = 40.0,
    idle_w: float | None = 2.0,
    timeline: list[TimelineSample] | None = None,
    failures: int = 0,
    failure_reasons: dict[str, int] | None = None,
    peak_rss_bytes: int | None = 300 * 2**20,
    peak_gpu_memory_bytes: int | None = None,
    max_new_tokens: int = 32,
    run_id: str = "test-run",
    contention: Contention | None = None,
) -> ResultRecord:
    """One result record; energy fields None where ``source`` is None (not measured)."""
    engine = engine or fmt
    arrival: Arrival = "closed" if rate is None else "poisson"
    level = f"closed:{concurrency}" if rate is None else f"poisson:{rate:g}"
    requests = len(latency_ms) + failures
    completed = len(latency_ms)
    window = None
    if source is not None and window_j is not None:
        measurement = Measurement(
            name=f"generate@{length}",
            source=cast(Source, source),
            duration_s=duration_s,
            energy_j={"cpu" if device == "cpu" else "gpu:0": window_j},
            start_monotonic_s=100.0,
            end_monotonic_s=100.0 + duration_s,
            start_wall_s=1.7e9,
            method="test",
        )
        per_query = PerQueryEnergy(
            source=cast(Source, source),
            completed=completed,
            energy_j=window_j,
            idle_j=(idle_w or 0.0) * duration_s,
            gross_j=gross_j if gross_j is not None else window_j / max(completed, 1),
            net_j=net_j,
            clamped=net_clamped,
        )
        window = WindowResult(
            measurement=measurement,
            completed=completed,
            per_query=per_query,
            idle=None,
            contention=contention,
        )
    return ResultRecord(
        run_id=run_id,
        cell=f"{model}|{fmt}|{level}|repeat {repeat}|{length}",
        model=model,
        checkpoint=f"/models/{model}",
        format=fmt,
        engine=engine,
        device=device,
        bucket=length,
        mode="generate",
        max_new_tokens=max_new_tokens,
        load=LoadShape(arrival=arrival, concurrency=concurrency if rate is None else None, rate=rate),
        repeat=repeat,
        stage=StageResult(
            name=f"generate@{length}",
            length=length,
            started_wall_s=1.7e9,
            ended_wall_s=1.7e9 + duration_s,
            duration_s=duration_s,
            load_s=duration_s,
            offered_rps=rate,
            sent_rps=requests / duration_s,
            unsent=0,
            requests=requests,
            failures=failures,
            failure_reasons=failure_reasons or {},
            latency_ms=list(latency_ms),
            service_ms=list(latency_ms),
            lag_ms=[0.0] * completed,
            failed_latency_ms=[1.0] * failures,
            server_timings_ms={},
            request_energy_j=[],
            buckets={str(length): completed},
            batch_sizes=[1] * completed,
            truncated=0,
            input_tokens=completed * length,
            output_tokens=completed * max_new_tokens,
            throughput_rps=throughput_rps,
            tokens_per_s=tokens_per_s
            if tokens_per_s is not None
            else throughput_rps * (length + max_new_tokens),
            window=window,
            window_error=None,
            energy_source=cast(Source, source),
            nodes={"local": requests},
            complete=True,
        ),
        idle=None
        if idle_w is None or source is None
        else IdleBaseline(source=cast(Source, source), duration_s=3.0, power_w={"cpu": idle_w}),
        timeline=timeline or [],
        peak_rss_bytes=peak_rss_bytes,
        peak_gpu_memory_bytes=peak_gpu_memory_bytes,
        recorded_wall_s=1.7e9,
    )


def stage_contention(others_cpu_s: float, load: float) -> Contention:
    """A 4 s stage on a 2-CPU server that used 2 s of CPU, while others used ``others_cpu_s``."""
    return Contention(
        duration_s=4.0,
        cpu_count=2,
        capacity_cpu_s=8.0,
        busy_cpu_s=2.0 + others_cpu_s,
        steal_cpu_s=0.0,
        server_cpu_s=2.0,
        load_generator_cpu_s=None,
        load_average_open=load,
        load_average_close=load,
        gpu_processes=None,
    )


def write_run(
    directory: Path,
    records: Sequence[ResultRecord | dict[str, Any]],
    accuracy: Sequence[AccuracyRecord | dict[str, Any]] | None = None,
    environment: Environment | dict[str, Any] | None = None,
) -> Path:
    """A run directory holding ``records`` (and ``accuracy.jsonl`` / ``environment.json`` if given).

    A dict is written as it is: that is how a test writes a record that is not a valid one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.toml").write_text('run_id = "test-run"\n', encoding="utf-8")
    (directory / "results.jsonl").write_text("".join(_line(r) for r in records), encoding="utf-8")
    if accuracy is not None:
        (directory / "accuracy.jsonl").write_text("".join(_line(a) for a in accuracy), encoding="utf-8")
    if isinstance(environment, Environment):
        RunDirectory(directory).write_environment(environment)
    elif environment is not None:
        (directory / "environment.json").write_text(_line(environment), encoding="utf-8")
    return directory


def _line(document: Any) -> str:
    return (
        document.model_dump_json() if hasattr(document, "model_dump_json") else json.dumps(document)
    ) + "\n"
