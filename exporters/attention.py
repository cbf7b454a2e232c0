"""Export-friendly sliding-window and block-sparse attention that compute what transformers computes.

transformers' Longformer (LED) attention chunks with ``as_strided``, which the ONNX exporter gets
wrong, and materialises an O(n^2) mask in ``LEDEncoder.forward``; its BigBird block-sparse attention
builds index tensors with numpy at run time, which neither exporter can capture. Both are rewritten
here with static shapes for one bucket: reshapes, slices, concatenations, constant index tensors
and batched matmuls only, so a trace or an ONNX export at one length is exact at that length.
All tensors are laid out ``[batch, heads, seq, head_dim]``.
"""

from __future__ import annotations

import math

import torch

#: transformers' BigBird adds this to masked scores (not -inf); kept so results match exactly.
BIGBIRD_MASK_PENALTY = -10000.0
#: Excludes a key from a softmax (exp underflows to exactly 0) yet stays finite when added twice.
_LARGE_NEGATIVE = -1e9


def sliding_window_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_valid: torch.Tensor, one_sided: int
) -> torch.Tensor:
    """Each position attends to the keys within ``one_sided`` positions of it, as Longformer does.

    The sequence is cut into blocks of ``one_sided`` positions; block ``t`` attends to blocks
    ``t-1, t, t+1`` (a superset of its band) and a constant band mask keeps exactly
    ``|i - j| <= one_sided``. Padded keys (``key_valid`` false) are excluded; padded queries
    get zeros, as in transformers.

    Args:
        query: ``[b, h, n, d]``, already scaled by ``1/sqrt(d)``.
        key: ``[b, h, n, d]``.
        value: ``[b, h, n, d]``.
        key_valid: ``[b, n]`` bool, true for real tokens.
        one_sided: window on each side; ``n`` must be a multiple of it.
    """
    batch, heads, length, dim = query.shape
    blocks = length // one_sided
    w = one_sided

    def neighbourhood(tensor: torch.Tensor) -> torch.Tensor:
        # [b, h, n, d] -> [b, h, blocks, 3w, d]: blocks t-1, t, t+1 side by side (zeros off the ends).
        blocked = tensor.reshape(batch, heads, blocks, w, dim)
        padded = torch.nn.functional.pad(blocked, (0, 0, 0, 0, 1, 1))
        return torch.cat([padded[:, :, :-2], padded[:, :, 1:-1], padded[:, :, 2:]], dim=3)

    keys, values = neighbourhood(key), neighbourhood(value)
    scores = torch.matmul(query.reshape(batch, heads, blocks, w, dim), keys.transpose(-1, -2))

    # Additive masks, broadcast: a constant band [w, 3w] and the keys' padding [b, blocks, 1, 3w].
    # Each is a large finite negative, so a fully masked (padded) query row stays finite.
    offsets = torch.arange(3 * w) - w  # key position relative to the block start
    rows = torch.arange(w)
    band = (offsets[None, :] - rows[:, None]).abs() <= w  # [w, 3w]
    band_bias = (~band).to(scores.dtype) * _LARGE_NEGATIVE
    valid = torch.nn.functional.pad(key_valid.reshape(batch, blocks, w), (0, 0, 1, 1))
    valid = torch.cat([valid[:, :-2], valid[:, 1:-1], valid[:, 2:]], dim=2)  # [b, blocks, 3w]
    key_bias = (~valid).to(scores.dtype)[:, None, :, None, :] * _LARGE_NEGATIVE
    probs = torch.softmax(scores + band_bias + key_bias, dim=-1)
    context = torch.matmul(probs, values).reshape(batch, heads, length, dim)
    return context * key_valid[:, None, :, None].to(context.dtype)  # padded queries -> 0


