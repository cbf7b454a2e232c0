"""Read a run directory (``reports/<run-id>/``) into what the report shows.

Every record is validated as its one type (:class:`profiler.results.ResultRecord`, version-1
records upgraded on the way) by :class:`profiler.rundir.RunDirectory`; a line that is not one is
refused with its line number and the field that is wrong. Here each record becomes a
:class:`Repeat`, the report's flat view of one cell's repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from profiler.artifact import variant
from profiler.documents import Document
from profiler.energy.contention import Contention
from profiler.environment import Environment
from profiler.errors import ProfilerError
from profiler.jsonl import RecordFile, RecordsError
from profiler.results import AccuracyRecord, CapacityRecord, ResultRecord
from profiler.rundir import CONFIG_NAME, RunDirectory

R = TypeVar("R", bound=Document)


class ReportError(ProfilerError):
    """A run directory the report cannot use; the message says what was wrong and what to do."""


@dataclass(frozen=True, order=True)
class LoadLevel:
    """The load shape of a cell: closed loop (``concurrency`` users) or open loop (``rate`` req/s).

    Ordering puts closed-loop levels first, each kind from light to heavy load.
    """

    arrival: str
    level: float

    @property
    def label(self) -> str:
        """Short form, as in the record's cell key: ``closed:4``, ``poisson:2``."""
        return f"{self.arrival}:{self.level:g}"

    @property
    def describe(self) -> str:
        """In words: ``closed loop, 4 users``; ``open loop, 2 req/s``."""
        if self.arrival == "closed":
            users = int(self.level)
            return f"closed loop, {users} user{'s' if users != 1 else ''}"
        return f"open loop ({self.arrival}), {self.level:g} req/s"


@dataclass(frozen=True)
class TimelinePoint:
    """One power-timeline sample: CPU use, and per-GPU power, utilisation and memory where measured."""

    t_s: float
    cpu_tree_pct: float | None
    gpu_power_w: tuple[float, ...]
    gpu_util_pct: tuple[float, ...]
    gpu_memory_bytes: tuple[int, ...]


@dataclass(frozen=True)
class Repeat:
    """One result record: one repeat of one cell, with what the report needs from its stage.

    Energy figures are None where the run did not measure them (no window, or no idle baseline for
    the net figure). Units are in the names.
    """

    line: int
    cell: str
    model: str
    format: str
    engine: str
    device: str
    mode: str
    max_new_tokens: int | None
    global_attention: str
    length: int
    load: LoadLevel
    repeat: int
    duration_s: float
    requests: int
    failures: int
    failure_reasons: dict[str, int]
    latency_ms: tuple[float, ...]
    throughput_rps: float | None
    tokens_per_s: float | None
    energy_source: str | None
    gross_j_per_query: float | None
    net_j_per_query: float | None
    net_clamped: bool
    window_j: float | None
    window_s: float | None
    timeline: tuple[TimelinePoint, ...]
    peak_rss_bytes: int | None
    peak_gpu_memory_bytes: int | None
    warnings: tuple[str, ...] = ()
    #: The stage's rules had it answer this many requests successfully; None in older records.
    min_requests: int | None = None
    #: It did (see :attr:`~profiler.loadgen.results.StageResult.enough_requests`).
    enough_requests: bool | None = None
    #: Its last windows agreed; None where that was not judged.
    stable: bool | None = None
    #: The window's energy per generated token, and per successful request. Units: J.
    gross_j_per_token: float | None = None
    gross_j_per_good_query: float | None = None
    #: What else used the server's machine during the stage; None where not measured.
    contention: Contention | None = None
    #: Streamed stages only (empty otherwise): time to first token, time per output token. Units: ms.
    ttft_ms: tuple[float, ...] = ()
    tpot_ms: tuple[float, ...] = ()
    #: Each successful request's server-side split (``queue_ms`` .. ``total_ms``). Units: ms.
    server_timings_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def avg_power_w(self) -> float | None:
        """Mean power over the stage's energy window (window joules / window seconds). Units: W."""
        if self.window_j is None or not self.window_s:
            return None
        return self.window_j / self.window_s


