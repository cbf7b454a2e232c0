"""Serving profiler for long-context seq2seq models: latency, throughput and energy per query."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("long-context-profiler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
