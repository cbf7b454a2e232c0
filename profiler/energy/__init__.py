"""Energy measurement: named windows over NVML, RAPL or a labelled estimate; idle baseline; timeline.

Layout (after Zeus): :mod:`~profiler.energy.meter` is what callers use; the hardware layer is one
module per source (:mod:`~profiler.energy.nvml`, :mod:`~profiler.energy.rapl`,
:mod:`~profiler.energy.estimate`) behind the contract in :mod:`~profiler.energy.common`;
:mod:`~profiler.energy.factory` probes them in order. See docs/energy.md.
"""

from __future__ import annotations

from profiler.energy.attribution import Attribution, attribute_energy
from profiler.energy.baseline import IdleBaseline, PerQueryEnergy, measure_idle, per_query_energy
from profiler.energy.common import (
    SOURCES,
    BackendUnavailable,
    EnergyBackend,
    EnergyError,
    EnergyFallbackWarning,
    EnergyPermissionError,
    NotSupportedError,
    ShortWindowWarning,
    Source,
    WindowError,
    format_energy,
)
from profiler.energy.estimate import EstimateConfig
from profiler.energy.factory import create_backend, default_backend, reset_default_backend
from profiler.energy.meter import EnergyMeter, Measurement, Window
from profiler.energy.timeline import PowerTimeline, TimelineSample

__all__ = [
    "SOURCES",
    "Attribution",
    "BackendUnavailable",
    "EnergyBackend",
    "EnergyError",
    "EnergyFallbackWarning",
    "EnergyMeter",
    "EnergyPermissionError",
    "EstimateConfig",
    "IdleBaseline",
    "Measurement",
    "NotSupportedError",
    "PerQueryEnergy",
    "PowerTimeline",
    "ShortWindowWarning",
    "Source",
    "TimelineSample",
    "Window",
    "WindowError",
    "attribute_energy",
    "create_backend",
    "default_backend",
    "format_energy",
    "measure_idle",
    "per_query_energy",
    "reset_default_backend",
]
