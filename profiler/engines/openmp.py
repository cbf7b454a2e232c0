"""How PyTorch's idle OpenMP threads wait: passively, as ONNX Runtime's do in this profiler.

GNU OpenMP (the runtime PyTorch's CPU wheels ship) lets a thread that finished its share of an op
spin before it sleeps. Eager PyTorch runs hundreds of small ops per decoding step, so its threads
spin between them and take the CPUs the next op, and every other process, needs. Measured on a
2-core machine with other work on it (``python -m benchmarks contention``, small LED, 1,024
tokens, 32 new tokens): eager 3,308 ms per request with spinning against 354 ms without; the
exported graphs' sessions already turn spinning off (``session.intra_op.allow_spinning``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: OpenMP's variable for how idle threads wait, and the value the profiler runs torch with.
WAIT_POLICY = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"


def wait_passively(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Have idle OpenMP threads sleep rather than spin, unless the user chose a policy.

    OpenMP reads the variable once, when torch loads, so this must run before ``import torch``;
    processes started from this one inherit it. Returns whether it can take effect here.
    """
    environ.setdefault(WAIT_POLICY, PASSIVE)
    return "torch" not in sys.modules
