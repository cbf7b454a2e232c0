"""The answers to opening and closing a named energy window: one document each, from the server
to the report.

The server writes a closed window's result (``POST /v1/energy/windows/{name}/end``), the load
generator stores it in each stage of its results file, the sweep copies that stage into
``results.jsonl`` and the report reads it back, all through this one class.
"""

from __future__ import annotations

from profiler.documents import Document
from profiler.energy.attribution import Attribution
from profiler.energy.baseline import IdleBaseline, PerQueryEnergy
from profiler.energy.common import Source
from profiler.energy.meter import Measurement


class OpenedWindow(Document):
    """``POST /v1/energy/windows/{name}``: the window is open and measures from now."""

    name: str
    source: Source


class WindowResult(Document):
    """A closed window: its energy, the queries completed in it, and joules per query.

    Attributes:
        measurement: the window's joules per domain, duration and source.
        completed: queries whose response was sent while the window was open.
        per_query: gross and net joules per query; None when no query completed.
        idle: the idle baseline the net figure subtracts; None when none was measured.
        requests: each request's joules, when asked for (``?requests=true``).
    """

    measurement: Measurement
    completed: int
    per_query: PerQueryEnergy | None
    idle: IdleBaseline | None
    requests: Attribution | None = None
