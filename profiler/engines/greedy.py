"""The one greedy decoding loop, shared by every engine and by export parity checks."""

from __future__ import annotations

import numpy as np

from profiler.engines.graphs import Seq2SeqGraphs


def greedy_generate(
    graphs: Seq2SeqGraphs,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    max_new_tokens: int,
    min_new_tokens: int = 0,
) -> np.ndarray:
    """Greedy decoding as transformers' ``generate(num_beams=1, do_sample=False)`` does it.

    Returns ``[b, 1 + n]`` token ids starting with the decoder start token. ``eos`` is blocked
    until ``min_new_tokens`` are produced; a sequence that has ended is padded with ``pad``; the
    loop stops when every sequence has ended or ``max_new_tokens`` are produced.
    """
    spec = graphs.manifest.decoder
    batch = input_ids.shape[0]
    tokens = np.full((batch, 1), spec.decoder_start_token_id, dtype=np.int64)
    finished = np.zeros(batch, dtype=bool)
    hidden = graphs.encode(input_ids, attention_mask)
    logits, past, cross = graphs.decoder_init(tokens, hidden, attention_mask)
    for step in range(max_new_tokens):
        if step < min_new_tokens:
            logits[:, spec.eos_token_id] = -np.inf
        next_tokens = np.where(finished, spec.pad_token_id, logits.argmax(axis=-1)).astype(np.int64)
        tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
        finished |= next_tokens == spec.eos_token_id
        if finished.all() or step + 1 == max_new_tokens:
            break
        logits, past = graphs.decoder_step(next_tokens[:, None], step + 1, attention_mask, past, cross)
    return tokens
