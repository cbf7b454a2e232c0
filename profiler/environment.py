"""The run's environment (``environment.json``): the machine, the packages and the code that measured.

Written once per run directory by the sweep and shown by the report beside the figures, so a
number can be traced to what produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from profiler.documents import Document

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


class GpuInfo(Document):
    """One GPU as NVML names it."""

    index: int
    name: str
    memory_total_bytes: int
    driver: str


class Environment(Document):
    """CPU, GPUs and driver, Python and package versions, and the git commit of the code that ran.

    Attributes:
        memory_bytes: physical memory; None where the platform cannot say.
        packages: installed versions of :data:`FINGERPRINT_PACKAGES` (absent ones left out).
        git_commit: ``HEAD``, with ``-dirty`` when tracked files were changed; None outside git.
    """

    cpu: str
    cpu_count: int | None
    memory_bytes: int | None
    gpus: list[GpuInfo]
    platform: str
    python: str
    packages: dict[str, str]
    git_commit: str | None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[GpuInfo]:
    """GPU names, memory and driver through NVML; empty where there is none."""
    from profiler.energy import EnergyError
    from profiler.energy.nvml import NvmlDevices

    try:
        devices = NvmlDevices()
    except EnergyError:  # no NVML library, driver or GPU: the fingerprint says so by an empty list
        return []
    try:
        return [GpuInfo.model_validate(gpu) for gpu in devices.describe()]
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


def fingerprint(source_dir: Path | None = None) -> Environment:
    """This machine and this code, now."""
    versions = {}
    for name in FINGERPRINT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return Environment(
        cpu=_cpu_model(),
        cpu_count=os.cpu_count(),
        memory_bytes=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if hasattr(os, "sysconf")
        else None,
        gpus=_gpus(),
        platform=platform.platform(),
        python=platform.python_version(),
        packages=versions,
        git_commit=_git_commit(source_dir or Path(__file__).resolve().parent.parent),
    )
