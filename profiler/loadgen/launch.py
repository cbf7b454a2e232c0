"""The one way the project starts locust headless on its load test (sweeps, benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

#: The packaged locustfile (not ``loadtests/scrolls.py``, which only a checkout has). Found beside
#: this module, so it is never imported here: importing it imports locust, which patches the process.
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")


def locust_command(host: str, users: int, *options: str) -> list[str]:
    """``python -m locust -f LOCUSTFILE --headless`` against ``host`` with ``users`` users
    spawned at once, plus the load test's own ``options`` (see docs/loadtests.md)."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "-u", str(users), "-r", str(users), *options,
    ]  # fmt: skip
