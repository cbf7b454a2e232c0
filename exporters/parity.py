"""Parity of an exported artifact against transformers, at and off the bucket edges.

Each case is a batch; each of its rows is compared with what transformers gives for that row
alone, unpadded: its encoder output (at the row's positions, against a tolerance relative to the
output's scale: :func:`within_tolerance`, 1e-3 in fp32, absolute for outputs up to 1 in magnitude,
relative beyond) and ``new_tokens`` steps of its own greedy ``generate``, which must be identical
up to a near-tie: a row may first differ only at a step where transformers' own scores for its
token and the exported one are within the same tolerance (fp32 rounding picks between them; the
row is compared up to there), as transformers' own generation tests allow.
The lengths include every bucket, lengths just short of each, lengths between buckets and the
shortest at which BigBird attends sparsely; batches mix lengths and global attention, so padding,
per-row block patterns and global tokens are all exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.progress import Steps, case_label
from profiler.artifact import Manifest, ParityCase
from profiler.attention_layout import EncoderLayout
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import decode, host_array
from profiler.engines.graphs import Seq2SeqGraphs, open_graphs


def parity_lengths(buckets: list[int], layout: EncoderLayout) -> list[int]:
    """Every bucket, 24 tokens short of it, midway to the bucket below (odd), and BigBird's
    shortest block-sparse input; ascending, up to the largest bucket."""
    lengths = set()
    below = 0
    for bucket in sorted(buckets):
        lengths |= {bucket, max(1, bucket - 24), (below + bucket) // 2 | 1}
        below = bucket
    if layout.attention == "block_sparse":
        lengths.add((5 + 2 * layout.random_blocks) * layout.block_size + 1)
    return sorted(length for length in lengths if length <= max(buckets))


def parity_cases(
    buckets: list[int], batch_sizes: list[int], layout: EncoderLayout
) -> list[tuple[list[int], list[int]]]:
    """``(lengths, global tokens)`` per case: every parity length alone (LED with global attention
    on its first token, and at each bucket without), then one batch per batch size over one that
    mixes lengths (the longest bucket, and shorter rows) and, for LED, global attention (first
    token, five query tokens, none)."""
    first = 1 if layout.global_attention else 0
    cases = [([length], [first]) for length in parity_lengths(buckets, layout)]
    if layout.global_attention:
        cases += [([bucket], [0]) for bucket in sorted(buckets)]
    longest = max(buckets)
    for size in batch_sizes:
        if size > 1:
            lengths = [longest - (longest // 10 + 7) * row for row in range(size)]
            lengths = [max(length, 1) for length in lengths]
            globals_ = [[1, 5, 0][row % 3] if layout.global_attention else 0 for row in range(size)]
            cases.append((lengths, globals_))
    return cases


def parity_rows(vocab_size: int, lengths: list[int]) -> list[np.ndarray]:
    """Seeded token ids, one array per row."""
    generator = np.random.default_rng(sum(lengths) * 31 + len(lengths))
    return [generator.integers(3, vocab_size, size=length, dtype=np.int64) for length in lengths]


def global_mask(length: int, global_tokens: int) -> np.ndarray:
    """transformers' ``global_attention_mask`` for one row."""
    mask = np.zeros(length, dtype=np.int64)
    mask[:global_tokens] = 1
    return mask


#: Scores kept per greedy step of a reference: enough to tell a near-tie from a different token.
TOP_SCORES = 5


@dataclass(frozen=True)
class Greedy:
    """transformers' greedy answer for one row: its tokens (the decoder start first) and, per step,
    the ``TOP_SCORES`` best scores and their token ids, best first (``[steps, TOP_SCORES]``)."""

    tokens: np.ndarray
    top_scores: np.ndarray
    top_ids: np.ndarray


def eager_generate(
    model: Any,
    input_ids: np.ndarray,
    mask: np.ndarray,
    new_tokens: int,
    global_attention_mask: np.ndarray | None = None,
) -> np.ndarray:
    """transformers' own greedy ``generate`` with exactly ``new_tokens`` steps."""
    output = _generate(model, input_ids, mask, new_tokens, global_attention_mask, scores=False)
    return output.numpy()  # type: ignore[no-any-return]


def eager_greedy(
    model: Any, ids: np.ndarray, new_tokens: int, global_attention_mask: np.ndarray | None = None
) -> Greedy:
    """:func:`eager_generate` for one unpadded row, with each step's best scores."""
    mask = np.ones((1, len(ids)), dtype=np.int64)
    output = _generate(model, ids[None], mask, new_tokens, global_attention_mask, scores=True)
    top = torch.topk(torch.stack([step[0] for step in output.scores]).float(), TOP_SCORES, dim=-1)
    return Greedy(output.sequences[0].numpy(), top.values.numpy(), top.indices.numpy())


