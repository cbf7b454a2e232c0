"""Read a run directory (``reports/<run-id>/``) into typed records the report can trust.

Every field the report uses is checked here, once, so the rest of the package works on plain
dataclasses instead of nested dicts. A record that is not what ``profiler sweep`` writes (schema 1)
is refused with its line number and the field that is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from profiler.energy.windows import WindowResult
from profiler.errors import ProfilerError
from profiler.results import ACCURACY_NAME, FINGERPRINT_NAME, RESULTS_NAME, RecordsError, read_records

CONFIG_NAME = "config.toml"
SCHEMA = 1


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

    @property
    def avg_power_w(self) -> float | None:
        """Mean power over the stage's energy window (window joules / window seconds). Units: W."""
        if self.window_j is None or not self.window_s:
            return None
        return self.window_j / self.window_s


@dataclass(frozen=True)
class AccuracyScore:
    """One line of ``accuracy.jsonl``: a model's score on a task at one input length."""

    model: str
    format: str | None
    input_length: int | None
    task: str
    score: float
    count: int | None


@dataclass(frozen=True)
class RunData:
    """Everything in one run directory that the report reads."""

    directory: Path
    run_id: str
    repeats: list[Repeat]
    environment: dict[str, Any] | None
    config_text: str | None
    accuracy: list[AccuracyScore] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fail(what: str, line: int, name: str, expected: str) -> ReportError:
    return ReportError(
        f"{what} line {line}: field {name!r} should be {expected}; this line was not written by "
        f"`profiler sweep` (schema {SCHEMA}). Remove the line, or delete it and re-run the cell with "
        "`profiler sweep --resume`."
    )


