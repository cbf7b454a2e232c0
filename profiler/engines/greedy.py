"""The one greedy decoding loop, shared by every engine and by export parity checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from profiler.attention_layout import EncoderBatch
from profiler.engines.graphs import Seq2SeqGraphs


def decode_greedy(
    graphs: Seq2SeqGraphs,
    encoder_hidden: Any,
    attention_mask: np.ndarray,
    max_new_tokens: int | np.ndarray,
    min_new_tokens: int = 0,
    forced: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy decoding as transformers' ``generate(num_beams=1, do_sample=False)`` does it.

    Args:
        graphs: the runner (exported graphs or eager PyTorch).
        encoder_hidden: the encoder's output for the batch (numpy or the runner's device array).
        attention_mask: the encoder's mask ``[b, n]``.
        max_new_tokens: one limit for the batch, or one per row.
        min_new_tokens: ``eos`` is blocked until this many tokens are produced.
        forced: ``[b, t]`` tokens to feed instead of the argmax (teacher forcing); decoding then
            runs exactly ``t`` steps.

    Returns:
        ``[b, 1 + n]`` token ids starting with the decoder start token; a row that has ended
        (``eos`` or its own limit) is padded with ``pad``.
    """
    spec = graphs.decoder
    batch = attention_mask.shape[0]
    limits = np.broadcast_to(np.asarray(max_new_tokens if forced is None else forced.shape[1]), (batch,))
    tokens = np.full((batch, 1), spec.decoder_start_token_id, dtype=np.int64)
    finished = limits <= 0
    logits, past, cross = graphs.decoder_init(tokens, encoder_hidden, attention_mask)
    for step in range(int(limits.max())):
        if forced is not None:
            chosen = forced[:, step].astype(np.int64)
        else:
            if step < min_new_tokens:
                logits[:, spec.eos_token_id] = -np.inf
            chosen = logits.argmax(axis=-1).astype(np.int64)
        next_tokens = np.where(finished, spec.pad_token_id, chosen)
        tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
        finished = finished | (step + 1 >= limits)
        if forced is None:
            finished |= next_tokens == spec.eos_token_id
        if finished.all():
            break
        logits, past = graphs.decoder_step(next_tokens[:, None], step + 1, attention_mask, past, cross)
    return tokens


def greedy_generate(
    graphs: Seq2SeqGraphs, batch: EncoderBatch, max_new_tokens: int, min_new_tokens: int = 0
) -> np.ndarray:
    """Encode then :func:`decode_greedy`; ``batch`` from :meth:`EncoderLayout.batch`."""
    hidden = graphs.encode(batch.input_ids, batch.attention_mask, batch.extra)
    return decode_greedy(graphs, hidden, batch.attention_mask, max_new_tokens, min_new_tokens)
