"""Benchmarks of the profiler, kept out of the product packages: they use ``profiler`` and
``exporters`` as a user would, and nothing there imports them. Run ``python -m benchmarks``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def write_results(data: object, path: Path, console: Console) -> None:
    """Keep a benchmark's figures as JSON (the table on screen rounds them), and say where."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    console.print(f"results: {path}")