class _Fields:
    """Typed access to one JSON object, with errors that name the file, line and field."""

    def __init__(self, data: Any, what: str, line: int, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise _fail(what, line, prefix.rstrip(".") or "(record)", "an object")
        self.data: dict[str, Any] = data
        self.what, self.line, self.prefix = what, line, prefix

    def _error(self, name: str, expected: str) -> ReportError:
        return _fail(self.what, self.line, self.prefix + name, expected)

    def sub(self, name: str, required: bool = True) -> _Fields | None:
        value = self.data.get(name)
        if value is None and not required:
            return None
        return _Fields(value, self.what, self.line, f"{self.prefix}{name}.")

    def text(self, name: str, default: str | None = None) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str):
            raise self._error(name, "a string")
        return value

    def opt_text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise self._error(name, "a string or null")
        return value

    def opt_number(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._error(name, "a finite number or null")
        return float(value)

    def number(self, name: str) -> float:
        value = self.opt_number(name)
        if value is None:
            raise self._error(name, "a number")
        return value

    def opt_int(self, name: str) -> int | None:
        value = self.opt_number(name)
        if value is not None and value != int(value):
            raise self._error(name, "a whole number or null")
        return None if value is None else int(value)

    def integer(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise self._error(name, "a whole number")
        return value

    def numbers(self, name: str) -> tuple[float, ...]:
        value = self.data.get(name) or []
        if not isinstance(value, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
        ):
            raise self._error(name, "a list of finite numbers")
        return tuple(float(x) for x in value)


def _load_level(load: _Fields) -> LoadLevel:
    arrival = load.text("arrival")
    if arrival == "closed":
        return LoadLevel(arrival, float(load.integer("concurrency")))
    return LoadLevel(arrival, load.number("rate"))


def _timeline(record: _Fields) -> tuple[TimelinePoint, ...]:
    samples = record.data.get("timeline") or []
    if not isinstance(samples, list):
        raise record._error("timeline", "a list of samples")
    points = []
    for index, raw in enumerate(samples):
        sample = _Fields(raw, record.what, record.line, f"timeline[{index}].")
        gpus = [
            _Fields(g, record.what, record.line, f"timeline[{index}].gpus.") for g in raw.get("gpus") or []
        ]
        power = [p for g in gpus if (p := g.opt_number("power_w")) is not None]
        util = [u for g in gpus if (u := g.opt_number("utilization_pct")) is not None]
        memory = [m for g in gpus if (m := g.opt_int("memory_used_bytes")) is not None]
        points.append(
            TimelinePoint(
                t_s=sample.number("t_monotonic_s"),
                cpu_tree_pct=sample.opt_number("cpu_tree_pct"),
                gpu_power_w=tuple(power),
                gpu_util_pct=tuple(util),
                gpu_memory_bytes=tuple(memory),
            )
        )
    return tuple(points)


def _window(stage: _Fields, what: str, line: int) -> WindowResult | None:
    """The stage's energy window, as the server wrote it (None where none was measured)."""
    raw = stage.data.get("window")
    if raw is None:
        return None
    try:
        return WindowResult.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(map(str, first["loc"]))
        raise _fail(what, line, f"{stage.prefix}window.{field}", first["msg"].lower()) from exc


def parse_record(raw: Any, line: int, what: str = RESULTS_NAME) -> Repeat:
    """Check one result record and keep what the report uses.

    Raises:
        ReportError: a field is missing or has the wrong type; the message names the line and field.
    """
    record = _Fields(raw, what, line)
    schema = record.data.get("schema")
    if schema != SCHEMA:
        raise ReportError(
            f"{what} line {line} has schema {schema!r}; this report reads schema {SCHEMA}. "
            "Use the profiler version that wrote the run, or re-run the sweep."
        )
    stage = record.sub("stage")
    load = record.sub("load")
    if stage is None or load is None:  # pragma: no cover - sub() raises for required fields
        raise _fail(what, line, "stage", "an object")
    window = _window(stage, what, line)
    per_query = window.per_query if window else None
    warnings = []
    window_error = stage.opt_text("window_error")
    if window_error:
        warnings.append(f"no energy window: {window_error}")
    if stage.data.get("complete") is False:
        warnings.append("the stage did not run to completion")
    reasons = stage.data.get("failure_reasons") or {}
    if not isinstance(reasons, dict) or not all(isinstance(v, int) for v in reasons.values()):
        raise stage._error("failure_reasons", "an object of counts")
    return Repeat(
        line=line,
        cell=record.text("cell"),
        model=record.text("model"),
        format=record.text("format"),
        engine=record.opt_text("engine") or record.text("format"),
        device=record.opt_text("device") or "?",
        mode=record.opt_text("mode") or "?",
        max_new_tokens=record.opt_int("max_new_tokens"),
        length=record.integer("bucket"),
        load=_load_level(load),
        repeat=record.opt_int("repeat") or 1,
        duration_s=stage.opt_number("duration_s") or 0.0,
        requests=stage.opt_int("requests") or 0,
        failures=stage.opt_int("failures") or 0,
        failure_reasons={str(k): int(v) for k, v in reasons.items()},
        latency_ms=stage.numbers("latency_ms"),
        throughput_rps=stage.opt_number("throughput_rps"),
        tokens_per_s=stage.opt_number("tokens_per_s"),
        energy_source=stage.opt_text("energy_source") or record.opt_text("energy_source"),
        gross_j_per_query=stage.opt_number("gross_j_per_query"),
        net_j_per_query=stage.opt_number("net_j_per_query"),
        net_clamped=per_query.clamped if per_query else False,
        window_j=window.measurement.total_j if window else None,
        window_s=window.measurement.duration_s if window else None,
        timeline=_timeline(record),
        peak_rss_bytes=record.opt_int("peak_rss_bytes"),
        peak_gpu_memory_bytes=record.opt_int("peak_gpu_memory_bytes"),
        warnings=tuple(warnings),
    )


def _read_accuracy(path: Path) -> list[AccuracyScore]:
    scores = []
    for line, raw in enumerate(read_records(path), start=1):
        entry = _Fields(raw, ACCURACY_NAME, line)
        scores.append(
            AccuracyScore(
                model=entry.text("model"),
                format=entry.opt_text("format"),
                input_length=entry.opt_int("input_length"),
                task=entry.text("task"),
                score=entry.number("score"),
                count=entry.opt_int("count"),
            )
        )
    return scores


def _read_environment(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(f"{FINGERPRINT_NAME} is missing: the environment is unknown.")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{FINGERPRINT_NAME} could not be read ({exc}): the environment is unknown.")
        return None
    if not isinstance(data, dict):
        notes.append(f"{FINGERPRINT_NAME} does not hold an object: the environment is unknown.")
        return None
    return data


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
    if not directory.is_dir():
        raise ReportError(f"{role} directory {directory} is a file; pass its folder (reports/<run-id>/).")
    results = directory / RESULTS_NAME
    if not results.is_file():
        raise ReportError(
            f"{role} directory {directory} has no {RESULTS_NAME}: it is not a sweep's run directory, or "
            "its sweep recorded nothing yet. Run `profiler sweep CONFIG`, or "
            f"`profiler sweep --resume {directory}`."
        )
    try:
        raw_records = read_records(results)
    except OSError as exc:
        raise ReportError(f"cannot read {results}: {exc}; check its permissions.") from exc
    except RecordsError as exc:
        raise ReportError(str(exc)) from exc
    if not raw_records:
        raise ReportError(
            f"{results} holds no complete records: the sweep stopped before its first cell finished. "
            f"Finish it with `profiler sweep --resume {directory}`."
        )
    notes: list[str] = []
    by_cell: dict[str, Repeat] = {}
    for line, raw in enumerate(raw_records, start=1):
        repeat = parse_record(raw, line)
        if repeat.cell in by_cell:
            notes.append(f"cell {repeat.cell!r} is recorded twice; line {line} is used.")
        by_cell[repeat.cell] = repeat
        notes.extend(f"cell {repeat.cell!r}: {warning}." for warning in repeat.warnings)
    repeats = list(by_cell.values())
    environment = _read_environment(directory / FINGERPRINT_NAME, notes)
    config_path = directory / CONFIG_NAME
    try:
        config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"{CONFIG_NAME} could not be read ({exc}).")
        config_text = None
    try:
        accuracy = _read_accuracy(directory / ACCURACY_NAME)
    except OSError as exc:
        raise ReportError(f"cannot read {directory / ACCURACY_NAME}: {exc}; check its permissions.") from exc
    except RecordsError as exc:
        raise ReportError(str(exc)) from exc
    run_ids = {str(r["run_id"]) for r in raw_records if isinstance(r.get("run_id"), str)}
    run_id = run_ids.pop() if len(run_ids) == 1 else directory.name
    return RunData(directory, run_id, repeats, environment, config_text, accuracy, notes)
