"""The locust results file: one document per load test, with every raw sample and each stage's
energy window, typed once here for its writer (the coordinator), the sweep that reads it and the
tests. Figures derived from other fields (each stage's latency summary and J/query, whether the
SLOs passed) are written out for people and other tools and recomputed, never trusted, on reading.

Percentiles come from :func:`profiler.stats.percentile`, the project's one percentile function, over
the raw samples; nothing is rounded here. See docs/loadtests.md for each field.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, computed_field

from profiler.api import EnergyInfo, ServerInfo
from profiler.attention_layout import GlobalAttention
from profiler.documents import Document
from profiler.energy.baseline import IdleBaseline
from profiler.energy.common import Source
from profiler.energy.windows import WindowResult
from profiler.loadgen.capacity import Capacity
from profiler.loadgen.config import Arrival, LoadConfig
from profiler.loadgen.payloads import WorkloadSource
from profiler.loadgen.samples import TIMING_KEYS, Sample
from profiler.loadgen.stopping import (
    EndReason,
    MeasurementWindow,
    StageRules,
    is_stable,
    measurement_windows,
)
from profiler.modes import Mode
from profiler.stats import Summary


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
        key: the announcement's number in the run, which the load processes tag samples with
            (a stage's warm-up is announced under its own).
        warmup_requests: requests of the warm-up before the stage, left out of its figures.
        end_reason: why the stage ended (:data:`~profiler.loadgen.stopping.EndReason`).
    """

    index: int
    name: str
    length: int
    key: int = 0
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
    warmup_requests: int = 0
    end_reason: EndReason | None = None


class LatencySummary(Document):
    """p50/p90/p99/mean of a stage's successful requests; None for each when there are none. Units: ms."""

    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None

    @classmethod
    def of(cls, latencies_ms: Sequence[float]) -> LatencySummary:
        if not latencies_ms:
            return cls(p50_ms=None, p90_ms=None, p99_ms=None, mean_ms=None)
        summary = Summary.from_samples(latencies_ms)
        return cls(p50_ms=summary.p50, p90_ms=summary.p90, p99_ms=summary.p99, mean_ms=summary.mean)


