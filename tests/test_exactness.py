"""Every engine returns transformers' own greedy tokens for any input length, off the bucket edges
too, on checkpoints whose configs differ from the builder's: LED with per-layer windows, an odd
head count, untied embeddings and global attention (first token, query tokens, none); BigBird-
Pegasus with 32-token blocks and 3 random blocks (the shortest block-sparse input included), and
BigBird-Pegasus with full attention. Each input is compared with ``generate`` on that input alone,
unpadded, while the engines run them batched together."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from exporters.export import export
from exporters.parity import eager_generate, global_mask
from profiler.artifact import FORMATS
from profiler.checkpoints import load_model
from profiler.engines.engine import Job, load_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKETS = [1024, 4096]
NEW_TOKENS = 12
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _save(model: Any, tokenizer_from: Path, out: Path) -> Path:
    torch.manual_seed(0)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    model.eval().save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copy(tokenizer_from / name, out / name)
    return out


def _common(tokenizer_from: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    return {
        "vocab_size": len(tokenizer),
        "d_model": 36,
        "encoder_layers": 2,
        "decoder_layers": 1,
        "encoder_attention_heads": 3,  # odd, and a head size (12) the builder never uses
        "decoder_attention_heads": 3,
        "encoder_ffn_dim": 48,
        "decoder_ffn_dim": 48,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }


@pytest.fixture(scope="module")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]
) -> dict[str, Path]:
    """Three checkpoints built straight from transformers configs, each with a tokenizer."""
    from transformers import (
        BigBirdPegasusConfig,
        BigBirdPegasusForConditionalGeneration,
        LEDConfig,
        LEDForConditionalGeneration,
    )

    root = tmp_path_factory.mktemp("configs")
    led_tokens, bigbird_tokens = tiny_checkpoints["led"], tiny_checkpoints["bigbird-pegasus"]
    led = LEDConfig(
        **_common(led_tokens),
        attention_window=[32, 128],
        max_encoder_position_embeddings=4096,
        max_decoder_position_embeddings=64,
        tie_word_embeddings=False,
    )
    bigbird = {**_common(bigbird_tokens), "max_position_embeddings": 4096}
    return {
        "led-windows": _save(LEDForConditionalGeneration(led), led_tokens, root / "led"),
        "bigbird-block32": _save(
            BigBirdPegasusForConditionalGeneration(
                BigBirdPegasusConfig(**bigbird, block_size=32, num_random_blocks=3)
            ),
            bigbird_tokens,
            root / "bigbird-block32",
        ),
        "bigbird-full": _save(
            BigBirdPegasusForConditionalGeneration(
                BigBirdPegasusConfig(**bigbird, attention_type="original_full")
            ),
            bigbird_tokens,
            root / "bigbird-full",
        ),
    }


#: Off the bucket edges, and BigBird's shortest block-sparse input at block 32, 3 random blocks.
LENGTHS = [1000, 1500, 3000, 4000, 353, 352]


def _expected(model: Any, ids: np.ndarray, global_tokens: int) -> list[int]:
    mask = np.ones((1, len(ids)), dtype=np.int64)
    globals_ = global_mask(len(ids), global_tokens)[None] if model.config.model_type == "led" else None
    tokens: list[int] = eager_generate(model, ids[None], mask, NEW_TOKENS, globals_)[0, 1:].tolist()
    eos = model.config.eos_token_id
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("name", ["led-windows", "bigbird-block32", "bigbird-full"])
def test_every_engine_gives_transformers_tokens_at_every_length(
    name: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    checkpoint = checkpoints[name]
    model = load_model(checkpoint).model
    engines = {"eager": load_engine(checkpoint)}
    for fmt in FORMATS:
        manifest = export(checkpoint, fmt, tmp_path / fmt, lengths=BUCKETS, batch_sizes=[1, 2], new_tokens=8)
        assert all(case.passed for case in manifest.parity), manifest.parity
        engines[fmt] = load_engine(tmp_path / fmt)
    rng = np.random.default_rng(7)
    rows = [rng.integers(3, model.config.vocab_size, size=length) for length in LENGTHS]
    is_led = model.config.model_type == "led"
    # LED: the first token, eight query tokens, none; a model without global attention takes none.
    globals_ = [[1, 8, 0][index % 3] if is_led else 0 for index in range(len(rows))]
    expected = [_expected(model, ids, count) for ids, count in zip(rows, globals_, strict=True)]
    jobs = [
        Job([int(t) for t in ids], max_new_tokens=NEW_TOKENS, global_tokens=count)
        for ids, count in zip(rows, globals_, strict=True)
    ]
    for kind, engine in engines.items():
        alone = [engine.run([job])[0].output_ids for job in jobs]
        assert alone == expected, kind
        if kind == "eager":
            continue  # transformers itself pads a batch to its longest row, which changes BigBird's pattern
        together = [outcome.output_ids for outcome in engine.run(jobs[:4])]
        assert together == expected[:4], kind


def test_an_input_between_buckets_costs_its_own_padded_length(checkpoints: dict[str, Path]) -> None:
    """1,100 tokens in BigBird (block 32) run 1,120 tokens of encoder, not their bucket's 2,048."""
    engine = load_engine(checkpoints["bigbird-block32"])
    outcome = engine.run([Job([5] * 1100, max_new_tokens=2)])[0]
    assert (outcome.bucket, outcome.padded_length) == (2048, 1120)
