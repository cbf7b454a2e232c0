"""The end-of-run table: one row per input length, from the results document."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.energy.common import format_energy
from profiler.loadgen.results import LoadTestResults


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


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
        + f", {results.stage_seconds:g} s per stage"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    for heading in ("requests", "failures", "p50 ms", "p90 ms", "p99 ms"):
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
        row = [
            stage.name,
            f"{stage.requests:,}",
            f"{stage.failures:,}",
            _ms(summary.p50_ms),
            _ms(summary.p90_ms),
            _ms(summary.p99_ms),
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


def print_results(results: LoadTestResults, path: str | None, console: Console | None = None) -> None:
    """Print the table, the SLO verdict and where the file went."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: rich would assume 80 columns and wrap the table
            console = Console(width=max(console.width, 160))
    console.print(results_table(results))
    if results.idle is None:
        console.print("net J/query: no idle baseline (pass --idle-seconds S to measure one).")
    elif not results.idle_measured:
        console.print("net J/query: against an idle baseline the server measured before this run.")
    unsent = {stage.name: stage.unsent for stage in results.stages if stage.unsent}
    if unsent:
        listed = ", ".join(f"{name} {count}" for name, count in unsent.items())
        console.print(f"open-loop arrivals never sent (every user was waiting for an answer): {listed}")
    slo = results.slo
    if slo.p99_ms is not None or slo.max_fail_ratio is not None:
        console.print("SLO: " + ("met" if slo.passed else "MISSED: " + "; ".join(slo.violations)))
    if not results.complete:
        console.print("The run was cut short: the last stage is partial.")
    if path is not None:
        console.print(f"results: {path}")
