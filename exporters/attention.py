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


def sliding_window_bias(
    key_valid: torch.Tensor, one_sided: int, global_slots: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """The additive mask of :func:`sliding_window_attention` ``[b, 1, blocks, w, g + 3w]``: 0 where
    a query may attend, a large finite negative elsewhere (so a fully masked row stays finite).

    It depends on the row's keys, not on the layer, so an encoder pass builds it once per window size
    rather than adding two masks to every layer's full-size scores.

    Args:
        key_valid: ``[b, n]`` bool, true for the keys of the band (not padding, not global).
        one_sided: window on each side; ``n`` must be a multiple of it.
        global_slots: ``[b, g]`` bool, true for the global-key slots in use.
        dtype: the scores' dtype.
    """
    batch, length = key_valid.shape
    w = one_sided
    blocks = length // w
    offsets = torch.arange(3 * w) - w  # key position relative to the block start
    rows = torch.arange(w)
    band = (offsets[None, :] - rows[:, None]).abs() <= w  # [w, 3w]
    valid = torch.nn.functional.pad(key_valid.reshape(batch, blocks, w), (0, 0, 1, 1))
    valid = torch.cat([valid[:, :-2], valid[:, 1:-1], valid[:, 2:]], dim=2)  # [b, blocks, 3w]
    local = band[None, None] & valid[:, :, None, :]  # [b, blocks, w, 3w]
    slots = global_slots[:, None, None, :].expand(batch, blocks, w, global_slots.shape[1])
    keep = torch.cat([slots, local], dim=-1)
    return ((~keep).to(dtype) * LARGE_NEGATIVE)[:, None]


def sliding_window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    one_sided: int,
    global_keys: torch.Tensor,
    global_values: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """Each position attends to the keys within ``one_sided`` positions of it, as Longformer does,
    and to the global keys, in one softmax.

    The sequence is cut into blocks of ``one_sided`` positions; block ``t`` attends to the global
    keys and blocks ``t-1, t, t+1`` (a superset of its band), side by side in one key matrix, so
    one matmul gives every score and one gives the context; ``bias``
    (:func:`sliding_window_bias`) keeps exactly ``|i - j| <= one_sided`` of the valid keys and the
    global slots in use. Padded queries are the caller's to zero, as in transformers.

    Args:
        query: ``[b, h, n, d]``, already scaled by ``1/sqrt(d)``.
        key: ``[b, h, n, d]``.
        value: ``[b, h, n, d]``.
        one_sided: window on each side; ``n`` must be a multiple of it.
        global_keys: ``[b, h, g, d]`` the global keys (for the ordinary projections).
        global_values: ``[b, h, g, d]`` their values.
        bias: ``[b, 1, blocks, w, g + 3w]`` from :func:`sliding_window_bias`.
    """
    batch, heads, length, dim = query.shape
    w = one_sided
    blocks = length // w
    slots = global_keys.shape[2]

    def with_neighbours(tensor: torch.Tensor, globals_: torch.Tensor) -> torch.Tensor:
        # [b, h, n, d] -> [b, h, blocks, g + 3w, d]: the global rows, then blocks t-1, t, t+1 (zeros
        # off the ends). Copies keys, which are a fraction (d / 3w) of the scores' size.
        blocked = tensor.reshape(batch, heads, blocks, w, dim)
        padded = torch.nn.functional.pad(blocked, (0, 0, 0, 0, 1, 1))
        shared = globals_[:, :, None].expand(batch, heads, blocks, slots, dim)
        return torch.cat([shared, padded[:, :, :-2], padded[:, :, 1:-1], padded[:, :, 2:]], dim=3)

    keys, values = with_neighbours(key, global_keys), with_neighbours(value, global_values)
    query = query.reshape(batch, heads, blocks, w, dim)
    if torch.onnx.is_in_onnx_export():  # ONNX Runtime fuses these nodes into its own kernels
        scores = torch.matmul(query, keys.transpose(-1, -2)) + bias
        context = torch.matmul(torch.softmax(scores, dim=-1), values)
    else:
        context = _fused_block_attention(query, keys, values, bias)
    return context.reshape(batch, heads, length, dim)


def _fused_block_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """:func:`sliding_window_attention`'s softmax for PyTorch (TorchScript, eager): its fused
    attention, which never holds the ``[b, h, blocks, w, g + 3w]`` scores in memory (LED base at
    4,096 tokens: 0.3 GB a layer, written and read three times by the explicit ops; the fused kernel
    is about 4x faster on CPU). It wants 4-D inputs whose mask broadcasts over heads, so blocks
    join the batch."""
    batch, heads, blocks, w, dim = query.shape

    def fold(tensor: torch.Tensor) -> torch.Tensor:  # [b, h|1, blocks, r, c] -> [b*blocks, h|1, r, c]
        _, heads_or_one, _, rows, columns = tensor.shape
        return tensor.transpose(1, 2).reshape(batch * blocks, heads_or_one, rows, columns)

    context = torch.nn.functional.scaled_dot_product_attention(
        fold(query), fold(keys), fold(values), attn_mask=fold(bias), scale=1.0
    )
    return context.reshape(batch, blocks, heads, w, dim).transpose(1, 2)


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
