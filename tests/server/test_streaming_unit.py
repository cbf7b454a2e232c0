"""The pieces of text a streamed answer's token events carry, with the tiny checkpoints' real
tokenizers (byte-level BPE for LED, SentencePiece for BigBird-Pegasus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.checkpoints import ARCHS
from profiler.server.streaming import Detokenizer
from profiler.workload import load_tokenizer

TEXT = "The committee's budget — 1,234 € — was reviewed in März.\n\nIt met twice; the vote passed."


@pytest.mark.parametrize("arch", ARCHS)
def test_the_pieces_joined_are_the_decoded_text(arch: str, tiny_checkpoints: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(tiny_checkpoints[arch])
    ids = tokenizer(TEXT)["input_ids"]
    detokenizer = Detokenizer(tokenizer)
    pieces = [detokenizer.add(token) for token in ids]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert sum(1 for piece in pieces if piece) > len(ids) // 2  # pieces come as tokens do, not at the end
