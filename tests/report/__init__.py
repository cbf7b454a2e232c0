"""Helpers for report tests: result records shaped as ``profiler sweep`` writes them (the energy
window is built by the same classes the server uses)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from profiler.energy.baseline import PerQueryEnergy
from profiler.energy.common import Source
from profiler.energy.meter import Measurement
from profiler.energy.windows import WindowResult


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
    timeline: list[dict[str, Any]] | None = None,
    failures: int = 0,
    failure_reasons: dict[str, int] | None = None,
    peak_rss_bytes: int | None = 300 * 2**20,
    peak_gpu_memory_bytes: int | None = None,
    max_new_tokens: int = 32,
    run_id: str = "test-run",
) -> dict[str, Any]:
    """One schema-1 result record; energy fields None where ``source`` is None (not measured)."""
    engine = engine or fmt
    arrival = "closed" if rate is None else "poisson"
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
            measurement=measurement, completed=completed, per_query=per_query, idle=None
        ).model_dump()
    return {
        "schema": 1,
        "run_id": run_id,
        "cell": f"{model}|{fmt}|{level}|repeat {repeat}|{length}",
        "model": model,
        "checkpoint": f"/models/{model}",
        "format": fmt,
        "engine": engine,
        "device": device,
        "bucket": length,
        "mode": "generate",
        "max_new_tokens": max_new_tokens,
        "load": {"arrival": arrival, "concurrency": concurrency if rate is None else None, "rate": rate},
        "repeat": repeat,
        "stage": {
            "name": f"generate@{length}",
            "length": length,
            "started_wall_s": 1.7e9,
            "ended_wall_s": 1.7e9 + duration_s,
            "duration_s": duration_s,
            "offered_rps": rate,
            "requests": requests,
            "failures": failures,
            "failure_reasons": failure_reasons or {},
            "latency_ms": list(latency_ms),
            "server_timings_ms": {},
            "request_energy_j": [],
            "buckets": {str(length): completed},
            "batch_sizes": [],
            "input_tokens": completed * length,
            "output_tokens": completed * max_new_tokens,
            "throughput_rps": throughput_rps,
            "tokens_per_s": tokens_per_s
            if tokens_per_s is not None
            else throughput_rps * (length + max_new_tokens),
            "window": window,
            "energy_source": source,
            "gross_j_per_query": gross_j if source is not None else None,
            "net_j_per_query": net_j if source is not None else None,
            "summary": {},
        },
        "idle": None
        if idle_w is None or source is None
        else {"source": source, "duration_s": 3.0, "power_w": {"cpu": idle_w}, "warnings": []},
        "timeline": timeline or [],
        "peak_rss_bytes": peak_rss_bytes,
        "peak_gpu_memory_bytes": peak_gpu_memory_bytes,
        "energy_source": source,
        "recorded_wall_s": 1.7e9,
    }


def write_run(
    directory: Path,
    records: Sequence[dict[str, Any]],
    accuracy: Sequence[dict[str, Any]] | None = None,
    environment: dict[str, Any] | None = None,
) -> Path:
    """A run directory holding ``records`` (and ``accuracy.jsonl`` / ``environment.json`` if given)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.toml").write_text('run_id = "test-run"\n', encoding="utf-8")
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (directory / "results.jsonl").write_text(lines, encoding="utf-8")
    if accuracy is not None:
        (directory / "accuracy.jsonl").write_text(
            "".join(json.dumps(a) + "\n" for a in accuracy), encoding="utf-8"
        )
    if environment is not None:
        (directory / "environment.json").write_text(json.dumps(environment), encoding="utf-8")
    return directory
