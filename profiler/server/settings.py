"""`profiler serve`'s batching and admission settings, checked where they are built.

The bounds are stated once, here: the CLI's options and a sweep's ``[server]`` table are both
checked against them, so a bad value is one line naming the option, never a server that starts
and then cannot batch or admit anything.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from profiler.validation import Count, Strict


class Batching(Strict):
    """How the server batches; also a sweep's ``[server]`` table, which passes them on."""

    max_batch_size: Count = 8
    #: How long a request waits for batch-mates. Units: ms.
    max_wait_ms: Annotated[float, Field(ge=0)] = 5.0
    #: Requests that may wait; beyond it, 503.
    max_queue: Count = 256


class ServeSettings(Batching):
    """Everything the app is built with: batching, and what it admits."""

    truncate: bool = False
    max_body_bytes: Count = 1 << 20
