"""The checkpoint's generation config, applied as transformers' ``generate`` applies it.

Published LED and BigBird-Pegasus checkpoints ship beam search, n-gram blocking, minimum lengths
and forced start/end tokens in ``generation_config.json``; a profiler that decodes plain greedy
measures, and scores, a different output than the model's own. :class:`DecodingConfig` holds the
settings that change tokens, :func:`process_scores` reproduces transformers 4.57's logits
processors bit for bit in numpy (same order, same float32 arithmetic), and :func:`decode` runs
greedy or beam search over any :class:`~profiler.engines.graphs.Seq2SeqGraphs` runner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from profiler.attention_layout import EncoderBatch
from profiler.decoding_config import DecodingConfig
from profiler.engines.graphs import Caches, Seq2SeqGraphs

if TYPE_CHECKING:
    pass

#: Called after each decoding step with the step and the token each row chose there: ``[b]`` ids
#: (``pad`` for a row that had already ended), or None in beam search, whose tokens are settled
#: only when the search ends. It is how a server streams tokens as they are made.
StepHook = Callable[[int, np.ndarray | None], None]

#: transformers' stand-in for "impossible" in beam scores; float32, as its tensors are.
_NEVER = np.float32(-1.0e9)


def process_scores(
    config: DecodingConfig,
    sequences: np.ndarray,
    scores: np.ndarray,
    max_lengths: np.ndarray,
    eos_token_id: int,
) -> np.ndarray:
    """transformers' logits processors, in the order ``_get_logits_processor`` builds them.

    Args:
        config: the settings.
        sequences: ``[rows, cur_len]`` decoder tokens so far, the start token included (transformers
            processes the decoder's own tokens, never the encoder's input).
        scores: ``[rows, vocab]`` float32 logits (greedy) or log-probabilities (beam search).
        max_lengths: ``[rows]`` each row's length limit, start token included.
        eos_token_id: the end token.

    Returns:
        New ``[rows, vocab]`` float32 scores.
    """
    scores = scores.astype(np.float32, copy=True)
    cur_len = sequences.shape[1]
    if config.repetition_penalty != 1.0:
        picked = np.take_along_axis(scores, sequences, axis=1)
        penalty = config.repetition_penalty
        picked = np.where(picked < 0, picked * penalty, picked / penalty)
        np.put_along_axis(scores, sequences, picked, axis=1)
    if config.no_repeat_ngram_size > 0 and cur_len >= config.no_repeat_ngram_size:  # one n-gram seen
        rows, banned = _repeated_ngram_ends(sequences, config.no_repeat_ngram_size)
        scores[rows, banned] = -np.inf
    if cur_len < config.min_total_length:
        scores[:, eos_token_id] = -np.inf
    if config.forced_bos_token_id is not None and cur_len == 1:
        scores[:] = -np.inf
        scores[:, config.forced_bos_token_id] = 0
    if config.forced_eos_token_id is not None:
        at_end = cur_len == max_lengths - 1
        scores[at_end] = -np.inf
        scores[at_end, config.forced_eos_token_id] = 0
    return scores


def _repeated_ngram_ends(sequences: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, token) pairs that would repeat an n-gram of ``size`` already in the row."""
    prefix = size - 1
    if prefix == 0:  # unigrams: every token seen is banned
        rows = np.repeat(np.arange(sequences.shape[0]), sequences.shape[1])
        return rows, sequences.reshape(-1)
    starts = sliding_window_view(sequences[:, :-1], prefix, axis=1)  # [rows, cur_len - size + 1, prefix]
    matches = (starts == sequences[:, None, -prefix:]).all(axis=-1)
    rows, where = np.nonzero(matches)
    return rows, sequences[rows, where + prefix]


def decode(
    graphs: Seq2SeqGraphs,
    encoder_hidden: Any,
    attention_mask: np.ndarray,
    config: DecodingConfig,
    max_new_tokens: int | np.ndarray,
    forced: np.ndarray | None = None,
    on_step: StepHook | None = None,
) -> np.ndarray:
    """Decode as transformers' ``generate`` does with ``config``, greedy or beam search.

    Args:
        graphs: the runner (exported graphs or eager PyTorch).
        encoder_hidden: the encoder's output for the batch (numpy or the runner's device array).
        attention_mask: the encoder's mask ``[b, n]``.
        config: the generation settings; not applied with ``forced``.
        max_new_tokens: one limit for the batch (``generate(max_new_tokens=...)``), or one per row
            (each row then decodes as if generated alone with its own limit). Pass
            ``config.default_max_new_tokens`` for the checkpoint's own.
        forced: ``[b, t]`` tokens to feed instead of choosing (teacher forcing); decoding then
            runs exactly ``t`` greedy steps.
        on_step: called after every step (see :data:`StepHook`).

    Returns:
        ``[b, 1 + n]`` token ids starting with the decoder start token; a row that has ended
        (``eos`` or its own limit) is padded with ``pad``. Beam search returns each row's best beam.
    """
    batch = attention_mask.shape[0]
    limits = np.broadcast_to(np.asarray(max_new_tokens if forced is None else forced.shape[1]), (batch,))
    if forced is None and config.num_beams > 1:
        return _beam_search(graphs, encoder_hidden, attention_mask, config, limits, on_step)
    return _greedy(graphs, encoder_hidden, attention_mask, config, limits, forced, on_step)


