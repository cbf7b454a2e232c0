"""How one input is laid out for the encoder: its padded length, and the inputs that describe its
sparse attention (LED's global tokens, BigBird's key blocks), computed on the host row by row.

transformers pads each input to a multiple of LED's window or BigBird's block, and BigBird's block
pattern (and whether it attends sparsely at all) depends on that padded length. Computed here for
every row's own length, one dynamic-length encoder graph returns what transformers' ``generate``
returns for that input alone, whatever shares its batch; a 1,100-token input costs 1,152 tokens of
compute, not a bucket's 2,048. Pure numpy: the engines, the exporter and the parity check share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from profiler.documents import Document

AttentionKind = Literal["sliding_window", "block_sparse", "full"]
GlobalAttention = Literal["none", "first", "query"]
GLOBAL_ATTENTION_MODES: tuple[GlobalAttention, ...] = ("none", "first", "query")

#: The encoder graph's inputs beyond ``input_ids`` and ``attention_mask``, per attention kind.
GLOBAL_ATTENTION_MASK = "global_attention_mask"
GLOBAL_INDEX = "global_index"
BLOCK_INDEX = "block_index"
BLOCK_BIAS = "block_bias"
LAST_BLOCK = "last_block"
EXTRA_INPUTS: dict[AttentionKind, tuple[str, ...]] = {
    "sliding_window": (GLOBAL_ATTENTION_MASK, GLOBAL_INDEX),
    "block_sparse": (BLOCK_INDEX, BLOCK_BIAS, LAST_BLOCK),
    "full": (),
}
#: transformers' BigBird adds this to masked scores (not -inf); kept so results match exactly.
BIGBIRD_MASK_PENALTY = -10000.0


@dataclass(frozen=True)
class EncoderBatch:
    """What the encoder graph is fed for one batch: padded ids, mask, and the layout's extra inputs."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    extra: dict[str, np.ndarray]


