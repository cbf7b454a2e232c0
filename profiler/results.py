"""Result records, the environment fingerprint, and the append-only JSONL files of a run.

A record is one sweep cell (``results.jsonl``) or one accuracy score (``accuracy.jsonl``). Records
are appended one line at a time with a single ``write`` and an ``fsync``, so a writer killed at
any moment (even ``kill -9``) leaves every finished record intact and at most one torn last line
(no newline), which :func:`read_records` skips and :meth:`ResultStore.open` cuts off. Any other
line that is not a JSON object is damage no writer of ours leaves: it is refused, never skipped,
so no record after it is silently lost.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError

RESULTS_NAME = "results.jsonl"
ACCURACY_NAME = "accuracy.jsonl"
FINGERPRINT_NAME = "environment.json"

#: Packages whose versions change what is measured.
FINGERPRINT_PACKAGES = (
    "long-context-profiler",
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "optimum",
    "optimum-onnx",
    "locust",
    "fastapi",
    "uvicorn",
    "nvidia-ml-py",
    "numpy",
)


class RecordsError(ProfilerError):
    """A line of a records file, other than a torn last one, is not a record; the file is untouched."""


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete records, and the byte length they fill (all but a torn last line).

    Raises:
        RecordsError: a complete line is not a JSON object; the message names the file and line.
    """
    records: list[dict[str, Any]] = []
    valid = 0
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            break  # the last line, and the writer was killed mid-line
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _damaged(path, number, f"not JSON: {exc.msg} at column {exc.colno}") from exc
        except UnicodeDecodeError as exc:
            raise _damaged(path, number, "not UTF-8 text") from exc
        if not isinstance(record, dict):
            raise _damaged(path, number, f"a JSON {type(record).__name__}, not an object")
        records.append(record)
        valid += len(line)
    return records, valid


def _damaged(path: Path, number: int, why: str) -> RecordsError:
    return RecordsError(
        f"{path} line {number} is damaged ({why}); the file was left unchanged. Repair or delete "
        "that line, then run the command again: a deleted result is measured again by "
        "`profiler sweep --resume`, a deleted score by `profiler eval ... --run`."
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a records file (a torn last line is skipped); none if it does not exist.

    Raises:
        RecordsError: another line is not a record.
    """
    return _scan(path)[0] if path.exists() else []


class ResultStore:
    """Append-only records in one file of a run directory (results by default)."""

    def __init__(self, directory: Path, name: str = RESULTS_NAME) -> None:
        self.directory = directory
        self.path = directory / name

    def open(self) -> list[dict[str, Any]]:
        """Existing records; a torn last line from a killed writer is cut off so appends stay valid.

        Raises:
            RecordsError: another line is not a record (nothing is cut off then).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return []
        records, valid = _scan(self.path)
        if self.path.stat().st_size != valid:
            with self.path.open("r+b") as handle:
                handle.truncate(valid)
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, atomically enough to survive ``kill -9``."""
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(descriptor, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[dict[str, Any]]:
    """GPU names, memory and driver through NVML; empty where there is none."""
    from profiler.energy import EnergyError
    from profiler.energy.nvml import NvmlDevices

    try:
        devices = NvmlDevices()
    except EnergyError:  # no NVML library, driver or GPU: the fingerprint says so by an empty list
        return []
    try:
        return devices.describe()
    finally:
        devices.close()


def _git_commit(directory: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    commit = result.stdout.strip()
    if not commit:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return f"{commit}{'-dirty' if dirty else ''}"


def fingerprint(source_dir: Path | None = None) -> dict[str, Any]:
    """CPU, GPUs and driver, Python and package versions, git commit of the code that ran."""
    versions = {}
    for name in FINGERPRINT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if hasattr(os, "sysconf")
        else None,
        "gpus": _gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(source_dir or Path(__file__).resolve().parent.parent),
    }