class StageResult(Document):
    """One stage (one input length) of a load test: raw samples, counts, rates and its energy window.

    Latency lists hold successful requests only (a fast 503 would flatter them); failed requests
    keep ``failed_latency_ms``. Rates count successful requests over ``duration_s``. Times are
    ``time.time()`` (``*_wall_s``) or seconds; latencies are ms.

    Attributes:
        load_s: from the stage's start until its end was announced (no new requests after it).
        duration_s: start to the end of the drain, on the monotonic clock.
        offered_rps / sent_rps: the open-loop rate asked for (None in closed loop) and sent.
        unsent: open-loop arrivals due in the stage that no user was free to send.
        buckets: requests per encoder bucket (keys are the bucket lengths, as JSON keys).
        truncated: inputs the server cut to its largest bucket.
        window / window_error: the stage's energy window, or why there is none.
        energy_source: the window's source, or the server's where no window was measured.
        nodes: samples received from each load-generating process.
        complete: the stage ran its full length and every process sent its last samples in time.
        completed_s: when each successful request was answered, in seconds from the stage's
            start, in ``latency_ms``'s order (the stability windows come from these).
        warmup_requests: requests of the warm-up before the stage, left out of every figure.
        rules: how long the stage was to run; None in results written before stages had rules.
        end_reason: ``measured`` (rules met), ``cap`` (``max_stage_seconds`` reached first),
            ``overloaded`` (open loop, latency still rising) or ``stopped`` (the run was
            interrupted); None in older results.
        ttft_ms / tpot_ms: time to the first token and per output token after it, of the successful
            streamed requests (``--stream``; empty otherwise, and in files written before them).
            TTFT counts from the same start as latency; TPOT leaves out single-token answers.
    """

    name: str
    length: int
    started_wall_s: float
    ended_wall_s: float
    duration_s: float
    load_s: float
    offered_rps: float | None
    sent_rps: float
    unsent: int
    requests: int
    failures: int
    failure_reasons: dict[str, int]
    latency_ms: list[float]
    service_ms: list[float]
    lag_ms: list[float]
    failed_latency_ms: list[float]
    server_timings_ms: dict[str, list[float]]
    request_energy_j: list[float]
    buckets: dict[str, int]
    batch_sizes: list[int]
    truncated: int
    input_tokens: int
    output_tokens: int
    throughput_rps: float
    tokens_per_s: float
    window: WindowResult | None
    window_error: str | None
    energy_source: Source | None
    nodes: dict[str, int]
    complete: bool
    completed_s: list[float] = Field(default_factory=list)
    warmup_requests: int = 0
    rules: StageRules | None = None
    end_reason: EndReason | None = None
    ttft_ms: list[float] = Field(default_factory=list)
    tpot_ms: list[float] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> LatencySummary:
        return LatencySummary.of(self.latency_ms)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ttft_summary(self) -> LatencySummary | None:
        """Of ``ttft_ms``; None when nothing was streamed."""
        return LatencySummary.of(self.ttft_ms) if self.ttft_ms else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tpot_summary(self) -> LatencySummary | None:
        """Of ``tpot_ms``; None when no streamed answer had two tokens or more."""
        return LatencySummary.of(self.tpot_ms) if self.tpot_ms else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gross_j_per_token(self) -> float | None:
        """The window's energy over the tokens its successful requests generated; None without a
        window or a generated token (encode mode). Units: J."""
        if self.window is None or not self.output_tokens:
            return None
        return self.window.measurement.total_j / self.output_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gross_j_per_good_query(self) -> float | None:
        """The window's energy over its successful requests only: failed ones are paid for, not
        counted. None without a window or a success. Units: J."""
        if self.window is None or not self.latency_ms:
            return None
        return self.window.measurement.total_j / len(self.latency_ms)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def windows(self) -> list[MeasurementWindow]:
        """The stability windows of the successful requests answered while the stage sent load
        (none without rules), as its end was judged: the drain after it, fewer requests in flight
        each moment, is no steady state, and would make the last window of a closed loop with
        several users look slower than the rest."""
        if self.rules is None or len(self.completed_s) != len(self.latency_ms):
            return []
        loaded = [
            (at, ms) for at, ms in zip(self.completed_s, self.latency_ms, strict=True) if at <= self.load_s
        ]
        return measurement_windows(
            [at for at, _ in loaded], [ms for _, ms in loaded], self.rules.window_requests
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stable(self) -> bool | None:
        """Whether the last windows agreed; None with too few windows, no rules, or the check off."""
        if self.rules is None or self.rules.stability == 0:
            return None
        return is_stable(self.windows, self.rules.stability, open_loop=self.offered_rps is not None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def enough_requests(self) -> bool | None:
        """Whether the stage answered its ``min_requests`` successfully; None without rules."""
        return None if self.rules is None else len(self.latency_ms) >= self.rules.min_requests

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gross_j_per_query(self) -> float | None:
        """The window's energy over its completed queries. Units: J."""
        per_query = self.window.per_query if self.window else None
        return per_query.gross_j if per_query else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def net_j_per_query(self) -> float | None:
        """Gross minus idle power over the window; None without an idle baseline. Units: J."""
        per_query = self.window.per_query if self.window else None
        return per_query.net_j if per_query else None


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def stage_result(
    run: StageRun, samples: Sequence[Sample], energy_source: Source | None, rules: StageRules
) -> StageResult:
    """One entry of ``stages`` from what the coordinator saw and every sample of the stage."""
    ok = [sample for sample in samples if sample.ok]
    failed = [sample for sample in samples if not sample.ok]
    input_tokens = sum(sample.input_tokens for sample in ok)
    output_tokens = sum(sample.output_tokens for sample in ok)
    buckets = Counter(sample.bucket for sample in ok if sample.bucket is not None)
    window = run.window
    return StageResult(
        name=run.name,
        length=run.length,
        started_wall_s=run.started_wall_s,
        ended_wall_s=run.ended_wall_s,
        duration_s=run.duration_s,
        load_s=run.load_s,
        offered_rps=run.offered_rps,
        sent_rps=_rate(len(samples), run.load_s),
        unsent=run.unsent,
        requests=len(samples),
        failures=len(failed),
        failure_reasons=dict(Counter(sample.reason or "unknown" for sample in failed)),
        latency_ms=[sample.latency_ms for sample in ok],
        service_ms=[sample.service_ms for sample in ok],
        lag_ms=[sample.lag_ms for sample in ok],
        failed_latency_ms=[sample.latency_ms for sample in failed],
        server_timings_ms={key: [sample.timings[key] for sample in ok] for key in TIMING_KEYS},
        request_energy_j=[sample.energy_j for sample in ok if sample.energy_j is not None],
        buckets={str(bucket): n for bucket, n in sorted(buckets.items())},
        batch_sizes=[sample.batch_size for sample in ok if sample.batch_size is not None],
        truncated=sum(1 for sample in ok if sample.truncated),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        throughput_rps=_rate(len(ok), run.duration_s),
        tokens_per_s=_rate(input_tokens + output_tokens, run.duration_s),
        window=window,
        window_error=run.window_error,
        energy_source=window.measurement.source if window else energy_source,
        nodes=run.nodes or {},
        complete=run.complete,
        completed_s=[completed_s(sample, run.started_wall_s) for sample in ok],
        warmup_requests=run.warmup_requests,
        rules=StageRules.model_validate(rules.model_dump(include=set(StageRules.model_fields))),
        end_reason=run.end_reason,
        ttft_ms=[sample.ttft_ms for sample in ok if sample.ttft_ms is not None],
        tpot_ms=[sample.tpot_ms for sample in ok if sample.tpot_ms is not None],
    )


def completed_s(sample: Sample, stage_started_wall_s: float) -> float:
    """When ``sample`` was answered, in seconds from its stage's start."""
    return sample.sent_wall_s + sample.service_ms / 1000.0 - stage_started_wall_s


class SloVerdict(Document):
    """Every stage checked against the load test's SLOs; each violation names its stage and figures."""

    p99_ms: float | None
    max_fail_ratio: float | None
    violations: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return not self.violations


def evaluate_slo(
    stages: Sequence[StageResult], p99_ms: float | None, max_fail_ratio: float | None
) -> SloVerdict:
    """Check every stage against the SLOs.

    A stage with no successful request breaks a p99 SLO, and one with no request at all breaks a
    failure-ratio SLO: an SLO that nothing was measured against has not been met.
    """
    violations: list[str] = []
    for stage in stages:
        name = stage.name
        if p99_ms is not None:
            p99 = stage.summary.p99_ms
            if p99 is None:
                violations.append(f"{name}: no successful request, so p99 <= {p99_ms:g} ms is unmet")
            elif p99 > p99_ms:
                violations.append(f"{name}: p99 {p99:.1f} ms > {p99_ms:g} ms")
        if max_fail_ratio is not None:
            requests, failures = stage.requests, stage.failures
            if requests == 0:
                violations.append(f"{name}: no requests, so failure ratio <= {max_fail_ratio:g} is unmet")
            elif failures / requests > max_fail_ratio:
                violations.append(
                    f"{name}: failure ratio {failures / requests:.3f} ({failures}/{requests}) "
                    f"> {max_fail_ratio:g}"
                )
    return SloVerdict(p99_ms=p99_ms, max_fail_ratio=max_fail_ratio, violations=violations)


class LoadTestResults(Document):
    """The whole results file of one load test.

    Attributes:
        schema_version: this layout's version; a reader refuses one it does not know.
        host: the server loaded.
        users / spawn_rate: locust's; in open loop the users only carry the rate.
        rate: open-loop arrivals per second across all users; None in closed loop.
        started_wall_s / ended_wall_s: the whole test. ``time.time()``.
        complete: every stage ran its full length.
        global_attention: LED's global attention the requests asked for; None: the server's default
            (``server.global_attention``).
        stream: the requests asked for streamed answers (``--stream``); stages then have TTFT
            and TPOT.
        server: ``GET /v1/info`` before the load; None if it could not be read.
        workload: where each length's documents came from.
        energy: ``GET /v1/energy`` before the load; None if it could not be read.
        idle / idle_measured: the idle baseline the windows subtract, and whether this test
            measured it (otherwise it is one the server held from before).
        slo: each stage against the load generator's SLOs.
        capacity: with ``--capacity-latency-ms``, what each length's search found (its probes are
            ``stages`` too); empty otherwise.
    """

    schema_version: Literal[1] = 1
    host: str
    mode: Mode
    max_new_tokens: int
    target_length: int
    global_attention: GlobalAttention | None = None
    stream: bool = False
    arrival: Arrival
    rate: float | None
    users: int
    spawn_rate: float
    stage_seconds: float
    input_lengths: list[int]
    seed: int
    started_wall_s: float
    ended_wall_s: float
    complete: bool
    server: ServerInfo | None
    workload: list[WorkloadSource]
    energy: EnergyInfo | None
    idle: IdleBaseline | None
    idle_measured: bool
    stages: list[StageResult]
    slo: SloVerdict
    capacity: list[Capacity] = Field(default_factory=list)


def build_results(
    config: LoadConfig,
    *,
    host: str,
    users: int,
    spawn_rate: float,
    stages: Sequence[StageResult],
    energy: EnergyInfo | None,
    idle: IdleBaseline | None,
    idle_measured: bool,
    server: ServerInfo | None,
    workload: Sequence[WorkloadSource],
    started_wall_s: float,
    ended_wall_s: float,
    complete: bool,
    capacity: Sequence[Capacity] = (),
) -> LoadTestResults:
    """The whole results document from the load generator's config and what it measured."""
    return LoadTestResults(
        host=host,
        mode=config.mode,
        max_new_tokens=config.max_new_tokens,
        target_length=config.target_length,
        global_attention=config.global_attention,
        stream=config.stream,
        arrival=config.arrival,
        rate=config.rate,
        users=users,
        spawn_rate=spawn_rate,
        stage_seconds=config.stage_seconds,
        input_lengths=list(config.input_lengths),
        seed=config.seed,
        started_wall_s=started_wall_s,
        ended_wall_s=ended_wall_s,
        complete=complete,
        server=server,
        workload=list(workload),
        energy=energy,
        idle=idle,
        idle_measured=idle_measured,
        stages=list(stages),
        slo=evaluate_slo(stages, config.p99_ms, config.max_fail_ratio),
        capacity=list(capacity),
    )


def default_results_path(started_wall_s: float, root: Path = Path("reports")) -> Path:
    """``reports/loadtest-<UTC timestamp>.json``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started_wall_s))
    return root / f"loadtest-{stamp}.json"


def write_results(results: LoadTestResults, path: Path) -> Path:
    """Write the document atomically: a temporary file beside ``path``, then ``os.replace``.

    A reader (the sweep, a person) sees the old file or the whole new one, never half of it. The
    temporary file is created with mode 0666 less the umask, as ``open`` creates any file
    (``tempfile.mkstemp`` would make it 0600, and the rename would keep that).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(results.model_dump_json(indent=1))
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
