"""Facts about a transformers seq2seq config that exporters and engines both need."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError

from profiler.artifact import MANIFEST_NAME, ArtifactError, DecoderSpec
from profiler.attention_layout import EncoderLayout
from profiler.errors import ConfigError
from profiler.validation import pydantic_problems

#: The study's input lengths: the default buckets.
DEFAULT_LENGTHS = (1024, 2048, 3072, 4096)
#: Decode-length bound where the model's own is unknown, or it has no decoder position table.
MAX_DECODE_TOKENS = 1024


def encoder_layout(config: Any) -> EncoderLayout:
    """How the model's encoder attends, as the host must know it to pad inputs and feed the graph.

    LED pads to its largest window (each layer's one-sided window must divide it); BigBird pads to
    its block when block-sparse and not at all when its attention is full.
    """
    if config.model_type == "led":
        windows = (
            config.attention_window
            if isinstance(config.attention_window, list)
            else [config.attention_window]
        )
        multiple = math.lcm(*(int(window) for window in windows), *(int(window) // 2 for window in windows))
        return EncoderLayout(attention="sliding_window", multiple=multiple, global_attention=True)
    if config.model_type == "bigbird_pegasus" and config.attention_type == "block_sparse":
        return EncoderLayout(
            attention="block_sparse",
            multiple=int(config.block_size),
            block_size=int(config.block_size),
            random_blocks=int(config.num_random_blocks),
        )
    return EncoderLayout(attention="full")


def max_input_length(config: Any) -> int | None:
    """Longest encoder input the model's position table allows (None: relative positions)."""
    if config.model_type == "led":
        return int(config.max_encoder_position_embeddings)
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if limit else None


def default_buckets(config: Any) -> list[int]:
    """The study's lengths that the model can take (padded as its layout pads them)."""
    limit, layout = max_input_length(config), encoder_layout(config)
    return [n for n in DEFAULT_LENGTHS if limit is None or layout.row_length(n) <= limit]


def decoder_spec(config: Any) -> DecoderSpec:
    """Decoder shapes and special ids; T5-style configs name them differently.

    Raises:
        ArtifactError: the config lacks a special token id the greedy loop needs (or has one of
            the wrong type); the message names it.
    """
    heads = getattr(config, "decoder_attention_heads", None) or config.num_heads
    try:
        return DecoderSpec(
            layers=getattr(config, "decoder_layers", None) or config.num_decoder_layers,
            heads=heads,
            head_dim=getattr(config, "d_kv", None) or config.d_model // heads,
            vocab_size=config.vocab_size,
            decoder_start_token_id=config.decoder_start_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            max_target_positions=decoder_positions(config),
        )
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        raise ArtifactError(
            f"the checkpoint's config.json has no usable {fields} (a greedy decoder needs its start, end "
            "and padding token ids as integers); set them in config.json, then try again."
        ) from exc


def decoder_positions(config: Any) -> int:
    """Rows of the decoder's position table (LED has its own, BART-likes share one); 0: none."""
    return int(
        getattr(config, "max_decoder_position_embeddings", None)
        or getattr(config, "max_position_embeddings", None)
        or 0
    )


def max_decode_tokens(positions: int) -> int:
    """Most tokens a decoder with ``positions`` rows generates, or takes as a forward target.

    The first position holds the start token, so a 1024-row table decodes 1023 tokens.
    """
    return positions - 1 if positions > 1 else MAX_DECODE_TOKENS


def decode_limit(directory: Path) -> int:
    """:func:`max_decode_tokens` of a checkpoint (config.json) or artifact (manifest.json).

    Read from the JSON without loading the model, so that a config can be checked before anything
    runs; a directory with neither (a bare tokenizer) gets the bound for an unknown model.
    """
    manifest, config = directory / MANIFEST_NAME, directory / "config.json"
    path = manifest if manifest.is_file() else config
    if not path.is_file():
        return MAX_DECODE_TOKENS
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if path == manifest:
            return max_decode_tokens(DecoderSpec.model_validate(raw["decoder"]).max_target_positions)
        return max_decode_tokens(decoder_positions(SimpleNamespace(**raw)))
    except ValidationError as exc:
        why = pydantic_problems(exc)
        raise ConfigError(f"{path}: unreadable decoder ({why}); export the artifact again.") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); copy or export the model again.") from exc