def _generate(
    model: Any,
    input_ids: np.ndarray,
    mask: np.ndarray,
    new_tokens: int,
    global_attention_mask: np.ndarray | None,
    *,
    scores: bool,
) -> Any:
    from transformers import GenerationConfig

    config = model.config
    generation = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        num_beams=1,
        do_sample=False,
    )
    # Installed on the model rather than passed: transformers would otherwise merge in the
    # checkpoint's own defaults (e.g. BART's forced EOS), and parity compares plain greedy.
    model.generation_config = generation
    extra: dict[str, Any] = {}
    if global_attention_mask is not None:
        extra["global_attention_mask"] = torch.from_numpy(global_attention_mask)
    if scores:
        extra |= {"output_scores": True, "return_dict_in_generate": True}
    with torch.inference_mode():
        return model.generate(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask), **extra
        )


def eager_encode(model: Any, ids: np.ndarray, global_tokens: int, layout: EncoderLayout) -> np.ndarray:
    """transformers' encoder output for one unpadded row ``[n, d]``."""
    extra = {}
    if layout.global_attention:
        extra["global_attention_mask"] = torch.from_numpy(global_mask(len(ids), global_tokens))[None]
    with torch.inference_mode():
        hidden = model.get_encoder()(
            input_ids=torch.from_numpy(ids)[None],
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            **extra,
        ).last_hidden_state
    return hidden[0].numpy()  # type: ignore[no-any-return]


def within_tolerance(max_abs_diff: float, scale: float, tolerance: float) -> bool:
    """``max_abs_diff <= tolerance x max(1, scale)``, ``scale`` the largest reference magnitude."""
    return max_abs_diff <= tolerance * max(1.0, scale)


@dataclass(frozen=True)
class Reference:
    """transformers' answer for one parity case: each row's ids, encoder output ``[n, d]`` and
    greedy answer. Computed before the graphs are opened, so that the model and the graphs need not
    be in memory together (:func:`exporters.export.export` frees the model in between)."""

    global_tokens: list[int]
    rows: list[np.ndarray]
    hidden: list[np.ndarray]
    greedy: list[Greedy]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.rows]


def eager_references(
    model: Any, manifest: Manifest, new_tokens: int, steps: Steps | None = None
) -> list[Reference]:
    """transformers' encoder output and ``new_tokens``-step greedy ``generate`` for every row of
    every parity case of ``manifest``, each row alone and unpadded (a step of ``steps`` each)."""
    layout = manifest.layout
    references = []
    for lengths, global_tokens in parity_cases(manifest.buckets, manifest.batch_sizes, layout):
        if steps is not None:
            steps.start(f"transformers' reference at {case_label(lengths, global_tokens)}")
        rows = parity_rows(model.config.vocab_size, lengths)
        hidden, greedy = [], []
        for ids, count in zip(rows, global_tokens, strict=True):
            hidden.append(eager_encode(model, ids, count, layout))
            globals_ = global_mask(len(ids), count)[None] if layout.global_attention else None
            greedy.append(eager_greedy(model, ids, new_tokens, globals_))
        references.append(Reference(global_tokens, rows, hidden, greedy))
    return references


def token_agreement(expected: np.ndarray, produced: np.ndarray) -> tuple[int, int]:
    """(positions where ``produced`` has ``expected``'s token, positions in all): a shorter or longer
    output differs at every position the other lacks."""
    common = min(len(expected), len(produced))
    same = int((expected[:common] == produced[:common]).sum())
    return same, max(len(expected), len(produced))


def near_tie(expected: Greedy, produced: np.ndarray, tolerance: float) -> int | None:
    """The step at which ``produced`` first leaves ``expected``'s tokens, if transformers' own scores
    there for its token and the produced one are within ``tolerance`` (relative to their scale, as
    :func:`within_tolerance`): a near-tie that rounding decides. None when they do not differ, or
    differ otherwise (another length, the decoder start, a token far from the best)."""
    tokens = expected.tokens
    if len(tokens) != len(produced) or (tokens == produced).all():
        return None
    step = int(np.argmax(tokens != produced))
    if step == 0:  # the decoder start is given, not chosen
        return None
    ids, scores = expected.top_ids[step - 1], expected.top_scores[step - 1]
    chosen = np.flatnonzero(ids == produced[step])
    if not chosen.size:
        return None
    gap = float(scores[0] - scores[chosen[0]])
    return step if within_tolerance(gap, abs(float(scores[0])), tolerance) else None


