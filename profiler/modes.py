"""The query modes, defined once for the server's request body, the engine's jobs, the load
generator's ``--mode`` and the sweep config.

A module of its own that imports nothing, so every side may import it without an import
pointing the wrong way: the load generator must not reach :mod:`profiler.server`, where the
request body lives, and the engines and the server should not lean on the load generator.
"""

from __future__ import annotations

from typing import Literal, get_args

#: ``generate``: greedy decoding; ``forward``: a teacher-forced decoder pass; ``encode``: the
#: encoder only (see docs/serving.md).
Mode = Literal["generate", "forward", "encode"]
MODES: tuple[Mode, ...] = get_args(Mode)
