"""Result records, the environment fingerprint, and the append-only JSONL store of a run.

A record is one sweep cell. Records are appended one line at a time with a single ``write`` and an
``fsync``, so a run killed at any moment (even ``kill -9``) leaves every finished record intact and
at most one torn last line, which :func:`read_records` drops and :meth:`ResultStore.open` cuts off.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_NAME = "results.jsonl"
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


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete records, and the byte length they fill (a torn last line ends the scan)."""
    records: list[dict[str, Any]] = []
    valid = 0
    for line in path.read_bytes().splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # the writer was killed mid-line
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        valid += len(line)
    return records, valid


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a results file (a torn last line is ignored)."""
    return _scan(path)[0] if path.exists() else []


class ResultStore:
    """Append-only records of one run directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / RESULTS_NAME

    def open(self) -> list[dict[str, Any]]:
        """Existing records; a torn last line from a killed run is cut off so appends stay valid."""
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
