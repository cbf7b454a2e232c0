"""`profiler serve`'s batching and admission settings, checked where they are built.

The bounds are stated once (batching's in :class:`profiler.api.Batching`, which ``GET /v1/info``
also answers with): the CLI's options and a sweep's ``[server]`` table are both
checked against them, so a bad value is one line naming the option, never a server that starts
and then cannot batch or admit anything.
"""

from __future__ import annotations

from profiler.api import Batching
from profiler.attention_layout import GlobalAttention
from profiler.validation import Count


class ServeSettings(Batching):
    """Everything the app is built with: batching, and what it admits."""

    truncate: bool = False
    max_body_bytes: Count = 1 << 20
    #: LED's global attention when a request does not say; None: ``first`` for a model that has it.
    global_attention: GlobalAttention | None = None
