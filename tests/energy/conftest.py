"""Every energy test starts and ends without a cached default backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from profiler.energy import reset_default_backend


@pytest.fixture(autouse=True)
def _fresh_default_backend() -> Iterator[None]:
    reset_default_backend()
    yield
    reset_default_backend()
