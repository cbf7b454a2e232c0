"""The results file: one document per load test, with every raw sample and each stage's window.

Schema 1 (``profiler sweep`` reads it; fields are only ever added)::

    {"schema": 1, "host", "mode", "max_new_tokens", "target_length", "arrival", "rate", "users",
     "stage_seconds", "energy": GET /v1/energy, "idle": idle baseline or null,
     "stages": [{"name", "length", "started_wall_s", "ended_wall_s", "duration_s", "offered_rps",
                 "requests", "failures", "failure_reasons", "latency_ms", "server_timings_ms",
                 "request_energy_j", "buckets", "batch_sizes", "input_tokens", "output_tokens",
                 "throughput_rps", "tokens_per_s", "window", "energy_source",
                 "gross_j_per_query", "net_j_per_query", "summary"}, ...],
     "slo": {"p99_ms", "max_fail_ratio", "passed", "violations"}}

See docs/loadtests.md for each field. Percentiles come from :func:`profiler.stats.percentile`,
the project's one percentile function, over the raw samples; nothing is rounded here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.energy.windows import WindowResult
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.samples import TIMING_KEYS, Sample
from profiler.stats import Summary

SCHEMA = 1


@dataclass
class StageRun:
    """What the coordinator saw of one stage, apart from its samples.

    Attributes:
        index / name / length: the stage.
        started_wall_s / ended_wall_s: window opened (load starts) and closed (drained). ``time.time``.
        duration_s: started to ended on the monotonic clock, drain included. Units: s.
        load_s: started until the stage's end was announced (no new requests after it). Units: s.
        offered_rps: the open-loop rate, or None in closed loop.
        window: ``POST /v1/energy/windows/{name}/end``'s answer, or None.
        window_error: why there is no window, if there is none.
        nodes: samples received per load-generating process.
        unsent: open-loop arrivals due before the stage's end that no user was free to send.
        complete: the stage ran its full length and every process sent its last samples in time.
    """

    index: int
    name: str
    length: int
    started_wall_s: float = 0.0
    ended_wall_s: float = 0.0
    duration_s: float = 0.0
    load_s: float = 0.0
    offered_rps: float | None = None
    window: WindowResult | None = None
    window_error: str | None = None
    nodes: dict[str, int] | None = None
    unsent: int = 0
    complete: bool = False


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/mean of raw latencies (None for each when there are none)."""
    if not latencies_ms:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None}
    summary = Summary.from_samples(latencies_ms)
    return {"p50_ms": summary.p50, "p90_ms": summary.p90, "p99_ms": summary.p99, "mean_ms": summary.mean}


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def stage_result(run: StageRun, samples: Sequence[Sample], energy_source: str | None) -> dict[str, Any]:
    """One entry of ``stages``: raw samples, counts, rates, energy and the latency summary.

    Latency figures come from successful requests (a fast 503 would flatter them); failed ones
    keep their own list. Throughput counts successful requests over ``duration_s``.
    """
    ok = [sample for sample in samples if sample.ok]
    failed = [sample for sample in samples if not sample.ok]
    latency = [sample.latency_ms for sample in ok]
    input_tokens = sum(sample.input_tokens for sample in ok)
    output_tokens = sum(sample.output_tokens for sample in ok)
    buckets = Counter(str(sample.bucket) for sample in ok)
    window = run.window
    per_query = window.per_query if window else None
    return {
        "name": run.name,
        "length": run.length,
        "started_wall_s": run.started_wall_s,
        "ended_wall_s": run.ended_wall_s,
        "duration_s": run.duration_s,
        "load_s": run.load_s,
        "offered_rps": run.offered_rps,
        "sent_rps": _rate(len(samples), run.load_s),
        "unsent": run.unsent,
        "requests": len(samples),
        "failures": len(failed),
        "failure_reasons": dict(Counter(sample.reason or "unknown" for sample in failed)),
        "latency_ms": latency,
        "service_ms": [sample.service_ms for sample in ok],
        "lag_ms": [sample.lag_ms for sample in ok],
        "failed_latency_ms": [sample.latency_ms for sample in failed],
        "server_timings_ms": {key: [sample.timings[key] for sample in ok] for key in TIMING_KEYS},
        "request_energy_j": [sample.energy_j for sample in ok if sample.energy_j is not None],
        "buckets": dict(sorted(buckets.items(), key=lambda item: int(item[0]))),
        "batch_sizes": [sample.batch_size for sample in ok],
        "truncated": sum(1 for sample in ok if sample.truncated),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "throughput_rps": _rate(len(ok), run.duration_s),
        "tokens_per_s": _rate(input_tokens + output_tokens, run.duration_s),
        "window": window.model_dump() if window else None,
        "window_error": run.window_error,
        "energy_source": window.measurement.source if window else energy_source,
        "gross_j_per_query": per_query.gross_j if per_query else None,
        "net_j_per_query": per_query.net_j if per_query else None,
        "nodes": run.nodes or {},
        "complete": run.complete,
        "summary": latency_summary(latency),
    }