def _greedy(
    graphs: Seq2SeqGraphs,
    encoder_hidden: Any,
    attention_mask: np.ndarray,
    config: DecodingConfig,
    limits: np.ndarray,
    forced: np.ndarray | None,
    on_step: StepHook | None = None,
) -> np.ndarray:
    """transformers' greedy search; the contract of :func:`decode`."""
    spec = graphs.decoder
    batch = attention_mask.shape[0]
    tokens = np.full((batch, 1), spec.decoder_start_token_id, dtype=np.int64)
    finished = limits <= 0
    logits, past, cross = graphs.decoder_init(tokens, encoder_hidden, attention_mask)
    for step in range(int(limits.max())):
        if forced is not None:
            chosen = forced[:, step].astype(np.int64)
        else:
            scores = process_scores(config, tokens, logits, limits + 1, spec.eos_token_id)
            chosen = scores.argmax(axis=-1).astype(np.int64)
        next_tokens = np.where(finished, spec.pad_token_id, chosen)
        tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
        if on_step is not None:
            on_step(step, next_tokens)
        finished = finished | (step + 1 >= limits)
        if forced is None:
            finished |= next_tokens == spec.eos_token_id
        if finished.all():
            break
        logits, past = graphs.decoder_step(next_tokens[:, None], step + 1, attention_mask, past, cross)
    return tokens


def generate(
    graphs: Seq2SeqGraphs, batch: EncoderBatch, config: DecodingConfig, max_new_tokens: int
) -> np.ndarray:
    """Encode then :func:`decode`; ``batch`` from :meth:`EncoderLayout.batch`."""
    hidden = graphs.encode(batch.input_ids, batch.attention_mask, batch.extra)
    return decode(graphs, hidden, batch.attention_mask, config, max_new_tokens)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """float32 log-probabilities, as beam search scores them before any processor."""
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True).astype(np.float32)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # type: ignore[no-any-return]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores per row, best first (``torch.topk``; ties: lower index).

    A partition first: a full sort of ``beams x vocab`` scores would cost more than the step.
    """
    picked = np.argpartition(-scores, k - 1, axis=-1)[:, :k]
    values = np.take_along_axis(scores, picked, axis=-1)
    return np.take_along_axis(picked, np.lexsort((picked, -values), axis=-1), axis=-1)


def _gather(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``array[b, indices[b, j], ...]``: beams picked per batch row (transformers' ``_gather_beams``)."""
    return np.take_along_axis(array, indices.reshape(indices.shape + (1,) * (array.ndim - 2)), axis=1)


def _length_scale(lengths: np.ndarray, length_penalty: float) -> np.ndarray:
    """``length ** length_penalty`` per batch row as ``[b, 1]`` float32, computed as transformers
    does (a Python float, then cast by torch to the scores' float32)."""
    return np.array([[float(n) ** length_penalty] for n in lengths], dtype=np.float32)


def reorder_caches(past: Caches, indices: np.ndarray) -> Caches:
    """The self-attention caches with rows ``indices`` (beam search keeps the chosen beams' pasts).

    Exported runners hold one array per layer (numpy, or ONNX Runtime device values, copied to
    the host here); the eager runner a transformers Cache, reordered in place.
    """
    if hasattr(past, "reorder_cache"):
        import torch

        past.reorder_cache(torch.from_numpy(indices))
        return past
    return [np.take(host_array(layer), indices, axis=0) for layer in past]


def host_array(value: Any) -> np.ndarray:
    """A runner's array as numpy (ONNX Runtime's device values have ``.numpy()``)."""
    return value if isinstance(value, np.ndarray) else np.asarray(value.numpy())


class _Beams:
    """Beam search state per batch row, as transformers 4.57's vectorised ``_beam_search`` keeps it."""

    def __init__(self, batch: int, beams: int, width: int, start: int, pad: int) -> None:
        self.running = np.full((batch, beams, width), pad, dtype=np.int64)
        self.running[:, :, 0] = start
        # Only beam 0 starts live, so the first step does not pick one token once per beam.
        self.running_scores = np.zeros((batch, beams), dtype=np.float32)
        self.running_scores[:, 1:] = _NEVER
        self.sequences = self.running.copy()
        self.scores = np.full((batch, beams), _NEVER, dtype=np.float32)
        self.lengths = np.ones((batch, beams), dtype=np.int64)
        self.finished = np.zeros((batch, beams), dtype=bool)
        #: transformers' ``is_early_stop_heuristic_unsatisfied``: the row may still improve.
        self.open = np.ones((batch, 1), dtype=bool)


