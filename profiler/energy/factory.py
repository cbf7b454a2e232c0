"""Choose the energy backend for this machine: NVML, then RAPL, then the labelled estimate.

Probe order (the first that works wins, and its name is the ``source`` of every figure):

1. ``nvml-counter``: NVIDIA GPU with the energy counter (Volta and newer);
2. ``nvml-power``: NVIDIA GPU without it (the counter call is not supported): sampled power;
3. ``rapl``: readable CPU package / DRAM counters under /sys/class/powercap;
4. ``estimate``: CPU time x watts per core, always available.

A backend that is simply absent (no driver, no powercap) leaves a note; one that exists but fails
(unreadable RAPL files, a failing GPU) also leaves a warning, raised once here and repeated in
every measurement, so a user who expected real joules learns why they got an estimate.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

from profiler.energy import nvml, rapl
from profiler.energy.common import (
    SOURCES,
    BackendUnavailable,
    EnergyBackend,
    EnergyError,
    EnergyFallbackWarning,
    EnergyPermissionError,
    Source,
)
from profiler.energy.estimate import EstimateBackend, EstimateConfig


def _check_prefer(prefer: str | None) -> None:
    if prefer is not None and prefer not in SOURCES:
        raise ValueError(f"unknown energy source {prefer!r}; choose one of: {', '.join(SOURCES)}.")


def create_backend(
    prefer: Source | None = None,
    *,
    gpu_indices: Sequence[int] | None = None,
    powercap_root: Path = rapl.POWERCAP_ROOT,
    estimate: EstimateConfig | None = None,
    nvml_power_period_s: float = nvml.NVML_POWER_PERIOD_S,
    rapl_poll_s: float | None = None,
) -> EnergyBackend:
    """Probe the backends in order and return the first that works (a new one, owned by the caller).

    Args:
        prefer: insist on one source instead of probing; fails rather than fall back.
        gpu_indices: NVML indices to measure (default: every GPU).
        powercap_root: where RAPL zones live (a parameter so tests can serve fake files).
        estimate: the estimate's assumed watts, if it ends up being used.
        nvml_power_period_s: sampling period of the nvml-power backend.
        rapl_poll_s: period of RAPL's wraparound check (None: from the counter range).

    Raises:
        EnergyError: ``prefer`` names a source that cannot run here (the message says why).
    """
    _check_prefer(prefer)
    notes: list[str] = []
    problems: list[str] = []

    def finish(backend: EnergyBackend) -> EnergyBackend:
        backend.probe_notes = tuple(notes)
        backend.warnings = (*backend.warnings, *problems)
        for problem in problems:
            warnings.warn(problem, EnergyFallbackWarning, stacklevel=3)
        return backend

    if prefer in (None, "nvml-counter", "nvml-power"):
        try:
            backend = nvml.probe_nvml(gpu_indices, nvml_power_period_s)
        except EnergyError as error:
            if prefer is not None:
                raise EnergyError(f"energy source {prefer} is not available: {error}") from error
            failed = isinstance(error, EnergyPermissionError) or not isinstance(error, BackendUnavailable)
            (problems if failed else notes).append(f"nvml: {error}")
        else:
            if prefer is None or backend.source == prefer:
                return finish(backend)
            backend.close()
            raise EnergyError(
                f"energy source {prefer} is not available: these GPUs support {backend.source} only."
            )

    if prefer in (None, "rapl"):
        try:
            backend = rapl.probe_rapl(powercap_root, rapl_poll_s)
        except EnergyPermissionError as error:
            if prefer is not None:
                raise
            problems.append(f"{error} Using the estimate instead.")
        except BackendUnavailable as error:
            if prefer is not None:
                raise EnergyError(f"energy source rapl is not available: {error}") from error
            notes.append(f"rapl: {error}")
        else:
            return finish(backend)

    return finish(EstimateBackend(estimate))


#: The process-wide backend, under key "default" once probed.
_cache: dict[str, EnergyBackend] = {}
_cache_lock = threading.Lock()


def default_backend() -> EnergyBackend:
    """The process-wide backend, probed once on first use and shared by every default meter."""
    with _cache_lock:
        if "default" not in _cache:
            _cache["default"] = create_backend()
        return _cache["default"]


def reset_default_backend() -> None:
    """Close and forget the process-wide backend (tests; or after hardware changed)."""
    with _cache_lock:
        backend = _cache.pop("default", None)
    if backend is not None:
        backend.close()
