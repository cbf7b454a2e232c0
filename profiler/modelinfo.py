"""Facts about a transformers seq2seq config that exporters and engines both need."""

from __future__ import annotations

from typing import Any

from profiler.artifact import DecoderSpec

#: The study's input lengths: the default buckets.
DEFAULT_LENGTHS = (1024, 2048, 3072, 4096)


def bucket_granularity(config: Any) -> int:
    """Bucket lengths must be multiples of this: LED's window, BigBird's block, else 1."""
    if config.model_type == "led":
        windows = set(config.attention_window) if isinstance(config.attention_window, list) else None
        return max(windows) if windows else int(config.attention_window)
    if config.model_type == "bigbird_pegasus":
        return int(config.block_size)
    return 1


def max_input_length(config: Any) -> int | None:
    """Longest encoder input the model's position table allows (None: relative positions)."""
    if config.model_type == "led":
        return int(config.max_encoder_position_embeddings)
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if limit else None


def default_buckets(config: Any) -> list[int]:
    """The study's lengths that the model can take."""
    limit = max_input_length(config)
    step = bucket_granularity(config)
    return [n for n in DEFAULT_LENGTHS if (limit is None or n <= limit) and n % step == 0]


def decoder_spec(config: Any) -> DecoderSpec:
    """Decoder shapes and special ids; T5-style configs name them differently."""
    heads = getattr(config, "decoder_attention_heads", None) or config.num_heads
    return DecoderSpec(
        layers=getattr(config, "decoder_layers", None) or config.num_decoder_layers,
        heads=heads,
        head_dim=getattr(config, "d_kv", None) or config.d_model // heads,
        vocab_size=config.vocab_size,
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_target_positions=int(
            getattr(config, "max_decoder_position_embeddings", None)
            or getattr(config, "max_position_embeddings", None)
            or 0
        ),
    )
