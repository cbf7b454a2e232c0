"""Parity of an exported artifact against eager PyTorch, for every bucket and batch size.

Encoder outputs are compared at real (unpadded) positions, against a tolerance relative to the
output's scale (:func:`within_tolerance`: 1e-3 in fp32, absolute for outputs up to 1 in magnitude,
relative beyond), so a model whose activations reach 10 is held to the same precision as one whose
activations stay below 1. Generation compares the
token ids of ``new_tokens`` greedy steps, which must be identical. Batches larger than one pad
their last row, so the masked paths are exercised too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from profiler.artifact import BucketParity, Manifest
from profiler.engines.graphs import Seq2SeqGraphs, open_graphs
from profiler.engines.greedy import greedy_generate


def parity_inputs(vocab_size: int, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded token ids; in a batch of two or more the last row is a tenth padding."""
    generator = np.random.default_rng(length * 31 + batch)
    input_ids = generator.integers(3, vocab_size, size=(batch, length), dtype=np.int64)
    mask = np.ones_like(input_ids)
    if batch > 1:
        mask[-1, length - length // 10 :] = 0
    return input_ids, mask


def eager_generate(model: Any, input_ids: np.ndarray, mask: np.ndarray, new_tokens: int) -> np.ndarray:
    """transformers' own greedy ``generate`` with exactly ``new_tokens`` steps."""
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
    with torch.inference_mode():
        output = model.generate(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
    return output.numpy()  # type: ignore[no-any-return]


def within_tolerance(max_abs_diff: float, scale: float, tolerance: float) -> bool:
    """``max_abs_diff <= tolerance x max(1, scale)``, ``scale`` the largest reference magnitude."""
    return max_abs_diff <= tolerance * max(1.0, scale)


def bucket_parity(
    model: Any, graphs: Seq2SeqGraphs, length: int, batch: int, new_tokens: int, tolerance: float
) -> BucketParity:
    """Compare one bucket at one batch size."""
    input_ids, mask = parity_inputs(model.config.vocab_size, batch, length)
    with torch.inference_mode():
        reference = model.get_encoder()(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state.numpy()
    exported = graphs.encode(input_ids, mask)
    real = mask.astype(bool)
    diff = np.abs(exported[real] - reference[real])
    max_abs = float(diff.max())
    scale = float(np.abs(reference[real]).max())
    max_rel = max_abs / max(scale, 1e-12)
    expected = eager_generate(model, input_ids, mask, new_tokens)
    produced = greedy_generate(graphs, input_ids, mask, new_tokens, min_new_tokens=new_tokens)
    tokens_match = expected.shape == produced.shape and bool((expected == produced).all())
    return BucketParity(
        length=length,
        batch_size=batch,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        new_tokens=new_tokens,
        tokens_match=tokens_match,
        passed=tokens_match and within_tolerance(max_abs, scale, tolerance),
    )


def check_parity(model: Any, directory: Path, manifest: Manifest, new_tokens: int) -> list[BucketParity]:
    """Every bucket x batch size of the artifact in ``directory`` against eager ``model``."""
    graphs = open_graphs(directory, manifest)
    return [
        bucket_parity(model, graphs, length, batch, new_tokens, manifest.parity_tolerance)
        for length in manifest.buckets
        for batch in manifest.batch_sizes
    ]


def parity_table(rows: list[BucketParity], tolerance: float) -> str:
    """Plain-text table: one line per bucket and batch size."""
    lines = [
        f"{'bucket':>7} {'batch':>5} {'max abs diff':>13} {'max rel diff':>13} {'tokens':>8}  result",
    ]
    for row in rows:
        tokens = f"{'same' if row.tokens_match else 'DIFFER'}"
        verdict = "ok" if row.passed else f"FAIL (tolerance {tolerance:g}, {row.new_tokens} tokens)"
        lines.append(
            f"{row.length:>7} {row.batch_size:>5} {row.max_abs_diff:>13.3e} {row.max_rel_diff:>13.3e} "
            f"{tokens:>8}  {verdict}"
        )
    return "\n".join(lines)


def failed_parity_message(rows: list[BucketParity], tolerance: float) -> str:
    failed = sorted({row.length for row in rows if not row.passed})
    return (
        f"parity failed at bucket(s) {', '.join(map(str, failed))}; nothing was written. "
        f"Exported graphs differ from eager PyTorch:\n{parity_table(rows, tolerance)}\n"
        "Pass --skip-parity to keep an unverified artifact (recorded in its manifest)."
    )
