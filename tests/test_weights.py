"""The model served is the model trained: a checkpoint whose weights file does not cover the model
is refused unless allowed (then recorded), and BigBird's attention mode does not stick."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from exporters.export import HARMLESS_LOG_LINES
from profiler.checkpoints import CheckpointError, load_model, restore_attention_type
from profiler.engines.eager import EagerGraphs
from profiler.engines.engine import load_engine
from profiler.modelinfo import decoder_spec

#: A parameter of the tiny LED that nothing else ties to: without it, it would be random.
DROPPED = "led.encoder.layernorm_embedding.weight"


@pytest.fixture
def incomplete_led(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> Path:
    """The tiny LED with one parameter removed from its weights file and one that fits nothing added."""
    checkpoint = tmp_path / "led"
    shutil.copytree(tiny_checkpoints["led"], checkpoint)
    weights = checkpoint / "model.safetensors"
    tensors = load_file(weights)
    assert DROPPED in tensors
    del tensors[DROPPED]
    tensors["led.encoder.not_a_layer.weight"] = torch.zeros(2)
    save_file(tensors, weights, metadata={"format": "pt"})
    return checkpoint


def test_a_complete_checkpoint_loads_with_no_new_weights(tiny_checkpoints: dict[str, Path]) -> None:
    for checkpoint in tiny_checkpoints.values():
        assert load_model(checkpoint).new_weights == []


def test_missing_and_unused_weights_are_refused_in_one_line(incomplete_led: Path) -> None:
    with pytest.raises(CheckpointError) as caught:
        load_model(incomplete_led)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{incomplete_led}: 2 parameter(s) do not come from the weights file: ")
    assert f"{DROPPED} (random)" in message
    assert "led.encoder.not_a_layer.weight (unused)" in message
    assert "--allow-new-weights" in message
    with pytest.raises(CheckpointError):
        load_engine(incomplete_led)  # `profiler serve` of the checkpoint: the same refusal


def test_allowed_new_weights_are_named_by_the_engine(incomplete_led: Path) -> None:
    loaded = load_model(incomplete_led, allow_new_weights=True)
    assert loaded.new_weights == [f"{DROPPED} (random)", "led.encoder.not_a_layer.weight (unused)"]
    engine = load_engine(incomplete_led, allow_new_weights=True)
    assert engine.new_weights == loaded.new_weights


@pytest.mark.integration
def test_an_export_with_new_weights_records_them(incomplete_led: Path, tmp_path: Path) -> None:
    from exporters.export import export

    with pytest.raises(CheckpointError):
        export(incomplete_led, "onnx", tmp_path / "refused", lengths=[1024], skip_parity=True)
    assert not (tmp_path / "refused").exists()
    manifest = export(
        incomplete_led, "onnx", tmp_path / "allowed", lengths=[1024], skip_parity=True, allow_new_weights=True
    )
    assert manifest.new_weights == [f"{DROPPED} (random)", "led.encoder.not_a_layer.weight (unused)"]
    assert load_engine(tmp_path / "allowed").new_weights == manifest.new_weights


@pytest.mark.integration
def test_transformers_loading_warnings_reach_the_user_without_progress_bars(
    incomplete_led: Path, tmp_path: Path
) -> None:
    """The CLI never quiets transformers' loading warnings (a random parameter is the user's to
    see), only its progress bars; run as a user runs it, in a process of its own."""
    env = {name: value for name, value in os.environ.items() if name != "TRANSFORMERS_VERBOSITY"}
    args = ["export", str(incomplete_led), "--format", "torchscript", "--allow-new-weights", "--skip-parity"]
    args += ["--lengths", "1024"]
    result = subprocess.run(
        [sys.executable, "-m", "profiler", *args, "-o", str(tmp_path / "art")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "newly initialized" in result.stderr  # transformers' own words, 4.57 and 5.x alike
    assert DROPPED in result.stderr
    assert "Loading weights" not in result.stderr
    assert "it/s" not in result.stderr
    assert not [line for line in HARMLESS_LOG_LINES if line in result.stderr]


@pytest.fixture
def bigbird_block_128(tmp_path: Path) -> Path:
    """A tiny BigBird-Pegasus with bigbird-pegasus-large's block size and random blocks: block-sparse
    attention needs more than (5 + 2 x 3) x 128 = 1408 tokens, so 1024 runs full attention."""
    from transformers import BigBirdPegasusConfig, BigBirdPegasusForConditionalGeneration

    config = BigBirdPegasusConfig(
        vocab_size=96,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=4096,
        attention_type="block_sparse",
        block_size=128,
        num_random_blocks=3,
        init_std=0.3,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    BigBirdPegasusForConditionalGeneration(config).eval().save_pretrained(tmp_path / "bigbird")
    return tmp_path / "bigbird"


def test_a_short_input_does_not_leave_bigbird_in_full_attention(bigbird_block_128: Path) -> None:
    """transformers switches to full attention for the 1024 input and would stay there for 2048."""
    long_ids = np.random.default_rng(0).integers(2, 96, size=(1, 2048))
    fresh: Any = load_model(bigbird_block_128).model  # transformers' submodules do not type-check
    encoder = fresh.get_encoder()
    with torch.inference_mode():
        expected = encoder(input_ids=torch.from_numpy(long_ids)).last_hidden_state.numpy()
    assert encoder.attention_type == "block_sparse"

    graphs = EagerGraphs(bigbird_block_128, [1024, 2048], decoder_spec(fresh.config))
    graphs.encode(long_ids[:, :1024], np.ones((1, 1024), dtype=np.int64), {})
    assert graphs.model.get_encoder().attention_type == "original_full"  # what transformers did
    served = graphs.encode(long_ids, np.ones_like(long_ids), {})
    assert graphs.model.get_encoder().attention_type == "block_sparse"
    np.testing.assert_allclose(served, expected, atol=1e-5)

    restore_attention_type(fresh)  # harmless on a model already in its configured mode
    assert encoder.attention_type == "block_sparse"


@pytest.mark.integration
def test_export_parity_after_a_bucket_in_full_attention(
    bigbird_block_128: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """The eager reference must not stay in full attention after an input short enough for it: the
    longer inputs are block-sparse, and so must the reference they are compared with be."""
    from exporters.export import export

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_checkpoints["bigbird-pegasus"] / name).is_file():
            shutil.copy(tiny_checkpoints["bigbird-pegasus"] / name, bigbird_block_128 / name)
    manifest = export(bigbird_block_128, "onnx", tmp_path / "out", lengths=[1024, 2048], new_tokens=8)
    assert [1409] in [row.lengths for row in manifest.parity]  # the shortest block-sparse input
    assert all(row.tokens_match and row.passed for row in manifest.parity)


@pytest.mark.parametrize(
    ("max_abs", "scale", "passed"),
    [
        (0.9e-3, 0.5, True),  # small activations: absolute
        (1.1e-3, 0.5, False),
        (1.9e-3, 12.7, True),  # a T5 whose outputs reach 12.7: 1.5e-4 relative
        (13e-3, 12.7, False),
    ],
)
def test_parity_tolerance_is_relative_to_the_outputs_scale(
    max_abs: float, scale: float, passed: bool
) -> None:
    from exporters.parity import within_tolerance

    assert within_tolerance(max_abs, scale, 1e-3) is passed


def test_the_cli_refuses_an_incomplete_checkpoint_in_one_line(incomplete_led: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from profiler.cli import app

    for args in (
        ["serve", str(incomplete_led), "--port", "0"],
        ["export", str(incomplete_led), "-o", str(tmp_path / "a")],
    ):
        result = CliRunner().invoke(app, args, prog_name="profiler")
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            f"error: {incomplete_led}: 2 parameter(s) do not come from the weights file"
        )
    assert not (tmp_path / "a").exists()
