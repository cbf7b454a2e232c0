"""The documented locustfile in a checkout: ``locust -f loadtests/scrolls.py ...`` (docs/loadtests.md).

The load test itself ships in the package (:mod:`profiler.loadgen.locustfile`), so an installed
project runs it without a checkout; importing it registers the flags and listeners, and the names
below are the user and shape classes locust looks for in this file.
"""

from __future__ import annotations

from profiler.loadgen.locustfile import ScrollsStages, ScrollsUser

__all__ = ["ScrollsStages", "ScrollsUser"]
