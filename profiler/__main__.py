"""Allow ``python -m profiler``."""

from profiler.cli import app

app()
