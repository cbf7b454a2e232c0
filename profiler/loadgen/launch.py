"""The one way the project starts locust headless on `loadtests/scrolls.py` (sweeps, benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "scrolls.py"


def locust_command(host: str, users: int, *options: str) -> list[str]:
    """``python -m locust -f loadtests/scrolls.py --headless`` against ``host`` with ``users`` users
    spawned at once, plus the load test's own ``options`` (see docs/loadtests.md)."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "-u", str(users), "-r", str(users), *options,
    ]  # fmt: skip