def case_parity(
    graphs: Seq2SeqGraphs,
    layout: EncoderLayout,
    reference: Reference,
    new_tokens: int,
    tolerance: float,
    min_token_agreement: float | None = None,
) -> ParityCase:
    """Run one case's rows as one batch through the graphs and compare each row with ``reference``.

    fp32 (``min_token_agreement`` None) passes with identical tokens (up to a :func:`near_tie`,
    recorded in ``ties``) and the encoder within ``tolerance``; reduced precision passes with at
    least ``min_token_agreement`` of the tokens identical, its encoder difference recorded but not
    judged (it is expected to be larger)."""
    batch = layout.batch(reference.rows, graphs.decoder.pad_token_id, reference.global_tokens)
    hidden = graphs.encode(batch.input_ids, batch.attention_mask, batch.extra)
    plain = DecodingConfig(min_new_tokens=new_tokens)  # as eager_generate's reference
    produced = decode(graphs, hidden, batch.attention_mask, plain, new_tokens)
    exported = host_array(hidden).astype(np.float32)
    max_abs, scale, tokens_match, differ = 0.0, 0.0, True, False
    same, total, ties = 0, 0, []
    for row, (expected_hidden, expected) in enumerate(zip(reference.hidden, reference.greedy, strict=True)):
        length = len(expected_hidden)
        max_abs = max(max_abs, float(np.abs(exported[row, :length] - expected_hidden).max()))
        scale = max(scale, float(np.abs(expected_hidden).max()))
        row_match = len(expected.tokens) == produced.shape[1] and bool(
            (expected.tokens == produced[row]).all()
        )
        tokens_match &= row_match
        if not row_match:
            tie = near_tie(expected, produced[row], tolerance)
            ties += [tie] if tie is not None else []
            differ |= tie is None
        row_same, row_total = token_agreement(expected.tokens, produced[row])
        same, total = same + row_same, total + row_total
    agreement = same / max(total, 1)
    if min_token_agreement is None:
        passed = not differ and within_tolerance(max_abs, scale, tolerance)
    else:
        passed = agreement >= min_token_agreement
    return ParityCase(
        lengths=reference.lengths,
        global_tokens=reference.global_tokens,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / max(scale, 1e-12),
        new_tokens=new_tokens,
        tokens_match=tokens_match,
        ties=ties,
        token_agreement=round(agreement, 6),
        passed=passed,
    )


def compare_with_references(
    references: list[Reference],
    directory: Path,
    manifest: Manifest,
    new_tokens: int,
    steps: Steps | None = None,
    device: str = "cpu",
) -> list[ParityCase]:
    """Every parity case of the artifact in ``directory`` against its reference (a step of
    ``steps`` each), its graphs run on ``device``."""
    graphs = open_graphs(directory, manifest, device)
    rows = []
    for reference in references:
        if steps is not None:
            steps.start(f"parity at {case_label(reference.lengths, reference.global_tokens)}")
        rows.append(
            case_parity(
                graphs,
                manifest.layout,
                reference,
                new_tokens,
                manifest.parity_tolerance,
                manifest.min_token_agreement,
            )
        )
    return rows


def check_parity(model: Any, directory: Path, manifest: Manifest, new_tokens: int) -> list[ParityCase]:
    """Every parity case of the artifact in ``directory`` against transformers ``model``."""
    references = eager_references(model, manifest, new_tokens)
    return compare_with_references(references, directory, manifest, new_tokens)


def parity_table(rows: list[ParityCase], tolerance: float, min_token_agreement: float | None = None) -> str:
    """Plain-text table: one line per case; reduced precision (``min_token_agreement``) adds the
    fraction of identical tokens, which is what it is judged by."""
    reduced = min_token_agreement is not None
    agree = f" {'agree':>6}" if reduced else ""
    head = f"{'lengths':>16} {'global':>8} {'max abs diff':>13} {'max rel diff':>13} {'tokens':>8}"
    lines = [f"{head}{agree}  result"]
    for row in rows:
        tokens = "same" if row.tokens_match else "DIFFER"
        if row.ties and row.passed:
            tokens = "tie@" + ",".join(map(str, row.ties))
        bound = f"token agreement >= {min_token_agreement:g}" if reduced else f"tolerance {tolerance:g}"
        verdict = "ok" if row.passed else f"FAIL ({bound}, {row.new_tokens} tokens)"
        lengths = ",".join(map(str, row.lengths))
        globals_ = ",".join(map(str, row.global_tokens))
        share = f" {row.token_agreement:>6.1%}" if reduced else ""
        lines.append(
            f"{lengths:>16} {globals_:>8} {row.max_abs_diff:>13.3e} {row.max_rel_diff:>13.3e} "
            f"{tokens:>8}{share}  {verdict}"
        )
    return "\n".join(lines)


def failed_parity_message(
    rows: list[ParityCase], tolerance: float, min_token_agreement: float | None = None
) -> str:
    failed = sorted({length for row in rows if not row.passed for length in row.lengths})
    bound = (
        "Pass"
        if min_token_agreement is None
        else f"Lower --min-token-agreement (now {min_token_agreement:g}) to accept more differing "
        "tokens, or pass"
    )
    return (
        f"parity failed at length(s) {', '.join(map(str, failed))}; nothing was written. "
        f"Exported graphs differ from transformers:\n{parity_table(rows, tolerance, min_token_agreement)}\n"
        f"{bound} --skip-parity to keep an unverified artifact (recorded in its manifest)."
    )
