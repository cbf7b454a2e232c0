"""``profiler report``: tables in the terminal, ``report.md``, ``summary.csv``, plots and comparisons
of a run directory written by ``profiler sweep``.

Modules, by concern: :mod:`~profiler.report.load` (read and check a run directory),
:mod:`~profiler.report.aggregate` (cells, repeats combined, scaling slopes),
:mod:`~profiler.report.tables` (the tables as data), :mod:`~profiler.report.terminal` (rich),
:mod:`~profiler.report.plots` (matplotlib, Agg), :mod:`~profiler.report.compare` (two runs),
:mod:`~profiler.report.writers` (Markdown and CSV), :mod:`~profiler.report.render` (the entry point).
"""

from __future__ import annotations

from profiler.report.load import ReportError
from profiler.report.render import ReportOutputs, render_report

__all__ = ["ReportError", "ReportOutputs", "render_report"]
