from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from typer.testing import CliRunner

from profiler.checkpoints import (
    ARCHS,
    MAX_INPUT_TOKENS,
    SHAPES,
    Arch,
    CheckpointError,
    Size,
    build_checkpoint,
    load_model,
    model_config,
    train_tokenizer,
)
from profiler.cli import app

EXPECTED_FILES = {
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
}  # transformers 4.x also writes special_tokens_map.json; 5.x keeps those tokens in tokenizer_config.json


def _random_ids(vocab_size: int, length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab_size, (1, length), generator=generator)


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_loads_offline_and_generates(arch: str, tiny_checkpoints: dict[str, Path]) -> None:
    path = tiny_checkpoints[arch]
    assert {p.name for p in path.iterdir()} >= EXPECTED_FILES
    # A class every supported transformers loads (5.x would write "TokenizersBackend", unknown to 4.57).
    assert (
        json.loads((path / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    assert model.config.model_type == {"led": "led", "bigbird-pegasus": "bigbird_pegasus"}[arch]
    assert len(tokenizer) == model.config.vocab_size
    text = "Where is the committee located?\n\nThe committee reviewed the annual budget."
    encoded = tokenizer(text, return_tensors="pt")
    assert tokenizer.decode(encoded["input_ids"][0], skip_special_tokens=True) == (
        text if arch == "led" else " ".join(text.split())
    )
    with torch.inference_mode():
        output = model.generate(**encoded, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert output.shape == (1, 9)  # decoder start token + 8 new tokens
    assert output[0, 0].item() == model.config.decoder_start_token_id


@pytest.mark.parametrize("arch", ARCHS)
def test_same_arguments_write_byte_identical_files(arch: str, tmp_path: Path) -> None:
    first = build_checkpoint(arch, "tiny", tmp_path / "a")
    second = build_checkpoint(arch, "tiny", tmp_path / "b")
    names = sorted(p.name for p in first.path.iterdir())
    assert names == sorted(p.name for p in second.path.iterdir())
    for name in names:
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes(), name
    other_seed = build_checkpoint(arch, "tiny", tmp_path / "c", seed=1)
    assert (other_seed.path / "model.safetensors").read_bytes() != (
        first.path / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize("arch", ARCHS)
def test_small_checkpoint_encodes_the_longest_input(arch: str, small_checkpoints: dict[str, Path]) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(small_checkpoints[arch]).eval()
    params = model.num_parameters()
    assert 1_000_000 < params < 10_000_000
    input_ids = _random_ids(model.config.vocab_size, MAX_INPUT_TOKENS)
    with torch.inference_mode():
        hidden = model.get_encoder()(input_ids=input_ids).last_hidden_state
    assert hidden.shape == (1, MAX_INPUT_TOKENS, model.config.d_model)
    assert torch.isfinite(hidden).all()


def test_led_attention_is_local(tiny_checkpoints: dict[str, Path]) -> None:
    """A token far outside the sliding window cannot change the first position's output."""
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoints["led"]).eval()
    assert model.config.encoder_layers == 1
    window = model.config.attention_window[0]
    input_ids = _random_ids(model.config.vocab_size, MAX_INPUT_TOKENS)
    changed_far, changed_near = input_ids.clone(), input_ids.clone()
    changed_far[0, 2000] = (changed_far[0, 2000] + 1) % model.config.vocab_size
    changed_near[0, window // 4] = (changed_near[0, window // 4] + 1) % model.config.vocab_size
    encoder = model.get_encoder()
    with torch.inference_mode():
        base = encoder(input_ids=input_ids).last_hidden_state[0, 0]
        far = encoder(input_ids=changed_far).last_hidden_state[0, 0]
        near = encoder(input_ids=changed_near).last_hidden_state[0, 0]
    assert torch.equal(base, far)
    assert not torch.equal(base, near)


@pytest.mark.parametrize("length", [1024, 2048, 3072, 4096])
def test_bigbird_block_sparse_attention_is_active(length: int, tiny_checkpoints: dict[str, Path]) -> None:
    """transformers silently falls back to full attention on short inputs; ours must not."""
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoints["bigbird-pegasus"]).eval()
    encoder = model.get_encoder()
    input_ids = _random_ids(model.config.vocab_size, length)
    with torch.inference_mode():
        sparse = encoder(input_ids=input_ids).last_hidden_state
        assert encoder.attention_type == "block_sparse"
        encoder.set_attention_type("original_full")
        full = encoder(input_ids=input_ids).last_hidden_state
    assert not torch.allclose(sparse, full, atol=1e-4)


def test_non_empty_output_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(CheckpointError, match=r"not empty.*--overwrite"):
        build_checkpoint("led", "tiny", tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "user data"
    built = build_checkpoint("led", "tiny", tmp_path, overwrite=True)
    assert json.loads((built.path / "config.json").read_text())["model_type"] == "led"


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        build_checkpoint("led", "tiny", target)


@pytest.mark.parametrize(("arch", "size"), [("t5", "tiny"), ("led", "huge")])
def test_unknown_arch_or_size_names_the_choices(arch: str, size: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="choose one of"):
        build_checkpoint(arch, size, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("arch", "size", "needle"),
    [
        ("bigbird-pegasus", "base", "pass --size large"),
        ("led", "huge", "choose one of: tiny, small, base, large"),
        ("t5", "small", "choose one of: led, bigbird-pegasus"),
    ],
)
def test_cli_refuses_a_size_or_arch_in_one_line(arch: str, size: str, needle: str, tmp_path: Path) -> None:
    """BigBird-Pegasus was published only as large: base is refused, not mapped to another shape."""
    out = tmp_path / "x"
    result = CliRunner().invoke(
        app, ["checkpoints", "build", "--arch", arch, "--size", size, "-o", str(out)], prog_name="profiler"
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert not out.exists()


#: The published config.json values (and parameter counts) each base/large shape must reproduce.
PUBLISHED: dict[tuple[Arch, Size], tuple[dict[str, int], dict[str, object], int]] = {
    ("led", "base"): (  # allenai/led-base-16384
        {"d_model": 768, "layers": 6, "heads": 12, "ffn": 3072, "vocab_size": 50265},
        {
            "attention_window": [1024] * 6,
            "max_encoder_position_embeddings": 16384,
            "max_decoder_position_embeddings": 1024,
        },
        161_844_480,
    ),
    ("led", "large"): (  # allenai/led-large-16384
        {"d_model": 1024, "layers": 12, "heads": 16, "ffn": 4096, "vocab_size": 50265},
        {
            "attention_window": [1024] * 12,
            "max_encoder_position_embeddings": 16384,
            "max_decoder_position_embeddings": 1024,
        },
        459_801_600,
    ),
    ("bigbird-pegasus", "large"): (  # google/bigbird-pegasus-large-arxiv
        {"d_model": 1024, "layers": 16, "heads": 16, "ffn": 4096, "vocab_size": 96103},
        {
            "attention_type": "block_sparse",
            "block_size": 64,
            "num_random_blocks": 3,
            "max_position_embeddings": 4096,
            "scale_embedding": True,
            "use_bias": False,
            "activation_function": "gelu_new",
        },
        576_891_904,
    ),
}


@pytest.mark.parametrize(("arch", "size"), list(PUBLISHED))
def test_published_sizes_have_the_published_shapes(arch: Arch, size: Size) -> None:
    """Config and parameter count only (the model on the meta device): no weights are drawn."""
    dims, specific, parameters = PUBLISHED[(arch, size)]
    tokenizer = train_tokenizer(arch, SHAPES[(arch, "tiny")])  # only its special token ids are read
    config = model_config(SHAPES[(arch, size)], tokenizer)
    assert config.d_model == dims["d_model"]
    assert config.encoder_layers == config.decoder_layers == dims["layers"]
    assert config.encoder_attention_heads == config.decoder_attention_heads == dims["heads"]
    assert config.encoder_ffn_dim == config.decoder_ffn_dim == dims["ffn"]
    assert config.vocab_size == dims["vocab_size"]
    for key, value in specific.items():
        assert getattr(config, key) == value, key
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    assert model.num_parameters() == parameters


@pytest.mark.slow
def test_base_led_builds_loads_and_generates(tmp_path: Path) -> None:
    built = build_checkpoint("led", "base", tmp_path / "led-base")
    assert built.parameters == PUBLISHED[("led", "base")][2]
    assert built.vocab_size == built.tokens == 50265
    loaded = load_model(built.path)
    assert loaded.new_weights == []
    model: Any = loaded.model  # transformers' generate() does not type-check
    tokenizer = AutoTokenizer.from_pretrained(built.path)
    assert model.config.attention_window == [1024] * 6
    assert tokenizer.model_max_length == model.config.max_encoder_position_embeddings == 16384
    for name in ("pad", "eos", "bos"):
        assert getattr(tokenizer, f"{name}_token_id") == getattr(model.config, f"{name}_token_id"), name
    encoded = tokenizer("The committee reviewed the annual budget.", return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**encoded, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape == (1, 5)
    assert output[0, 0].item() == model.config.decoder_start_token_id
    # Not chaotic: a change at rounding's scale stays there, so an exported graph can match it.
    ids = torch.randint(5, model.config.vocab_size, (1, 1024), generator=torch.Generator().manual_seed(0))
    encoder = model.get_encoder()
    with torch.inference_mode():
        embedded = encoder.embed_tokens(ids)
        outputs = [
            encoder(inputs_embeds=embedded + noise, attention_mask=torch.ones_like(ids)).last_hidden_state
            for noise in (0, 1e-6 * torch.randn(embedded.shape, generator=torch.Generator().manual_seed(1)))
        ]
    assert (outputs[0] - outputs[1]).abs().max().item() < 1e-3