def evaluate_slo(
    stages: Sequence[Mapping[str, Any]], p99_ms: float | None, max_fail_ratio: float | None
) -> dict[str, Any]:
    """Check every stage against the SLOs; each violation names its stage and the figures.

    A stage with no successful request breaks a p99 SLO, and one with no request at all breaks a
    failure-ratio SLO: an SLO that nothing was measured against has not been met.
    """
    violations: list[str] = []
    for stage in stages:
        name = stage["name"]
        if p99_ms is not None:
            p99 = stage["summary"]["p99_ms"]
            if p99 is None:
                violations.append(f"{name}: no successful request, so p99 <= {p99_ms:g} ms is unmet")
            elif p99 > p99_ms:
                violations.append(f"{name}: p99 {p99:.1f} ms > {p99_ms:g} ms")
        if max_fail_ratio is not None:
            requests, failures = stage["requests"], stage["failures"]
            if requests == 0:
                violations.append(f"{name}: no requests, so failure ratio <= {max_fail_ratio:g} is unmet")
            elif failures / requests > max_fail_ratio:
                violations.append(
                    f"{name}: failure ratio {failures / requests:.3f} ({failures}/{requests}) "
                    f"> {max_fail_ratio:g}"
                )
    return {
        "p99_ms": p99_ms,
        "max_fail_ratio": max_fail_ratio,
        "passed": not violations,
        "violations": violations,
    }


def build_results(
    config: LoadConfig,
    *,
    host: str,
    users: int,
    spawn_rate: float,
    stages: Sequence[dict[str, Any]],
    energy: dict[str, Any] | None,
    idle: dict[str, Any] | None,
    idle_measured: bool,
    server: dict[str, Any] | None,
    workload: Sequence[dict[str, Any]],
    started_wall_s: float,
    ended_wall_s: float,
    complete: bool,
) -> dict[str, Any]:
    """The whole results document (schema 1), SLO verdict included."""
    return {
        "schema": SCHEMA,
        "host": host,
        "mode": config.mode,
        "max_new_tokens": config.max_new_tokens,
        "target_length": config.target_length,
        "arrival": config.arrival,
        "rate": config.rate,
        "users": users,
        "spawn_rate": spawn_rate,
        "stage_seconds": config.stage_seconds,
        "input_lengths": list(config.input_lengths),
        "seed": config.seed,
        "started_wall_s": started_wall_s,
        "ended_wall_s": ended_wall_s,
        "complete": complete,
        "server": server,
        "workload": list(workload),
        "energy": energy,
        "idle": idle,
        "idle_measured": idle_measured,
        "stages": list(stages),
        "slo": evaluate_slo(stages, config.p99_ms, config.max_fail_ratio),
    }


def default_results_path(started_wall_s: float, root: Path = Path("reports")) -> Path:
    """``reports/loadtest-<UTC timestamp>.json``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started_wall_s))
    return root / f"loadtest-{stamp}.json"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null rather than produce an unreadable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_results(results: Mapping[str, Any], path: Path) -> Path:
    """Write the document atomically: a temporary file beside ``path``, then ``os.replace``.

    A reader (the sweep, a person) sees the old file or the whole new one, never half of it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(_finite(dict(results)), out, indent=1, allow_nan=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
