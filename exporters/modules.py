"""Export-friendly wrappers around a transformers LED or BigBird-Pegasus model.

They reuse the model's own submodules and weights and reorder none of its arithmetic, but avoid
what exporters cannot capture: the attention is :mod:`exporters.attention`'s static-shape version,
masks are built in O(n), and the decoder takes its position and its past key/values as explicit
tensors so one graph serves every step. Three graphs make a generator:

- :class:`EncoderGraph` (every length): ``input_ids, attention_mask, *layout inputs -> last_hidden_state``;
- :class:`DecoderInitGraph`: the first step; also projects the encoder output into each layer's
  cross-attention keys and values, once per request;
- :class:`DecoderStepGraph`: every later step, with the self-attention past growing by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from exporters.attention import (
    LARGE_NEGATIVE,
    block_sparse_attention,
    full_attention,
    sliding_window_attention,
    sliding_window_bias,
)
from profiler.artifact import ArtifactError

#: transformers ``model_type`` values this module knows how to rewrite.
SUPPORTED_MODEL_TYPES = ("led", "bigbird_pegasus")


def _split_heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, width = tensor.shape
    return tensor.reshape(batch, length, heads, width // heads).transpose(1, 2)


def _merge_heads(tensor: torch.Tensor) -> torch.Tensor:
    batch, heads, length, dim = tensor.shape
    return tensor.transpose(1, 2).reshape(batch, length, heads * dim)


def base_model(model: Any) -> Any:
    """The encoder-decoder inside a ``*ForConditionalGeneration`` model."""
    return model.led if model.config.model_type == "led" else model.model


class EncoderGraph(nn.Module):
    """The encoder at any input length that is a multiple of the layout's ``multiple``.

    Inputs: ``input_ids``, ``attention_mask`` and the layout's extra inputs
    (:meth:`profiler.attention_layout.EncoderLayout.extra_inputs`): for LED the global attention
    mask and each row's global positions; for block-sparse BigBird each row's key blocks, their
    biases and its last block.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.encoder = base_model(model).encoder
        self.config = model.config
        self.is_led = model.config.model_type == "led"
        self.sparse = not self.is_led and model.config.attention_type == "block_sparse"

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *extra: torch.Tensor
    ) -> torch.Tensor:
        encoder = self.encoder
        valid = attention_mask.bool()
        positions = encoder.embed_positions.weight[: input_ids.shape[1]]
        hidden = encoder.embed_tokens(input_ids) + positions
        if self.is_led:
            hidden = encoder.layernorm_embedding(hidden)
            is_global = extra[0].bool()
            global_index = extra[1]
            global_slots = torch.arange(global_index.shape[1])[None, :] < is_global.sum(dim=1, keepdim=True)
            band_keys = valid & ~is_global  # the global keys have their own columns
            biases: dict[int, torch.Tensor] = {}  # one per window size (layers may differ)
            for layer in encoder.layers:
                window = layer.self_attn.longformer_self_attn.one_sided_attn_window_size
                if window not in biases:
                    biases[window] = sliding_window_bias(band_keys, window, global_slots, hidden.dtype)
                context = self._led_attention(layer, hidden, valid, is_global, global_index, biases[window])
                hidden = layer.self_attn_layer_norm(hidden + context)
                hidden = layer.final_layer_norm(hidden + layer.fc2(layer.activation_fn(layer.fc1(hidden))))
            return hidden
        for layer in encoder.layers:
            normed = layer.self_attn_layer_norm(hidden)
            hidden = hidden + self._bigbird_attention(layer, normed, valid, extra)
            normed = layer.final_layer_norm(hidden)
            hidden = hidden + layer.fc2(layer.activation_fn(layer.fc1(normed)))
        return encoder.layernorm_embedding(hidden)

    def _led_attention(
        self,
        layer: Any,
        hidden: torch.Tensor,
        valid: torch.Tensor,
        is_global: torch.Tensor,
        global_index: torch.Tensor,
        window_bias: torch.Tensor,
    ) -> torch.Tensor:
        """Longformer attention: the band plus the global keys for every position, then global
        attention (its own projections, over every key) for the global positions."""
        attn = layer.self_attn.longformer_self_attn
        heads, scale = attn.num_heads, attn.head_dim**0.5
        query = _split_heads(attn.query(hidden), heads) / scale
        key = _split_heads(attn.key(hidden), heads)
        value = _split_heads(attn.value(hidden), heads)
        context = sliding_window_attention(
            query,
            key,
            value,
            attn.one_sided_attn_window_size,
            _gather_positions(key, global_index),
            _gather_positions(value, global_index),
            window_bias,
        )
        # Global positions attend to every valid key through the global projections.
        picked = torch.gather(hidden, 1, global_index[:, :, None].expand(-1, -1, hidden.shape[2]))
        global_query = _split_heads(attn.query_global(picked), heads) / scale  # [b, h, g, d]
        global_key = _split_heads(attn.key_global(hidden), heads)
        global_value = _split_heads(attn.value_global(hidden), heads)
        scores = torch.matmul(global_query, global_key.transpose(-1, -2))
        scores = scores + (~valid).to(scores.dtype)[:, None, None, :] * LARGE_NEGATIVE
        global_context = torch.matmul(torch.softmax(scores, dim=-1), global_value)  # [b, h, g, d]
        slot_of = (torch.cumsum(is_global.long(), dim=1) - 1).clamp(min=0)  # [b, n]
        spread = _gather_positions(global_context, slot_of)  # [b, h, n, d]
        context = torch.where(is_global[:, None, :, None], spread, context)
        context = context * valid[:, None, :, None].to(context.dtype)  # padded queries -> 0
        return layer.self_attn.output(_merge_heads(context))

    def _bigbird_attention(
        self, layer: Any, hidden: torch.Tensor, valid: torch.Tensor, extra: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        attn = layer.self_attn.self
        heads = self.config.encoder_attention_heads
        query = _split_heads(attn.query(hidden), heads)
        key = _split_heads(attn.key(hidden), heads)
        value = _split_heads(attn.value(hidden), heads)
        if self.sparse:
            block_index, block_bias, last_block = extra
            context = block_sparse_attention(
                query, key, value, valid, self.config.block_size, block_index, block_bias, last_block
            )
        else:
            context = full_attention(query * query.shape[-1] ** -0.5, key, value, valid)
        return layer.self_attn.output(_merge_heads(context))


def _gather_positions(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor [b, h, n, d]`` at positions ``index [b, g]`` of each row -> ``[b, h, g, d]``."""
    batch, heads, _, dim = tensor.shape
    picked = index[:, None, :, None].expand(batch, heads, index.shape[1], dim)
    return torch.gather(tensor, 2, picked)


def check_eval_random_blocks(model: Any, lengths: list[int]) -> None:
    """Refuse a transformers whose BigBird draws random key blocks in eval mode.

    The host computes BigBird's key blocks (:mod:`profiler.attention_layout`) on the premise that
    transformers, in eval mode, draws none (every random block is the first block); checked here
    against transformers' own drawing, at the lengths exported, so a change upstream fails the
    export instead of serving another function.
    """
    if model.config.model_type != "bigbird_pegasus" or model.config.attention_type != "block_sparse":
        return
    attn = base_model(model).encoder.layers[0].self_attn.self
    for length in lengths:
        sparse = length > (5 + 2 * attn.num_random_blocks) * attn.block_size
        if sparse and _bigbird_random_blocks(attn, length).any():
            raise ArtifactError(
                f"this transformers draws BigBird's random key blocks in eval mode (at {length} tokens), "
                "which the exporter does not reproduce; use the transformers version pinned by this profiler."
            )


def _bigbird_random_blocks(attn: Any, length: int) -> np.ndarray:
    """The random key blocks transformers would use at ``length`` (eval mode: deterministic)."""
    if attn.training:
        raise ValueError("put the model in eval mode before exporting")
    block, rand, heads = attn.block_size, attn.num_random_blocks, attn.num_attention_heads
    np.random.seed(attn.seed)
    if length in (1024, 3072, 4096):  # transformers' "old plans used in paper"
        per_head = [
            attn._bigbird_block_rand_mask(
                attn.max_seqlen, attn.max_seqlen, block, block, rand, last_idx=1024
            )[: length // block - 2]
            for _ in range(heads)
        ]
    else:
        plan_from_length, plan_num_rand_blocks = attn._get_rand_attn_plan(length, block, rand)
        per_head = attn._bigbird_block_rand_mask_with_head(
            from_seq_length=length,
            to_seq_length=length,
            from_block_size=block,
            to_block_size=block,
            num_heads=heads,
            plan_from_length=plan_from_length,
            plan_num_rand_blocks=plan_num_rand_blocks,
        )
    return np.stack(per_head, axis=0)


class _DecoderBase(nn.Module):
    """Shared decoder arithmetic: one new token per sequence, explicit caches."""

    final_logits_bias: torch.Tensor

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.decoder = base_model(model).decoder
        self.lm_head = model.lm_head
        # A view of the model's own buffer: both decoder graphs of a TorchScript module share it.
        self.register_buffer("final_logits_bias", model.final_logits_bias[0], persistent=False)
        self.is_led = model.config.model_type == "led"
        self.heads = model.config.decoder_attention_heads

    def embed(self, input_ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        decoder = self.decoder
        hidden = decoder.embed_tokens(input_ids) + decoder.embed_positions.weight.index_select(0, position)
        return decoder.layernorm_embedding(hidden) if self.is_led else hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last position's logits. On a 2-D input with a bias, ``linear`` exports as one Gemm
        that reads the (tied) embedding matrix as it is; ``lm_head`` on the 3-D hidden states would
        export a transposed copy of it, a second copy of the largest weight."""
        if not self.is_led:
            hidden = self.decoder.layernorm_embedding(hidden)
        return nn.functional.linear(hidden[:, -1], self.lm_head.weight, self.final_logits_bias)

    def layer(
        self,
        layer: Any,
        hidden: torch.Tensor,
        self_kv: tuple[torch.Tensor, torch.Tensor],
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        encoder_valid: torch.Tensor,
    ) -> torch.Tensor:
        """One decoder layer for one new position, given the full self-attention keys/values."""

        def self_attention(h: torch.Tensor) -> torch.Tensor:
            query = _split_heads(layer.self_attn.q_proj(h) * layer.self_attn.scaling, self.heads)
            scores = torch.matmul(query, self_kv[0].transpose(-1, -2))
            context = torch.matmul(torch.softmax(scores, dim=-1), self_kv[1])
            return layer.self_attn.out_proj(_merge_heads(context))

        def cross_attention(h: torch.Tensor) -> torch.Tensor:
            attn = layer.encoder_attn
            query = _split_heads(attn.q_proj(h) * attn.scaling, self.heads)
            context = full_attention(query, cross_kv[0], cross_kv[1], encoder_valid)
            return attn.out_proj(_merge_heads(context))

        def feed_forward(h: torch.Tensor) -> torch.Tensor:
            return layer.fc2(layer.activation_fn(layer.fc1(h)))

        if self.is_led:  # post-norm (BART)
            hidden = layer.self_attn_layer_norm(hidden + self_attention(hidden))
            hidden = layer.encoder_attn_layer_norm(hidden + cross_attention(hidden))
            return layer.final_layer_norm(hidden + feed_forward(hidden))
        hidden = hidden + self_attention(layer.self_attn_layer_norm(hidden))  # pre-norm (Pegasus)
        hidden = hidden + cross_attention(layer.encoder_attn_layer_norm(hidden))
        return hidden + feed_forward(layer.final_layer_norm(hidden))

    def project_self(self, layer: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This position's self-attention key and value, from the layer's (normed) input."""
        normed = hidden if self.is_led else layer.self_attn_layer_norm(hidden)
        attn = layer.self_attn
        return _split_heads(attn.k_proj(normed), self.heads), _split_heads(attn.v_proj(normed), self.heads)


class DecoderInitGraph(_DecoderBase):
    """First decoder step: ``(input_ids [b,1], encoder_hidden, encoder_mask) -> logits, caches``.

    Outputs: ``logits [b, vocab]``, then per layer ``self_key, self_value`` (length 1), then per
    layer ``cross_key, cross_value`` (encoder length).
    """

    def forward(
        self, input_ids: torch.Tensor, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        encoder_valid = encoder_mask.bool()
        hidden = self.embed(input_ids, torch.zeros(1, dtype=torch.long))
        self_caches: list[torch.Tensor] = []
        cross_caches: list[torch.Tensor] = []
        for layer in self.decoder.layers:
            attn = layer.encoder_attn
            cross = (
                _split_heads(attn.k_proj(encoder_hidden), self.heads),
                _split_heads(attn.v_proj(encoder_hidden), self.heads),
            )
            self_kv = self.project_self(layer, hidden)
            hidden = self.layer(layer, hidden, self_kv, cross, encoder_valid)
            self_caches.extend(self_kv)
            cross_caches.extend(cross)
        return (self.logits(hidden), *self_caches, *cross_caches)


class DecoderStepGraph(_DecoderBase):
    """A later step: ``(input_ids [b,1], position [1], encoder_mask, *past, *cross) -> logits, past'``.

    ``past`` is per layer ``self_key, self_value`` of length ``position``; the outputs are the
    logits and the same caches one longer. Cross caches come from :class:`DecoderInitGraph`.
    """

    def forward(
        self,
        input_ids: torch.Tensor,
        position: torch.Tensor,
        encoder_mask: torch.Tensor,
        *caches: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        layers = len(self.decoder.layers)
        past, cross = caches[: 2 * layers], caches[2 * layers :]
        encoder_valid = encoder_mask.bool()
        hidden = self.embed(input_ids, position)
        presents: list[torch.Tensor] = []
        for index, layer in enumerate(self.decoder.layers):
            key, value = self.project_self(layer, hidden)
            self_kv = (
                torch.cat([past[2 * index], key], dim=2),
                torch.cat([past[2 * index + 1], value], dim=2),
            )
            hidden = self.layer(
                layer, hidden, self_kv, (cross[2 * index], cross[2 * index + 1]), encoder_valid
            )
            presents.extend(self_kv)
        return (self.logits(hidden), *presents)
