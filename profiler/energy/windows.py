"""The answers to opening and closing a named energy window: one document each, from the server
to the report.

The server writes a closed window's result (``POST /v1/energy/windows/{name}/end``), the load
generator stores it in each stage of its results file, the sweep copies that stage into
``results.jsonl`` and the report reads it back, all through this one class.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from profiler.documents import Document
from profiler.energy.attribution import Attribution
from profiler.energy.baseline import IdleBaseline, PerQueryEnergy
from profiler.energy.common import Source
from profiler.energy.contention import Contention
from profiler.energy.meter import Measurement


class OpenWindow(Document):
    """``POST /v1/energy/windows/{name}``'s optional body: who else runs on the server's machine.

    Attributes:
        load_generator_pid: the load generator's root process; its process tree's CPU time is
            then counted apart from others' (the server refuses a pid it does not have).
        load_generator_machine: the load generator's boot id (``/proc/sys/kernel/random/boot_id``);
            when it is not the server's, the pid belongs to another machine and is ignored.
    """

    load_generator_pid: Annotated[int, Field(gt=0)] | None = None
    load_generator_machine: str | None = None


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
        contention: what else used the server's machine meanwhile; None off Linux and in results
            written before it was measured.
    """

    measurement: Measurement
    completed: int
    per_query: PerQueryEnergy | None
    idle: IdleBaseline | None
    requests: Attribution | None = None
    contention: Contention | None = None
