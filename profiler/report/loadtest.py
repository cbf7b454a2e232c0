"""Read one load test's results file (what ``locust -f loadtests/scrolls.py`` writes) as a run.

Each stage becomes a cell, as a sweep would have recorded it: the model, format, engine and device
from the server's ``/v1/info`` in the file, the load level from the test's users or rate, one
repeat (a length run twice is two repeats). A file from a capacity search reports its searches.
The file holds no environment, timeline or memory figures; those read ``-``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from profiler.api import ServerInfo
from profiler.jsonl import field_errors
from profiler.loadgen.results import LoadTestResults
from profiler.report.load import Repeat, ReportError, RunData, to_repeat
from profiler.results import CAPACITY_LEVEL, CapacityRecord, LoadShape, ResultRecord, cell_key
from profiler.rundir import ACCURACY_NAME, CAPACITY_NAME, RESULTS_NAME

#: What a run directory's record files are; one passed on its own is pointed at its folder.
_RUN_FILES = (RESULTS_NAME, CAPACITY_NAME, ACCURACY_NAME)
#: Validation errors shown at most, so the message stays one readable line.
_MAX_ERRORS = 3
UNKNOWN = "unknown"


def report_dir(path: Path) -> Path:
    """Where the report of a results file is written: ``reports/loadtest-X.json`` ->
    ``reports/loadtest-X-report/``."""
    return path.with_name(f"{path.stem}-report")


def _named(path: Path, role: str) -> str:
    """The file as messages name it: ``comparison run X`` for ``--compare``'s."""
    return str(path) if role == "run" else f"{role} {path}"


def _neither(path: Path, why: str, role: str) -> ReportError:
    return ReportError(
        f"{_named(path, role)} is neither a run directory nor a load test's results file ({why}); pass "
        "reports/<run-id>/ written by `profiler sweep`, or the JSON file `locust -f loadtests/scrolls.py` "
        "writes (reports/loadtest-<time>.json)."
    )


def read_results(path: Path, role: str = "run") -> LoadTestResults:
    """The results document in ``path``, or a :class:`ReportError` that says what the file is not."""
    if path.name in _RUN_FILES:
        raise ReportError(
            f"{_named(path, role)} is one file of a run directory; pass its folder, {path.parent}."
        )
    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc}; check its permissions.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise _neither(path, f"not JSON: {exc}", role) from exc
    if not isinstance(raw, dict) or "stages" not in raw:
        raise _neither(path, "a JSON document without `stages`", role)
    version = raw.get("schema_version")
    if version != 1:
        raise ReportError(
            f"{_named(path, role)} is a load test's results file of schema version {version!r}, and "
            "this profiler reads version 1; report it with the profiler version that wrote it."
        )
    try:
        return LoadTestResults.model_validate(raw)
    except ValidationError as exc:
        errors = field_errors(exc).split("; ")
        more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
        wrong = "; ".join(errors[:_MAX_ERRORS]) + more
        raise ReportError(
            f"{_named(path, role)} is not a complete load test's results file ({wrong}); was it "
            "written by this profiler's `locust -f loadtests/scrolls.py`?"
        ) from exc


def _served(server: ServerInfo | None) -> tuple[str, str, str, str, str]:
    """(model, checkpoint, format, engine, device) of the server the test loaded, as a sweep names
    them: the checkpoint's folder name, ``eager`` for a checkpoint served as it is."""
    if server is None:
        return UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN
    checkpoint = server.manifest.source_path if server.manifest else server.source
    fmt = server.manifest.format if server.manifest else "eager"
    return Path(checkpoint).name or checkpoint, checkpoint, fmt, server.engine, server.device


def settings_text(results: LoadTestResults) -> str:
    """The test's settings, server and energy as JSON: everything in the file but its raw samples."""
    return results.model_dump_json(indent=2, exclude={"stages", "capacity"})


def load_results_file(path: Path, role: str = "run") -> RunData:
    """A load test's results file as the report's run data, written into :func:`report_dir`.

    Raises:
        ReportError: the file is not a results file, or holds no finished stage.
    """
    results = read_results(path, role)
    run_id = path.stem
    model, checkpoint, fmt, engine, device = _served(results.server)
    precision = results.server.precision if results.server else "fp32"
    notes = []
    if results.server is None:
        notes.append(f"{path.name} holds no server information: model, format and device are unknown.")
    if not results.complete:
        notes.append(f"{path.name}: the load test did not run every stage to completion.")
    # As the sweep records it: what the requests asked for, else the server's default.
    attention = results.global_attention or (results.server.global_attention if results.server else "none")
    capacity = [
        CapacityRecord(
            run_id=run_id,
            cell=cell_key(model, fmt, CAPACITY_LEVEL, 1, found.length),
            model=model,
            checkpoint=checkpoint,
            format=fmt,
            engine=engine,
            device=device,
            precision=precision,
            mode=results.mode,
            max_new_tokens=results.max_new_tokens,
            global_attention=attention,
            repeat=1,
            capacity=found,
            recorded_wall_s=results.ended_wall_s,
        )
        for found in results.capacity
    ]
    closed = results.arrival == "closed"
    load = LoadShape(
        arrival=results.arrival,
        concurrency=results.users if closed else None,
        rate=None if closed else results.rate,
    )
    level = f"{results.arrival}:{load.level:g}"
    seen: Counter[int] = Counter()
    repeats: list[Repeat] = []
    # A capacity search's stages are its probes, each at its own rate: the search reports them.
    for stage in [] if capacity else results.stages:
        seen[stage.length] += 1
        record = ResultRecord(
            run_id=run_id,
            cell=cell_key(model, fmt, level, seen[stage.length], stage.length),
            model=model,
            checkpoint=checkpoint,
            format=fmt,
            engine=engine,
            device=device,
            precision=precision,
            bucket=stage.length,
            mode=results.mode,
            max_new_tokens=results.max_new_tokens,
            load=load,
            repeat=seen[stage.length],
            stage=stage,
            idle=results.idle,
            timeline=[],
            peak_rss_bytes=None,
            peak_gpu_memory_bytes=None,
            recorded_wall_s=results.ended_wall_s,
            global_attention=attention,
            decoding=results.server.decoding if results.server else None,
        )
        repeat = to_repeat(record, len(repeats) + 1)
        notes.extend(f"stage {stage.name!r}: {warning}." for warning in repeat.warnings)
        repeats.append(repeat)
    if not repeats and not capacity:
        raise ReportError(
            f"{_named(path, role)} holds no finished stage: the load test stopped before its first "
            "stage ended. Run it again, for longer (--stage-seconds)."
        )
    return RunData(
        directory=report_dir(path),
        run_id=run_id,
        repeats=repeats,
        environment=None,
        config_text=settings_text(results),
        notes=notes,
        capacity=capacity,
        kind="loadtest",
        source=path,
    )