def full_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_valid: torch.Tensor
) -> torch.Tensor:
    """Plain softmax attention over valid keys; ``query`` already scaled."""
    scores = torch.matmul(query, key.transpose(-1, -2))
    scores = scores + (~key_valid[:, None, None, :]).to(scores.dtype) * torch.finfo(scores.dtype).min
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def bigbird_key_blocks(blocks: int, random_blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct key blocks, and how often each is attended, for query blocks ``1 .. blocks-2``.

    In transformers each such query block attends to the first block, its left, own and right
    neighbours, the last block, and its random blocks (the second and second-to-last blocks skip
    the neighbour that is already global). A block listed twice is attended twice: its weight in
    the softmax doubles. Here each distinct block is gathered once and carries the log of its
    multiplicity as a score bias, which is the same softmax with less work. In eval mode every
    random block is block 0, so each row needs 5 blocks instead of ``5 + r``.

    Args:
        blocks: number of blocks in the sequence (>= 5).
        random_blocks: ``[heads, blocks - 2, r]`` random key blocks per query block, as
            transformers draws them for this length.

    Returns:
        index ``[heads, blocks - 2, u]`` and score bias ``[heads, blocks - 2, u]`` (log multiplicity,
        or the mask penalty for padding slots); the head dimension is 1 when all heads agree.
    """
    heads, rows, _ = random_blocks.shape
    lists: list[list[dict[int, int]]] = []
    for head in range(heads):
        per_row = []
        for row in range(rows):
            query_block = row + 1
            listed = [0, query_block - 1, query_block, query_block + 1, blocks - 1]
            if query_block == 1:
                listed.pop(1)  # left neighbour is the first block
            elif query_block == blocks - 2:
                listed.pop(3)  # right neighbour is the last block
            counts: dict[int, int] = {}
            for block in [*listed, *random_blocks[head, row].tolist()]:
                counts[block] = counts.get(block, 0) + 1
            per_row.append(counts)
        lists.append(per_row)
    width = max(len(counts) for per_row in lists for counts in per_row)
    index = torch.zeros(heads, rows, width, dtype=torch.long)
    bias = torch.full((heads, rows, width), BIGBIRD_MASK_PENALTY)
    for head, per_row in enumerate(lists):
        for row, counts in enumerate(per_row):
            for slot, (block, count) in enumerate(sorted(counts.items())):
                index[head, row, slot] = block
                bias[head, row, slot] = math.log(count)
    if bool((index == index[:1]).all()) and bool((bias == bias[:1]).all()):
        return index[:1], bias[:1]
    return index, bias


def block_sparse_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_valid: torch.Tensor,
    block_size: int,
    key_index: torch.Tensor,
    slot_bias: torch.Tensor,
) -> torch.Tensor:
    """BigBird block-sparse attention (global first/last blocks, sliding, random), as transformers.

    Args:
        query: ``[b, h, n, d]``, unscaled.
        key, value: ``[b, h, n, d]``.
        key_valid: ``[b, n]`` bool.
        block_size: tokens per block; ``n`` is a multiple of it.
        key_index, slot_bias: from :func:`bigbird_key_blocks` for ``n // block_size`` blocks.
    """
    batch, heads, length, dim = query.shape
    blocks = length // block_size
    query = query * dim**-0.5
    valid = key_valid.to(query.dtype)
    penalty = (1.0 - valid) * BIGBIRD_MASK_PENALTY  # [b, n]

    # First and last query blocks attend to every key (kept 4-D so ONNX Runtime fuses the
    # transpose into the matmul instead of materialising it).
    ends = torch.cat([query[:, :, :block_size], query[:, :, -block_size:]], dim=2)  # [b,h,2bs,d]
    end_scores = torch.matmul(ends, key.transpose(-1, -2)) + penalty[:, None, None, :]
    end_context = torch.matmul(torch.softmax(end_scores, dim=-1), value)  # [b,h,2bs,d]

    # Every other query block attends to its gathered key blocks.
    slots = key_index.shape[-1]
    gathered_key = _gather_blocks(key.reshape(batch, heads, blocks, block_size * dim), key_index)
    gathered_value = _gather_blocks(value.reshape(batch, heads, blocks, block_size * dim), key_index)
    gathered_key = gathered_key.reshape(batch, heads, blocks - 2, slots * block_size, dim)
    gathered_value = gathered_value.reshape(batch, heads, blocks - 2, slots * block_size, dim)
    middle = query[:, :, block_size:-block_size].reshape(batch, heads, blocks - 2, block_size, dim)
    scores = torch.matmul(middle, gathered_key.transpose(-1, -2))

    slot_penalty = _gather_blocks(penalty.reshape(batch, 1, blocks, block_size), key_index)
    slot_penalty = (
        slot_penalty.reshape(batch, -1, blocks - 2, slots, block_size) + slot_bias[None, :, :, :, None]
    )
    slot_penalty = slot_penalty.reshape(batch, -1, blocks - 2, 1, slots * block_size)
    context = torch.matmul(torch.softmax(scores + slot_penalty, dim=-1), gathered_value)

    context = context.reshape(batch, heads, length - 2 * block_size, dim)
    out = torch.cat([end_context[:, :, :block_size], context, end_context[:, :, block_size:]], dim=2)
    return out * valid[:, None, :, None]


def _gather_blocks(blocked: torch.Tensor, key_index: torch.Tensor) -> torch.Tensor:
    """``blocked[b, h, key_index[h, row, slot]]`` -> ``[b, h, rows, slots, features]``.

    ``blocked`` is ``[b, h or 1, blocks, features]``; ``key_index`` is ``[1, rows, slots]`` when
    every head uses the same blocks (transformers' eval mode), else ``[h, rows, slots]``. Both
    export as plain Gather nodes rather than the slow scatter-gather of advanced indexing.
    """
    heads, rows, slots = key_index.shape
    batch = blocked.shape[0]
    if heads == 1:
        picked = blocked.index_select(2, key_index[0].reshape(-1))
        return picked.reshape(batch, blocked.shape[1], rows, slots, -1)
    per_head = [
        blocked[:, min(h, blocked.shape[1] - 1)].index_select(1, key_index[h].reshape(-1))
        for h in range(heads)
    ]
    return torch.stack(per_head, dim=1).reshape(batch, heads, rows, slots, -1)