@dataclass(frozen=True)
class RunData:
    """Everything in one run directory (or one load test's results file) that the report reads.

    Attributes:
        directory: where the report is written: the run directory, or a folder beside a results file.
        kind: ``run`` (a sweep's run directory) or ``loadtest`` (a locust results file).
        source: what was read; None: ``directory``.
        config_text: the sweep's config.toml, or a load test's settings as JSON.
    """

    directory: Path
    run_id: str
    repeats: list[Repeat]
    environment: Environment | None
    config_text: str | None
    accuracy: list[AccuracyRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    capacity: list[CapacityRecord] = field(default_factory=list)
    kind: Literal["run", "loadtest"] = "run"
    source: Path | None = None

    @property
    def read_from(self) -> Path:
        """The run directory or results file reported."""
        return self.source or self.directory

    @property
    def config_name(self) -> str:
        """What :attr:`config_text` is, as the report labels it."""
        return CONFIG_NAME if self.kind == "run" else "load test settings (JSON)"

    @property
    def config_language(self) -> str:
        """The language of :attr:`config_text`, for a Markdown code block."""
        return "toml" if self.kind == "run" else "json"


def _timeline(record: ResultRecord) -> tuple[TimelinePoint, ...]:
    return tuple(
        TimelinePoint(
            t_s=sample.t_monotonic_s,
            cpu_tree_pct=sample.cpu_tree_pct,
            gpu_power_w=tuple(g.power_w for g in sample.gpus if g.power_w is not None),
            gpu_util_pct=tuple(
                float(g.utilization_pct) for g in sample.gpus if g.utilization_pct is not None
            ),
            gpu_memory_bytes=tuple(
                g.memory_used_bytes for g in sample.gpus if g.memory_used_bytes is not None
            ),
        )
        for sample in record.timeline
    )


def to_repeat(record: ResultRecord, line: int) -> Repeat:
    """The report's view of one result record."""
    stage = record.stage
    window = stage.window
    per_query = window.per_query if window else None
    warnings = []
    if stage.window_error:
        warnings.append(f"no energy window: {stage.window_error}")
    if not stage.complete:
        warnings.append("the stage did not run to completion")
    return Repeat(
        line=line,
        cell=record.cell,
        model=record.model,
        # A precision other than fp32 is part of what the report compares: "onnx int8" is a
        # series, a table row and a plot point of its own, beside "onnx".
        format=variant(record.format, record.precision),
        engine=variant(record.engine, record.precision),
        device=record.device,
        mode=record.mode,
        max_new_tokens=record.max_new_tokens,
        global_attention=record.global_attention,
        length=record.bucket,
        load=LoadLevel(record.load.arrival, record.load.level),
        repeat=record.repeat,
        duration_s=stage.duration_s,
        requests=stage.requests,
        failures=stage.failures,
        failure_reasons=dict(stage.failure_reasons),
        latency_ms=tuple(stage.latency_ms),
        ttft_ms=tuple(stage.ttft_ms),
        tpot_ms=tuple(stage.tpot_ms),
        server_timings_ms={key: tuple(values) for key, values in stage.server_timings_ms.items()},
        throughput_rps=stage.throughput_rps,
        tokens_per_s=stage.tokens_per_s,
        energy_source=stage.energy_source,
        gross_j_per_query=stage.gross_j_per_query,
        net_j_per_query=stage.net_j_per_query,
        net_clamped=per_query.clamped if per_query else False,
        window_j=window.measurement.total_j if window else None,
        window_s=window.measurement.duration_s if window else None,
        timeline=_timeline(record),
        peak_rss_bytes=record.peak_rss_bytes,
        peak_gpu_memory_bytes=record.peak_gpu_memory_bytes,
        warnings=tuple(warnings),
        min_requests=stage.rules.min_requests if stage.rules else None,
        enough_requests=stage.enough_requests,
        stable=stage.stable,
        gross_j_per_token=stage.gross_j_per_token,
        gross_j_per_good_query=stage.gross_j_per_good_query,
        contention=window.contention if window else None,
    )


def _read_environment(run: RunDirectory, notes: list[str]) -> Environment | None:
    if not run.environment.is_file():
        notes.append(f"{run.environment.name} is missing: the environment is unknown.")
        return None
    try:
        return run.read_environment()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        notes.append(f"{run.environment.name} could not be read ({exc}): the environment is unknown.")
        return None


def _read(records: RecordFile[R]) -> list[R]:
    """Every complete record of a run file (none if it is absent), or one line saying what is wrong."""
    try:
        return records.read()
    except OSError as exc:
        raise ReportError(f"cannot read {records.path}: {exc}; check its permissions.") from exc
    except RecordsError as exc:
        raise ReportError(str(exc)) from exc


def load_run(directory: Path, role: str = "run") -> RunData:
    """Read and check a run directory written by ``profiler sweep``.

    Args:
        directory: ``reports/<run-id>/``.
        role: how error messages name the directory (``run`` or ``comparison run``).

    Raises:
        ReportError: the directory is missing, holds no results, or a record is malformed.
    """
    if not directory.exists():
        raise ReportError(
            f"{role} directory {directory} does not exist; pass a directory written by "
            "`profiler sweep` (reports/<run-id>/)."
        )
    run = RunDirectory(directory)
    results = run.results
    records = _read(results) if results.path.is_file() else []
    capacity = _read(run.capacity)
    if not results.path.is_file() and not capacity:
        raise ReportError(
            f"{role} directory {directory} has no {results.path.name}: it is not a sweep's run directory, "
            "or its sweep recorded nothing yet. Run `profiler sweep CONFIG`, or "
            f"`profiler sweep --resume {directory}`."
        )
    if not records and not capacity:
        raise ReportError(
            f"{results.path} holds no complete records: the sweep stopped before its first cell finished. "
            f"Finish it with `profiler sweep --resume {directory}`."
        )
    notes: list[str] = []
    by_cell: dict[str, Repeat] = {}
    for line, record in enumerate(records, start=1):
        repeat = to_repeat(record, line)
        if repeat.cell in by_cell:
            notes.append(f"cell {repeat.cell!r} is recorded twice; line {line} is used.")
        by_cell[repeat.cell] = repeat
        notes.extend(f"cell {repeat.cell!r}: {warning}." for warning in repeat.warnings)
    environment = _read_environment(run, notes)
    try:
        config_text = run.config.read_text(encoding="utf-8") if run.config.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"{run.config.name} could not be read ({exc}).")
        config_text = None
    accuracy = _read(run.accuracy)
    run_ids = {record.run_id for record in records} | {record.run_id for record in capacity}
    run_id = run_ids.pop() if len(run_ids) == 1 else directory.name
    return RunData(
        directory, run_id, list(by_cell.values()), environment, config_text, accuracy, notes, capacity
    )
