"""Export-friendly sliding-window, global and block-sparse attention that compute what transformers
computes.

transformers' Longformer (LED) attention chunks with ``as_strided``, which the ONNX exporter gets
wrong, finds global tokens with ``nonzero`` and materialises an O(n^2) mask; its BigBird
block-sparse attention builds index tensors with numpy at run time, which neither exporter can
capture. Both are rewritten here with reshapes, slices, concatenations, gathers and batched matmuls
only, every shape following the input's, so one traced graph serves every input length. What
depends on an input's own length (LED's global positions, BigBird's key blocks) comes in as tensors
that :mod:`profiler.attention_layout` computes on the host. All tensors are laid out
``[batch, heads, seq, head_dim]``.
"""

from __future__ import annotations

import torch

from profiler.attention_layout import BIGBIRD_MASK_PENALTY

#: Excludes a key from a softmax (exp underflows to exactly 0) yet stays finite when added twice.
LARGE_NEGATIVE = -1e9


def sliding_window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_valid: torch.Tensor,
    one_sided: int,
    global_scores: torch.Tensor,
    global_values: torch.Tensor,
) -> torch.Tensor:
    """Each position attends to the keys within ``one_sided`` positions of it, as Longformer does,
    and to the global keys, in one softmax.

    The sequence is cut into blocks of ``one_sided`` positions; block ``t`` attends to blocks
    ``t-1, t, t+1`` (a superset of its band) and a constant band mask keeps exactly
    ``|i - j| <= one_sided``. Keys that are not ``key_valid`` (padding, and the global keys, which
    the global columns already hold) are excluded; padded queries get zeros, as in transformers.

    Args:
        query: ``[b, h, n, d]``, already scaled by ``1/sqrt(d)``.
        key: ``[b, h, n, d]``.
        value: ``[b, h, n, d]``.
        key_valid: ``[b, n]`` bool, true for the keys of the band.
        one_sided: window on each side; ``n`` must be a multiple of it.
        global_scores: ``[b, h, n, g]`` each query's scores for the global keys (masked slots
            already at a large negative).
        global_values: ``[b, h, g, d]`` the global keys' values.
    """
    batch, heads, length, dim = query.shape
    w = one_sided
    blocks = length // w

    def neighbourhood(tensor: torch.Tensor) -> torch.Tensor:
        # [b, h, n, d] -> [b, h, blocks, 3w, d]: blocks t-1, t, t+1 side by side (zeros off the ends).
        blocked = tensor.reshape(batch, heads, blocks, w, dim)
        padded = torch.nn.functional.pad(blocked, (0, 0, 0, 0, 1, 1))
        return torch.cat([padded[:, :, :-2], padded[:, :, 1:-1], padded[:, :, 2:]], dim=3)

    keys, values = neighbourhood(key), neighbourhood(value)
    scores = torch.matmul(query.reshape(batch, heads, blocks, w, dim), keys.transpose(-1, -2))

    # Additive masks, broadcast: a constant band [w, 3w] and the keys' validity [b, blocks, 1, 3w].
    # Each is a large finite negative, so a fully masked (padded) query row stays finite.
    offsets = torch.arange(3 * w) - w  # key position relative to the block start
    rows = torch.arange(w)
    band = (offsets[None, :] - rows[:, None]).abs() <= w  # [w, 3w]
    band_bias = (~band).to(scores.dtype) * LARGE_NEGATIVE
    valid = torch.nn.functional.pad(key_valid.reshape(batch, blocks, w), (0, 0, 1, 1))
    valid = torch.cat([valid[:, :-2], valid[:, 1:-1], valid[:, 2:]], dim=2)  # [b, blocks, 3w]
    key_bias = (~valid).to(scores.dtype)[:, None, :, None, :] * LARGE_NEGATIVE
    slots = global_values.shape[2]
    joint = torch.cat(
        [global_scores.reshape(batch, heads, blocks, w, slots), scores + band_bias + key_bias], dim=-1
    )
    probs = torch.softmax(joint, dim=-1)
    context = torch.matmul(probs[..., slots:], values).reshape(batch, heads, length, dim)
    return context + torch.matmul(probs[..., :slots].reshape(batch, heads, length, slots), global_values)


