"""The run as it goes, for locust's web UI: each stage's state, time left and figures so far,
and the table rows the web UI's tab shows (:func:`table_rows`).

The master's :class:`~profiler.loadgen.coordinator.Coordinator` builds a :class:`LiveStatus`
whenever the web UI asks (every 2 s while a test runs), and, with ``--status-file``, writes it to
that file at every tick (:func:`write_status`), which is how ``profiler sweep`` shows each stage's
requests and seconds while its locust child runs (:func:`read_status`).

Finished stages show the figures of the results file (their
:class:`~profiler.loadgen.results.StageResult`); the running stage shows the same figures over the
samples received so far (every process ships them every 2 s), with J/query from each request's
share of its batch's energy until the stage's window closes, and says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from statistics import fmean
from typing import Literal

from pydantic import Field, ValidationError

from profiler.documents import Document
from profiler.energy.common import Source, format_energy
from profiler.loadgen.results import StageResult
from profiler.loadgen.stopping import EndReason, StageRules

StageState = Literal["waiting", "warm-up", "running", "done"]
#: Where a stage's J/query comes from: its closed energy window, or, while it runs, the mean of
#: its requests' shares of their batches' joules (coarser: docs/energy.md).
EnergyBasis = Literal["window", "requests so far"]

#: The web UI table's columns: (row key, heading).
COLUMNS = (
    ("name", "stage"),
    ("state", "state"),
    ("time", "time"),
    ("requests", "requests"),
    ("failures", "failures"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("tokens_per_s", "tokens/s"),
    ("j_per_query", "J/query"),
)


class LiveStage(Document):
    """One stage (or the warm-up before it, or a length still to come) as the web UI shows it.

    Attributes:
        name / length: the stage (``generate@2048``), its input length in tokens.
        state: ``waiting``, ``warm-up``, ``running`` or ``done``.
        elapsed_s: seconds since it started (None while waiting).
        least_left_s: seconds until it has run its ``--stage-seconds`` (its warm-up's length in
            ``warm-up``); 0 once past. None unless it is on.
        cap_left_s: seconds until ``--max-stage-seconds`` ends it whatever it has.
        lacking: what keeps a stage past its least time running (``40 of 100 requests``,
            ``stability``); empty otherwise.
        end_reason: why a finished stage ended.
        requests / failures: so far, or in all.
        p50_ms / p99_ms: of its successful requests so far (None with none).
        tokens_per_s: input and output tokens of its successful requests per second so far.
        j_per_query / energy_source / energy_basis: gross joules per query, where they come from
            (``estimate`` when estimated) and on what basis.
    """

    name: str
    length: int
    state: StageState
    elapsed_s: float | None = None
    least_left_s: float | None = None
    cap_left_s: float | None = None
    lacking: list[str] = Field(default_factory=list)
    end_reason: EndReason | None = None
    requests: int = 0
    failures: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    tokens_per_s: float | None = None
    j_per_query: float | None = None
    energy_source: Source | None = None
    energy_basis: EnergyBasis | None = None


class LiveStatus(Document):
    """The whole run: its phase, each stage, and where the results file goes.

    Attributes:
        phase: the coordinator's phase (``new``, ``ramp``, ``warmup``, ``stage``, ``done``).
        current: the stage (or warm-up) running now, or None.
        stages: finished stages, the one running, then the lengths still to come, in run order.
        results_path: where this run's results file goes (or went); None before a run starts.
        results_written: whether it has been written (at the run's end).
        error: why the last start did not run (a bad flag in the web UI's form, no server), if so.
    """

    phase: str
    current: str | None
    stages: list[LiveStage]
    results_path: str | None
    results_written: bool
    error: str | None


def finished(result: StageResult) -> LiveStage:
    """A stage whose window has closed: the results file's figures."""
    summary = result.summary
    return LiveStage(
        name=result.name,
        length=result.length,
        state="done",
        elapsed_s=result.duration_s,
        end_reason=result.end_reason,
        requests=result.requests,
        failures=result.failures,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        tokens_per_s=result.tokens_per_s,
        j_per_query=result.gross_j_per_query,
        energy_source=result.energy_source if result.gross_j_per_query is not None else None,
        energy_basis="window" if result.gross_j_per_query is not None else None,
    )


def running(so_far: StageResult, rules: StageRules, elapsed_s: float) -> LiveStage:
    """The stage on now, from its samples so far (``so_far``: its figures over ``elapsed_s``)."""
    summary = so_far.summary
    lacking = []
    if elapsed_s >= rules.stage_seconds:
        if not so_far.enough_requests:
            lacking.append(f"{len(so_far.latency_ms)} of {rules.min_requests} requests")
        if rules.stability > 0 and so_far.stable is not True:
            lacking.append("stability")
    shares = so_far.request_energy_j
    return LiveStage(
        name=so_far.name,
        length=so_far.length,
        state="running",
        elapsed_s=elapsed_s,
        least_left_s=max(0.0, rules.stage_seconds - elapsed_s),
        cap_left_s=max(0.0, rules.max_stage_seconds - elapsed_s),
        lacking=lacking,
        requests=so_far.requests,
        failures=so_far.failures,
        p50_ms=summary.p50_ms,
        p99_ms=summary.p99_ms,
        tokens_per_s=so_far.tokens_per_s,
        j_per_query=fmean(shares) if shares else None,
        energy_source=so_far.energy_source if shares else None,
        energy_basis="requests so far" if shares else None,
    )


def warming_up(name: str, length: int, elapsed_s: float, seconds: float) -> LiveStage:
    """The warm-up before a stage: its load counts for nothing, so only its time is shown."""
    left = max(0.0, seconds - elapsed_s)
    return LiveStage(
        name=name, length=length, state="warm-up", elapsed_s=elapsed_s, least_left_s=left, cap_left_s=left
    )


def waiting(name: str, length: int) -> LiveStage:
    """A length still to come."""
    return LiveStage(name=name, length=length, state="waiting")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _time(stage: LiveStage) -> str:
    """``12 s: >= 18 s left (cap in 288 s)``; past the least time, what the stage still lacks."""
    if stage.elapsed_s is None:
        return ""
    text = f"{stage.elapsed_s:.0f} s"
    if stage.state == "warm-up":
        return f"{text}: {stage.least_left_s or 0:.0f} s left"
    if stage.state != "running":
        return text
    if stage.least_left_s:
        return f"{text}: >= {stage.least_left_s:.0f} s left (cap in {stage.cap_left_s or 0:.0f} s)"
    needs = ", ".join(stage.lacking) or "the next check"
    return f"{text}: waits for {needs} (cap in {stage.cap_left_s or 0:.0f} s)"


def _joules(stage: LiveStage) -> str:
    if stage.j_per_query is None or stage.energy_source is None:
        return "-"
    text = format_energy(stage.j_per_query, stage.energy_source)  # names the source: "(estimate)"
    return text if stage.energy_basis == "window" else f"{text}, per request so far"


def table_rows(status: LiveStatus) -> list[dict[str, str]]:
    """The tab's rows: one per stage, then where the results file goes (and any refusal)."""
    table = []
    if status.error is not None:
        table.append({"name": "not started", "state": status.error})
    for stage in status.stages:
        state = stage.state if stage.end_reason is None else f"done ({stage.end_reason})"
        waiting = stage.state == "waiting"
        table.append(
            {
                "name": stage.name,
                "state": state,
                "time": _time(stage),
                "requests": "" if waiting else f"{stage.requests:,}",
                "failures": "" if waiting else f"{stage.failures:,}",
                "p50_ms": "" if waiting else _ms(stage.p50_ms),
                "p99_ms": "" if waiting else _ms(stage.p99_ms),
                "tokens_per_s": "" if stage.tokens_per_s is None else f"{stage.tokens_per_s:,.0f}",
                "j_per_query": "" if waiting else _joules(stage),
            }
        )
    if status.results_path is not None:
        when = "written" if status.results_written else "written when the run ends"
        table.append({"name": "results file", "state": f"{status.results_path} ({when})"})
    return table


def write_status(status: LiveStatus, path: Path) -> None:
    """Replace ``path`` with ``status`` in one step (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(status.model_dump_json(), encoding="utf-8")
    os.replace(partial, path)


def read_status(path: Path) -> LiveStatus | None:
    """The status last written to ``path``; None before the first write, or if what is there is
    not a status (progress is shown from it, never measured: nothing to stop for)."""
    try:
        return LiveStatus.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError):
        return None
