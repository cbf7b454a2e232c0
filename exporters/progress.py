"""How far an export has got, step by step, for whoever shows it (``profiler export``, a sweep).

An export writes its graphs (ONNX: encoder, decoder_init, decoder_step, one after another;
TorchScript: the three traced into one module), then computes transformers' answer for every
parity case (each bucket, the lengths between, the batches) and runs each through the graphs.
Every step is announced as it starts, with how many are done and how many there are in all; the
last announcement has ``done == total``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportStep:
    """The step starting now (``what``), after ``done`` of ``total`` steps."""

    what: str
    done: int
    total: int


#: Receives each step as it starts.
ExportProgress = Callable[[ExportStep], None]


class Steps:
    """Counts an export's steps and tells ``report`` (if any) as each starts."""

    def __init__(self, total: int, report: ExportProgress | None) -> None:
        self.total = total
        self.done = -1
        self.report = report

    def start(self, what: str) -> None:
        """The previous step is done; ``what`` starts."""
        self.done += 1
        if self.report is not None:
            self.report(ExportStep(what, self.done, self.total))


def case_label(lengths: list[int], global_tokens: list[int]) -> str:
    """``1024 tokens, global 1`` for one row, ``4096,3679 tokens (batch 2), global 1,5`` for a batch."""
    text = f"{','.join(map(str, lengths))} tokens"
    if len(lengths) > 1:
        text += f" (batch {len(lengths)})"
    return f"{text}, global {','.join(map(str, global_tokens))}"