def full_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_valid: torch.Tensor
) -> torch.Tensor:
    """Plain softmax attention over valid keys; ``query`` already scaled."""
    scores = torch.matmul(query, key.transpose(-1, -2))
    scores = scores + (~key_valid[:, None, None, :]).to(scores.dtype) * torch.finfo(scores.dtype).min
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def block_sparse_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_valid: torch.Tensor,
    block_size: int,
    block_index: torch.Tensor,
    block_bias: torch.Tensor,
    last_block: torch.Tensor,
) -> torch.Tensor:
    """BigBird block-sparse attention (global first/last blocks, sliding, random), as transformers,
    for each row at its own length.

    Args:
        query: ``[b, h, n, d]``, unscaled.
        key, value: ``[b, h, n, d]``.
        key_valid: ``[b, n]`` bool.
        block_size: tokens per block; ``n`` is a multiple of it, at least three blocks.
        block_index: ``[b, blocks - 2, slots]`` int64, the key blocks of every middle query block
            of each row (:func:`profiler.attention_layout.block_pattern`).
        block_bias: ``[b, blocks - 2, slots]`` float, their score biases.
        last_block: ``[b]`` int64, each row's own last block, which (like the first) attends to
            every key.
    """
    batch, heads, length, dim = query.shape
    blocks = length // block_size
    query = query * dim**-0.5
    valid = key_valid.to(query.dtype)
    penalty = (1.0 - valid) * BIGBIRD_MASK_PENALTY  # [b, n]

    # The first block and each row's own last block attend to every key of the row (kept 4-D so
    # ONNX Runtime fuses the transpose into the matmul instead of materialising it).
    query_blocks = query.reshape(batch, heads, blocks, block_size, dim)
    last_index = last_block.reshape(batch, 1, 1, 1, 1).expand(batch, heads, 1, block_size, dim)
    last = torch.gather(query_blocks, 2, last_index).reshape(batch, heads, block_size, dim)
    ends = torch.cat([query[:, :, :block_size], last], dim=2)  # [b, h, 2bs, d]
    end_scores = torch.matmul(ends, key.transpose(-1, -2)) + penalty[:, None, None, :]
    end_context = torch.matmul(torch.softmax(end_scores, dim=-1), value)  # [b, h, 2bs, d]

    # Every middle query block attends to its row's gathered key blocks.
    rows, slots = block_index.shape[1], block_index.shape[2]
    flat_index = _flat_block_index(block_index, heads, blocks)
    gathered_key = _gather_blocks(key, flat_index, block_size, dim).reshape(
        batch, heads, rows, slots * block_size, dim
    )
    gathered_value = _gather_blocks(value, flat_index, block_size, dim).reshape(
        batch, heads, rows, slots * block_size, dim
    )
    middle = query_blocks[:, :, 1:-1]  # [b, h, rows, bs, d]
    scores = torch.matmul(middle, gathered_key.transpose(-1, -2))
    row_offsets = (torch.arange(batch) * blocks).reshape(batch, 1, 1)
    slot_penalty = penalty.reshape(batch * blocks, block_size).index_select(
        0, (block_index + row_offsets).reshape(-1)
    )
    slot_penalty = slot_penalty.reshape(batch, rows, slots, block_size) + block_bias[..., None]
    slot_penalty = slot_penalty.reshape(batch, 1, rows, 1, slots * block_size)
    context = torch.matmul(torch.softmax(scores + slot_penalty, dim=-1), gathered_value)

    out = torch.cat(
        [end_context[:, :, None, :block_size], context, end_context[:, :, None, block_size:]], dim=2
    )  # [b, h, blocks, bs, d]; the batch's last block holds the longest rows' own last block
    is_last = (torch.arange(blocks)[None, :] == last_block[:, None]).reshape(batch, 1, blocks, 1, 1)
    out = torch.where(is_last, end_context[:, :, None, block_size:], out)
    return out.reshape(batch, heads, length, dim) * valid[:, None, :, None]


def _flat_block_index(block_index: torch.Tensor, heads: int, blocks: int) -> torch.Tensor:
    """``block_index [b, rows, slots]`` as rows of a ``[b * h * blocks, ...]`` view, flattened."""
    batch = block_index.shape[0]
    base = (torch.arange(batch) * (heads * blocks)).reshape(batch, 1, 1, 1)
    per_head = (torch.arange(heads) * blocks).reshape(1, heads, 1, 1)
    return (block_index[:, None] + base + per_head).reshape(-1)


def _gather_blocks(tensor: torch.Tensor, flat_index: torch.Tensor, block_size: int, dim: int) -> torch.Tensor:
    """Blocks of ``tensor [b, h, n, d]`` picked by :func:`_flat_block_index`: one plain Gather node,
    not the slow scatter-gather of advanced indexing."""
    return tensor.reshape(-1, block_size * dim).index_select(0, flat_index)