class EncoderLayout(Document):
    """What the host must know of the encoder's attention to pad an input and describe its pattern.

    Attributes:
        attention: ``sliding_window`` (LED), ``block_sparse`` (BigBird) or ``full``.
        multiple: inputs are padded to a multiple of this many tokens (LED: its largest window;
            BigBird: its block); 1 for full attention.
        block_size: ``block_sparse`` only: tokens per block.
        random_blocks: ``block_sparse`` only: random key blocks per query block (transformers
            draws none in eval mode, where they all become the first block).
        global_attention: whether the model has global attention (LED).
    """

    attention: AttentionKind
    multiple: int = 1
    block_size: int = 0
    random_blocks: int = 0
    global_attention: bool = False

    def extra_inputs(self) -> tuple[str, ...]:
        """The encoder graph's inputs after ``input_ids`` and ``attention_mask``, in order."""
        return EXTRA_INPUTS[self.attention]

    def row_length(self, tokens: int) -> int:
        """What transformers pads an input of ``tokens`` to (never fewer than ``tokens``)."""
        return math.ceil(max(tokens, 1) / self.multiple) * self.multiple

    def sparse_row(self, tokens: int) -> bool:
        """Whether BigBird attends block-sparsely to an input this long: transformers switches to
        full attention at ``(5 + 2 x random blocks) x block`` tokens or fewer."""
        return self.attention == "block_sparse" and tokens > (5 + 2 * self.random_blocks) * self.block_size

    def batch_width(self, lengths: Sequence[int]) -> int:
        """Padded length of a batch: its longest row's own padded length (at least three blocks for
        block-sparse attention, whose first and last blocks are global)."""
        width = max(self.row_length(tokens) for tokens in lengths)
        return max(width, 3 * self.block_size) if self.attention == "block_sparse" else width

    def batch(
        self,
        rows: Sequence[Sequence[int] | np.ndarray],
        pad_token_id: int,
        global_tokens: Sequence[int] | None = None,
    ) -> EncoderBatch:
        """Rows of token ids padded into one encoder batch, with the layout's extra inputs.

        ``global_tokens``: per row, how many leading tokens attend globally (LED; default none).
        """
        lengths = [len(row) for row in rows]
        width = self.batch_width(lengths)
        input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
        extra = self.feeds(lengths, global_tokens or [0] * len(rows), width)
        return EncoderBatch(input_ids=input_ids, attention_mask=mask, extra=extra)

    def feeds(
        self, lengths: Sequence[int], global_tokens: Sequence[int], width: int
    ) -> dict[str, np.ndarray]:
        """The extra encoder inputs for rows of ``lengths`` real tokens padded to ``width``.

        ``global_tokens``: per row, how many leading tokens attend globally (LED only; 0 for none).
        """
        if self.attention == "sliding_window":
            return led_global_inputs(global_tokens, width)
        if self.attention == "block_sparse":
            return self._block_inputs(lengths, width)
        return {}

    def _block_inputs(self, lengths: Sequence[int], width: int) -> dict[str, np.ndarray]:
        blocks = width // self.block_size
        rows = [
            block_pattern(
                self.row_length(tokens) // self.block_size,
                blocks,
                self.sparse_row(tokens),
                self.random_blocks,
            )
            for tokens in lengths
        ]
        slots = max(index.shape[1] for index, _ in rows)
        index = np.zeros((len(rows), blocks - 2, slots), dtype=np.int64)
        bias = np.full((len(rows), blocks - 2, slots), BIGBIRD_MASK_PENALTY, dtype=np.float32)
        for row, (row_index, row_bias) in enumerate(rows):
            index[row, :, : row_index.shape[1]] = row_index
            bias[row, :, : row_bias.shape[1]] = row_bias
        last = np.array(
            [self.row_length(tokens) // self.block_size - 1 for tokens in lengths], dtype=np.int64
        )
        return {BLOCK_INDEX: index, BLOCK_BIAS: bias, LAST_BLOCK: last}


def query_tokens(text: str, offsets: Sequence[tuple[int, int]]) -> int | None:
    """How many leading tokens make up the query of ``text`` (SCROLLS' ``query\\n\\ndocument``): those
    that start before its first blank line, the leading special token among them; None when the text
    has no blank line. ``offsets``: each token's character span, as fast tokenizers report it."""
    cut = text.find("\n\n")
    if cut < 0:
        return None
    return next((index for index in range(1, len(offsets)) if offsets[index][0] >= cut), len(offsets))


def led_global_inputs(global_tokens: Sequence[int], width: int) -> dict[str, np.ndarray]:
    """LED's global attention as graph inputs: the mask transformers takes, and each row's global
    positions (at least one slot, marked unused by the mask when a row has none, so a batch without
    global attention runs the same graph and adds exactly nothing to any softmax)."""
    mask = np.zeros((len(global_tokens), width), dtype=np.int64)
    index = np.zeros((len(global_tokens), max(1, *global_tokens)), dtype=np.int64)
    for row, count in enumerate(global_tokens):
        mask[row, :count] = 1
        index[row, :count] = np.arange(count)
    return {GLOBAL_ATTENTION_MASK: mask, GLOBAL_INDEX: index}


@cache
def block_pattern(
    row_blocks: int, batch_blocks: int, sparse: bool, random_blocks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Key blocks (and log multiplicities) of query blocks ``1 .. batch_blocks - 2`` of one row.

    transformers' block-sparse attention (eval mode) has each middle query block ``q`` attend to the
    first block, ``q - 1``, ``q``, ``q + 1``, the row's last block, and its random blocks, which in
    eval mode are all the first block; the second and second-to-last blocks skip the neighbour that
    is already global. A block listed twice has twice its weight in the softmax: here each distinct
    block is gathered once with the log of its count as a score bias. A row short enough for full
    attention lists every one of its blocks once. Query blocks past the row's own middle (its last
    block, computed by the graph's global path, and padding) get the first block as a placeholder.

    Returns:
        index and bias, ``[batch_blocks - 2, slots]``; unused slots carry the mask penalty.
    """
    lists: list[dict[int, int]] = []
    for query_block in range(1, batch_blocks - 1):
        if query_block > row_blocks - 2:
            lists.append({0: 1})
        elif not sparse:
            lists.append(dict.fromkeys(range(row_blocks), 1))
        else:
            listed = [0, query_block - 1, query_block, query_block + 1, row_blocks - 1]
            if query_block == 1:
                listed.pop(1)  # the left neighbour is the first block
            elif query_block == row_blocks - 2:
                listed.pop(3)  # the right neighbour is the last block
            counts: dict[int, int] = {}
            for block in listed:
                counts[block] = counts.get(block, 0) + 1
            counts[0] += random_blocks
            lists.append(counts)
    slots = max(len(counts) for counts in lists)
    index = np.zeros((len(lists), slots), dtype=np.int64)
    bias = np.full((len(lists), slots), BIGBIRD_MASK_PENALTY, dtype=np.float32)
    for row, counts in enumerate(lists):
        for slot, (block, count) in enumerate(sorted(counts.items())):
            index[row, slot] = block
            bias[row, slot] = math.log(count)
    index.flags.writeable = False
    bias.flags.writeable = False
    return index, bias
