"""The end-of-run table: one row per input length, from the results document."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.energy.common import format_energy
from profiler.loadgen.results import LoadTestResults, StageResult
from profiler.stats import UNSUPPORTED, samples_for


def _ms(value: float | None, samples: int = 0, q: float = 0.0) -> str:
    """Milliseconds; a percentile ``q`` from fewer ``samples`` than it needs is marked."""
    if value is None:
        return "-"
    return f"{value:,.1f}" + (UNSUPPORTED if samples < samples_for(q) else "")


def _stop(stage: StageResult) -> str:
    """Why the stage ended, and what it lacked: ``measured``, ``cap: few, unstable``."""
    lacks = [
        word
        for word, lacking in (("few", stage.enough_requests is False), ("unstable", stage.stable is False))
        if lacking
    ]
    reason = stage.end_reason or "-"
    return f"{reason}: {', '.join(lacks)}" if lacks else reason


def _joules(value: float | None, source: str | None) -> str:
    # format_energy always names the source, so an estimate is never shown without the word.
    return "-" if value is None or source is None else format_energy(value, source)


def results_table(results: LoadTestResults) -> Table:
    """Requests, failures, p50/p90/p99 latency, TTFT p50/p99 when streamed, rates and J/query
    (with their source) per stage."""
    open_loop = results.arrival == "poisson"
    title = (
        f"{results.mode}{' (streamed)' if results.stream else ''} on {results.host}: {results.users} users, "
        + (f"Poisson {results.rate or 0:g} req/s offered" if open_loop else "closed loop")
        + f", {results.stage_seconds:g} s per stage at least"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    table.add_column("ended")
    for heading in ("s", "requests", "failures", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(heading, justify="right")
    if results.stream:
        for heading in ("TTFT p50 ms", "TTFT p99 ms"):
            table.add_column(heading, justify="right")
    if open_loop:
        table.add_column("offered/sent req/s", justify="right")
    for heading in ("req/s", "tokens/s", "J/query gross", "J/query net"):
        table.add_column(heading, justify="right")
    for stage in results.stages:
        summary = stage.summary
        source = stage.energy_source
        ok = len(stage.latency_ms)
        row = [
            stage.name,
            _stop(stage),
            f"{stage.load_s:.0f}",
            f"{stage.requests:,}",
            f"{stage.failures:,}",
            _ms(summary.p50_ms, ok, 50),
            _ms(summary.p90_ms, ok, 90),
            _ms(summary.p99_ms, ok, 99),
        ]
        if results.stream:
            ttft = stage.ttft_summary
            row += [_ms(ttft.p50_ms if ttft else None), _ms(ttft.p99_ms if ttft else None)]
        if open_loop:
            row.append(f"{stage.offered_rps or 0:.2f} / {stage.sent_rps:.2f}")
        row += [
            f"{stage.throughput_rps:.2f}",
            f"{stage.tokens_per_s:,.0f}",
            _joules(stage.gross_j_per_query, source),
            _joules(stage.net_j_per_query, source),
        ]
        table.add_row(*row)
    return table


def capacity_table(results: LoadTestResults) -> Table:
    """Per length: the highest rate that met the SLO, the lowest that failed, goodput, J per good query."""
    slo = results.capacity[0].slo
    table = Table(
        title=f"Capacity: the highest open-loop rate with p{slo.percentile} <= {slo.latency_ms:g} ms "
        f"and failures <= {slo.max_fail_ratio:g}",
        title_justify="left",
    )
    table.add_column("length", justify="right")
    for heading in ("sustained req/s", "failed at req/s", "goodput req/s", "J/good query", "probes"):
        table.add_column(heading, justify="right")
    for found in results.capacity:
        sustained = "none" if found.sustained_rps is None else f"{found.sustained_rps:.3g}"
        if found.sustained_rps is not None and found.lowest_failing_rps is None:
            sustained = f">= {sustained}"  # every probe passed: a floor, not the capacity
        table.add_row(
            str(found.length),
            sustained,
            "-" if found.lowest_failing_rps is None else f"{found.lowest_failing_rps:.3g}",
            "-" if found.goodput_rps is None else f"{found.goodput_rps:.3g}",
            _joules(found.j_per_good_query, found.energy_source),
            str(len(found.probes)),
        )
    return table


def print_results(results: LoadTestResults, path: str | None, console: Console | None = None) -> None:
    """Print the table, the SLO verdict and where the file went."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: rich would assume 80 columns and wrap the table
            console = Console(width=max(console.width, 160))
    console.print(results_table(results))
    if results.capacity:
        console.print(capacity_table(results))
    for note in _footnotes(results):
        console.print(note, markup=False)
    if path is not None:
        console.print(f"results: {path}")


def _footnotes(results: LoadTestResults) -> list[str]:
    """What the table's figures need said: the baseline, unsent arrivals, the SLO verdict, marks."""
    notes: list[str] = []
    if results.idle is None:
        notes.append("net J/query: no idle baseline (pass --idle-seconds S to measure one).")
    elif not results.idle_measured:
        notes.append("net J/query: against an idle baseline the server measured before this run.")
    unsent = {stage.name: stage.unsent for stage in results.stages if stage.unsent}
    if unsent:
        listed = ", ".join(f"{name} {count}" for name, count in unsent.items())
        notes.append(f"open-loop arrivals never sent (every user was waiting for an answer): {listed}")
    slo = results.slo
    if slo.p99_ms is not None or slo.max_fail_ratio is not None:
        notes.append("SLO: " + ("met" if slo.passed else "MISSED: " + "; ".join(slo.violations)))
    if any(len(stage.latency_ms) < samples_for(99) for stage in results.stages):
        notes.append(
            f"{UNSUPPORTED} a percentile from fewer successful requests than it needs "
            f"(p90: {samples_for(90)}, p99: {samples_for(99)})."
        )
    if any(_stop(stage).startswith("cap:") for stage in results.stages):
        notes.append(
            "cap: the stage reached --max-stage-seconds before it had --min-requests (few) or "
            "before its last windows agreed within --stability (unstable)."
        )
    for stage in results.stages:
        contention = stage.window.contention if stage.window else None
        if contention is not None and contention.disturbed:
            notes.append(f"disturbed: {stage.name}: {contention.describe()}.")
    if not results.complete:
        notes.append("The run was cut short: the last stage is partial.")
    return notes
