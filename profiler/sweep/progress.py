"""What `profiler sweep` shows while it runs, and how long it has left.

Two lines: the sweep (cells recorded, the time left and the bounds the stage rules put on it) and
the step on now (an export's graphs and parity checks, or the stage locust runs, with its
successful requests against ``min_requests`` and its seconds against ``stage_seconds`` and the
cap, read from the load test's status file: :func:`profiler.loadgen.live.read_status`).

The time left is counted in stages: a locust run has one per input length (a capacity search one
per probe, up to ``max_probes`` per length). Before anything is measured a stage is taken to last
its warm-up plus ``stage_seconds``; once stages have run, their measured mean (kept between that
and the cap), and each locust run adds the seconds measured outside its stages (locust's start,
bodies, drains). Preparing a model and format (export, server start, idle baseline) is timed per
format once one has been; until then the line says how many are not timed yet.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from exporters.progress import ExportProgress, ExportStep
from profiler.loadgen.live import LiveStage, LiveStatus
from profiler.loadgen.stopping import StageRules


@dataclass(frozen=True)
class RunWork:
    """A locust run still to do, in stages.

    Attributes:
        lengths: its input lengths (one record, and at least one stage, each).
        most_probes: stages per length at most (1, or a capacity search's ``max_probes``).
    """

    lengths: int
    most_probes: int = 1

    @property
    def search(self) -> bool:
        return self.most_probes > 1


@dataclass
class Measured:
    """What finished work took, for refining the estimate. Units: s."""

    stage_s: list[float] = field(default_factory=list)
    run_overhead_s: list[float] = field(default_factory=list)
    probes_per_length: list[float] = field(default_factory=list)
    prepare_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class Eta:
    """Seconds left: the expected figure, and the least and most the stage rules allow.

    ``untimed`` preparations (exports, server starts) are in none of them until one of their
    format has been timed.
    """

    expected_s: float
    least_s: float
    most_s: float
    untimed: int

    def __add__(self, other: Eta) -> Eta:
        return Eta(
            self.expected_s + other.expected_s,
            self.least_s + other.least_s,
            self.most_s + other.most_s,
            self.untimed + other.untimed,
        )

    def spent(self, seconds: float) -> Eta:
        """What is left once ``seconds`` of it have gone by (nothing is below nothing)."""
        return Eta(
            max(0.0, self.expected_s - seconds),
            max(0.0, self.least_s - seconds),
            max(0.0, self.most_s - seconds),
            self.untimed,
        )


def estimate(
    runs: list[RunWork],
    prepares: list[str],
    rules: StageRules,
    measured: Measured,
    on_now_s: float | None = None,
) -> Eta:
    """Seconds left for ``runs`` (locust runs, the first of which may be under way) and
    ``prepares`` (the formats of the model/format pairs not prepared yet), by the rules, refined by
    what has been measured. ``on_now_s``: how long the stage running now (the first of ``runs``)
    has lasted; the others are expected to last at least as long."""
    stage = fmean(measured.stage_s) if measured.stage_s else rules.stage_seconds
    if on_now_s is not None:
        stage = max(stage, on_now_s)
    stage = min(max(stage, rules.stage_seconds), rules.max_stage_seconds)
    overhead = fmean(measured.run_overhead_s) if measured.run_overhead_s else 0.0
    expected = least = most = 0.0
    for run in runs:
        if run.search and measured.probes_per_length:
            probes = min(fmean(measured.probes_per_length), run.most_probes)
        else:
            probes = run.most_probes
        expected += run.lengths * probes * (rules.warmup_seconds + stage) + overhead
        least += run.lengths * (rules.warmup_seconds + rules.stage_seconds) + overhead
        most += run.lengths * run.most_probes * (rules.warmup_seconds + rules.max_stage_seconds) + overhead
    if on_now_s is not None and runs:  # the stage on now: its warm-up and the time it has run are spent
        expected -= rules.warmup_seconds + min(on_now_s, stage)
        least -= rules.warmup_seconds + min(on_now_s, rules.stage_seconds)
        most -= rules.warmup_seconds + min(on_now_s, rules.max_stage_seconds)
    untimed = 0
    for fmt in prepares:
        timed = measured.prepare_s.get(fmt)
        if not timed:
            untimed += 1
            continue
        expected += fmean(timed)
        least += min(timed)
        most += max(timed)
    return Eta(max(0.0, expected), max(0.0, least), max(0.0, most), untimed)


def _clock(seconds: float) -> str:
    """``1:05:03``, ``4:10`` or ``35 s``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_eta(eta: Eta) -> str:
    """``~4:10 left (2:05 to 25:00 by the stage rules) + 2 exports/server starts not timed yet``."""
    text = (
        f"~{_clock(eta.expected_s)} left ({_clock(eta.least_s)} to {_clock(eta.most_s)} by the stage rules)"
    )
    if eta.untimed:
        text += f" + {eta.untimed} exports/server starts not timed yet"
    return text


def describe_stage(stage: LiveStage, rules: StageRules) -> str:
    """``generate@2048: 14/20 requests, 9 s (min 4 s, cap 40 s)``: successful requests against
    ``min_requests``, seconds against ``stage_seconds`` and the cap."""
    if stage.state == "warm-up":
        return f"{stage.name}: {stage.elapsed_s or 0:.0f} s of {rules.warmup_seconds:g} s (left out)"
    ok = stage.requests - stage.failures
    text = (
        f"{stage.name}: {ok}/{rules.min_requests} requests, {stage.elapsed_s or 0:.0f} s "
        f"(min {rules.stage_seconds:g} s, cap {rules.max_stage_seconds:g} s)"
    )
    if stage.failures:
        text += f", {stage.failures} failed"
    if stage.lacking:
        text += f"; waits for {', '.join(stage.lacking)}"
    return text


class SweepProgress:
    """The sweep's two progress lines on ``console`` (a context manager: drawn while inside)."""

    def __init__(
        self, console: Console, rules: StageRules, cells: int, runs: list[RunWork], prepares: list[str]
    ) -> None:
        """``cells``: the cells still to record; ``runs``: the locust runs that record them, in
        order; ``prepares``: the format of each model/format pair to prepare, in order."""
        self.rules = rules
        self.runs = list(runs)
        self.prepares = list(prepares)
        self.measured = Measured()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.sweep: TaskID = self.progress.add_task("sweep", total=cells, detail="")
        self.step: TaskID = self.progress.add_task("", total=None, detail="")
        self.step_name: str | None = None
        self.run_started = self.prepare_started = time.monotonic()
        self.current: RunWork | None = None
        self.preparing_fmt: str | None = None  # the format of the model/format being prepared
        self.status_now: LiveStatus | None = None  # the current locust run's, as last read
        self._show_eta()

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    # --- what the sweep reports ----------------------------------------------------------------

    def preparing(self, label: str, fmt: str, what: str) -> None:
        """A model and format is being prepared: ``what`` (its export, its server's start and idle
        baseline) starts; the preparation is timed from its first step."""
        if self.preparing_fmt is None:
            self.prepare_started = time.monotonic()
            self.preparing_fmt = fmt
            self.prepares.remove(fmt)
        self._step(label, f"{label}: {what}", None, 0, what)

    def export_listener(self, label: str) -> ExportProgress:
        """What an export of ``label`` (``led-small/onnx``) tells of each step: its graphs, then
        transformers' reference and the parity check of each case."""

        def show(step: ExportStep) -> None:
            detail = f"{step.done}/{step.total} steps; now {step.what}"
            self._step(label, f"{label}: export", step.total, step.done, f"export: {detail}")

        return show

    def prepared(self) -> None:
        """The model and format being prepared is ready to load (timed for the estimate)."""
        if self.preparing_fmt is not None:
            self.measured.prepare_s[self.preparing_fmt].append(time.monotonic() - self.prepare_started)
            self.preparing_fmt = None
        self._show_eta()

    def locust_started(self, label: str, work: RunWork) -> None:
        """A locust run starts (locust loads, builds its bodies, spawns its users)."""
        self.runs.remove(work)
        self.current, self.status_now = work, None
        self.run_started = time.monotonic()
        self._step(label, "locust", None, 0, "starting locust (tokenizer, request bodies, users)")
        self._show_eta()

    def status(self, label: str, status: LiveStatus) -> None:
        """The load test's status file, as last read while its run goes on."""
        self.status_now = status
        on = next((s for s in status.stages if s.state in ("warm-up", "running")), None)
        if on is None:
            return
        line = describe_stage(on, self.rules)
        ok = on.requests - on.failures
        if on.state == "warm-up":  # the bar: seconds of warm-up
            self._step(label, on.name, self.rules.warmup_seconds, on.elapsed_s or 0, line)
        elif ok < self.rules.min_requests:  # the bar: successful requests against min_requests
            self._step(label, on.name, self.rules.min_requests, ok, line)
        else:  # enough requests: the bar runs to the cap (a full bar would stop the clock)
            self._step(label, on.name, self.rules.max_stage_seconds, on.elapsed_s or 0, line)

    def run_finished(self, cells: int, stage_s: list[float]) -> None:
        """A locust run ended with ``cells`` recorded; ``stage_s``: its stages' measured seconds."""
        wall = time.monotonic() - self.run_started
        self.measured.stage_s += stage_s
        self.measured.run_overhead_s.append(
            max(0.0, wall - sum(stage_s) - len(stage_s) * self.rules.warmup_seconds)
        )
        if self.current is not None and self.current.search:
            self.measured.probes_per_length.append(len(stage_s) / self.current.lengths)
        self.current, self.status_now = None, None
        self.progress.advance(self.sweep, cells)
        self._show_eta()

    # --- drawing -------------------------------------------------------------------------------

    def scoring(self, label: str, length: int, examples: int) -> None:
        """The model and format on now is being scored at ``length`` tokens (``[accuracy]``)."""
        self._step(label, f"{label}: accuracy", None, 0, f"accuracy: {examples} examples at {length} tokens")

    def _step(self, description: str, name: str, total: float | None, completed: float, detail: str) -> None:
        """Update the step line; a new step restarts its bar and elapsed time (``reset``: a plain
        update would keep the previous step's finished time)."""
        if name != self.step_name:
            self.step_name = name
            self.progress.reset(self.step, total=total)
        self.progress.update(
            self.step, total=total, completed=completed, description=description, detail=detail
        )
        self._show_eta()

    def _show_eta(self) -> None:
        """The sweep's line: cells, and the time left, counting down through the step on now."""
        now, current = time.monotonic(), self.current
        if current is not None and not current.search:  # its stages not done yet, the one on now first
            stages = self.status_now.stages if self.status_now is not None else []
            done = sum(1 for stage in stages if stage.state == "done")
            on = next((stage for stage in stages if stage.state == "running"), None)
            runs = [RunWork(max(1, current.lengths - done)), *self.runs]
            on_now_s = on.elapsed_s if on is not None else None
            eta = estimate(runs, self.prepares, self.rules, self.measured, on_now_s)
        else:
            eta = estimate(self.runs, self.prepares, self.rules, self.measured)
            if current is not None:  # a capacity search: its probes are not known in advance
                eta += estimate([current], [], self.rules, self.measured).spent(now - self.run_started)
        if self.preparing_fmt is not None:
            eta += estimate([], [self.preparing_fmt], self.rules, self.measured).spent(
                now - self.prepare_started
            )
        task = self.progress.tasks[self.sweep]
        cells = f"{task.completed:.0f}/{task.total or 0:.0f} cells"
        self.progress.update(self.sweep, detail=f"{cells}, {describe_eta(eta)}")
