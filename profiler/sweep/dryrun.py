"""`profiler sweep --dry-run`: what a config would run and about how long, with nothing started.

The time is a range from the stage rules alone: at least ``stage_seconds + warmup_seconds`` per
stage and ``idle_seconds`` per server; at most ``max_stage_seconds + warmup_seconds`` per stage
(every stage at its cap) and ``max_probes`` probes per capacity search. Exports and server
start-up are not counted: they depend on the model and on what the artifact cache already holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiler.sweep.config import SweepConfig
from profiler.sweep.progress import Measured
from profiler.sweep.progress import estimate as progress_estimate
from profiler.sweep.runner import Run, run_work


@dataclass(frozen=True)
class Estimate:
    """The seconds a plan takes at least and at most. Units: s."""

    low: float
    high: float


def estimate(config: SweepConfig, runs: list[Run]) -> Estimate:
    """The time range of ``runs`` (see the module's docstring): the sweep's own estimate
    (:func:`profiler.sweep.progress.estimate`) before anything is measured, plus the idle
    baselines."""
    eta = progress_estimate([run_work(config, run) for run in runs], [], config.load, Measured())
    idle = config.load.idle_seconds * len({(run.model.name, run.variant) for run in runs})
    return Estimate(eta.least_s + idle, eta.most_s + idle)


def duration(seconds: float) -> str:
    """``1h 02m``, ``3m 20s`` or ``45s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def describe(config: SweepConfig, runs: list[Run], run_dir: str) -> list[str]:
    """The lines ``--dry-run`` prints: the matrix, its cells, the capacity searches, accuracy, the
    time range.

    ``runs`` are the locust runs left to do: all of them for a new run, fewer for a resumed one.
    """
    load = config.load
    levels = [f"{arrival} {level:g}" for arrival, level in load.levels()]
    measured = [run for run in runs if not run.search]
    searches = [run for run in runs if run.search]
    pairs = sum(len(model.variants()) for model in config.models)
    precisions = " x precision" if any(model.precisions != ("fp32",) for model in config.models) else ""
    lines = [f"dry run: nothing is exported, started or written; the run directory: {run_dir}"]
    lines += [f"  {model.name}: {', '.join(model.labels())} ({model.checkpoint})" for model in config.models]
    lines.append(
        f"matrix: {pairs} model x format{precisions} pair(s) x {len(levels)} load level(s) "
        f"({', '.join(levels) or 'none'}) x {len(load.input_lengths)} input length(s) "
        f"({', '.join(map(str, load.input_lengths))}) x "
        f"{load.repeats} repeat(s)"
    )
    lines.append(
        f"cells to measure: {len(measured) * len(load.input_lengths)} ({len(measured)} locust run(s), "
        f"{len({(run.model.name, run.variant) for run in runs})} server(s))"
    )
    if config.capacity is not None:
        lengths = config.capacity_lengths()
        covered = sorted({f"{run.model.name}/{run.variant}" for run in searches})
        lines.append(
            f"capacity searches: {len(searches) * len(lengths)} ({', '.join(covered) or 'none left'} at "
            f"{', '.join(map(str, lengths))} tokens; at most {config.capacity.max_probes} probes each)"
        )
    else:
        lines.append("capacity searches: none")
    if config.accuracy is not None:
        spec, scored_at = config.accuracy, ", ".join(map(str, config.accuracy_lengths()))
        lines.append(
            f"accuracy: {spec.task} on {spec.dataset.name} at {scored_at} tokens, each model and format "
            "on its live server (not in the estimate)"
        )
    time = estimate(config, runs)
    lines.append(
        f"estimated time: {duration(time.low)} to {duration(time.high)} (at least stage_seconds + "
        "warmup_seconds per stage, at most max_stage_seconds + warmup_seconds per stage and max_probes "
        "per search, plus idle_seconds per server; exports and server start-up not included)"
    )
    return lines