def _beam_search(
    graphs: Seq2SeqGraphs,
    encoder_hidden: Any,
    attention_mask: np.ndarray,
    config: DecodingConfig,
    limits: np.ndarray,
    on_step: StepHook | None = None,
) -> np.ndarray:
    """transformers' beam search (no sampling, one sequence returned per row).

    Rows share one loop but not their limits: a row that reaches its own limit is frozen, which is
    what ``generate`` does to every row at once when the limit is shared.
    """
    spec = graphs.decoder
    batch, beams = attention_mask.shape[0], config.num_beams
    max_lengths = limits + 1
    state = _Beams(batch, beams, int(max_lengths.max()), spec.decoder_start_token_id, spec.pad_token_id)
    hidden = np.repeat(host_array(encoder_hidden), beams, axis=0)
    mask = np.repeat(attention_mask, beams, axis=0)
    logits, past, cross = graphs.decoder_init(state.running[:, :, 0].reshape(-1, 1), hidden, mask)
    offsets = np.arange(batch)[:, None] * beams
    cur_len = 1
    while True:
        flat = state.running[:, :, :cur_len].reshape(batch * beams, cur_len)
        log_probs = process_scores(
            config, flat, _log_softmax(logits), np.repeat(max_lengths, beams), spec.eos_token_id
        )
        source, hits = _step(state, config, log_probs, cur_len, max_lengths, spec.eos_token_id)
        if on_step is not None:
            on_step(cur_len - 1, None)
        cur_len += 1
        best = state.running_scores[:, :1] / _hypothetical_scale(config, cur_len, max_lengths)
        worst = np.where(state.finished, state.scores.min(axis=1, keepdims=True), _NEVER)
        state.open &= (best > worst).any(axis=-1, keepdims=True)
        state.open &= (cur_len < max_lengths)[:, None]
        all_full = bool(state.finished.all()) and config.early_stopping is True
        if not state.open.any() or all_full or hits.all():
            break
        past = reorder_caches(past, (source + offsets).reshape(-1))
        chosen = state.running[:, :, cur_len - 1].reshape(-1, 1)
        logits, past = graphs.decoder_step(chosen, cur_len - 1, mask, past, cross)
    width = int(state.lengths[:, 0].max())
    tokens = state.sequences[:, 0, :width].copy()
    tokens[limits <= 0, 1:] = spec.pad_token_id
    return tokens


def _hypothetical_scale(config: DecodingConfig, cur_len: int, max_lengths: np.ndarray) -> np.ndarray:
    """The length a running beam is scored at when asking whether it can still beat the finished
    ones (transformers' ``_check_early_stop_heuristic``)."""
    if config.early_stopping == "never" and config.length_penalty > 0.0:
        return _length_scale(max_lengths - 1, config.length_penalty)
    return _length_scale(np.full(len(max_lengths), cur_len - 1), config.length_penalty)


def _step(
    state: _Beams,
    config: DecodingConfig,
    log_probs: np.ndarray,
    cur_len: int,
    max_lengths: np.ndarray,
    eos: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One beam step: the best continuations, the beams kept running, the finished ones updated.

    Returns:
        (the beam each running beam came from ``[b, beams]``, which candidates ended ``[b, 2 x beams]``).
    """
    batch, beams = state.running_scores.shape
    vocab = log_probs.shape[-1]
    keep = 2 * beams  # transformers: max(2, 1 + number of eos ids) x beams, with one eos id
    totals = (log_probs.reshape(batch, beams, vocab) + state.running_scores[:, :, None]).reshape(batch, -1)
    top = _top(totals, keep)
    top_scores = np.take_along_axis(totals, top, axis=1)
    top_beams, top_tokens = top // vocab, top % vocab
    top_sequences = _gather(state.running, top_beams)
    top_sequences[:, :, cur_len] = top_tokens
    hits = (top_tokens == eos) | (cur_len + 1 >= max_lengths)[:, None]

    live_scores = top_scores + hits.astype(np.float32) * _NEVER
    live = _top(live_scores, beams)
    state.running = _gather(top_sequences, live)
    state.running_scores = np.take_along_axis(live_scores, live, axis=1)
    source = np.take_along_axis(top_beams, live, axis=1)

    just_finished = hits & (np.arange(keep) < beams)[None, :]
    finals = top_scores / _length_scale(np.full(batch, cur_len), config.length_penalty)
    full = state.finished.all(axis=-1, keepdims=True) & (config.early_stopping is True)
    finals = finals + full.astype(np.float32) * _NEVER
    finals = finals + (~state.open).astype(np.float32) * _NEVER
    finals = finals + (~just_finished).astype(np.float32) * _NEVER
    merged_scores = np.concatenate([state.scores, finals], axis=1)
    best = _top(merged_scores, beams)
    state.sequences = _gather(np.concatenate([state.sequences, top_sequences], axis=1), best)
    state.scores = np.take_along_axis(merged_scores, best, axis=1)
    candidate_lengths = np.full((batch, keep), cur_len + 1, dtype=np.int64)
    state.lengths = np.take_along_axis(
        np.concatenate([state.lengths, candidate_lengths], axis=1), best, axis=1
    )
    state.finished = np.take_along_axis(np.concatenate([state.finished, just_finished], axis=1), best, axis=1)
    return source, hits
