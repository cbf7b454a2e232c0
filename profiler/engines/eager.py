"""Eager PyTorch behind the same three calls as exported graphs: the baseline engine."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, cast

import numpy as np

from profiler.artifact import DecoderSpec
from profiler.attention_layout import GLOBAL_ATTENTION_MASK
from profiler.checkpoints import load_model
from profiler.engines.graphs import torch_device
from profiler.modelinfo import encoder_layout


class EagerGraphs:
    """A transformers checkpoint run as it is, with its own KV cache, through the shared loop."""

    def __init__(
        self,
        directory: Path,
        buckets: list[int],
        decoder: DecoderSpec,
        device: str = "cpu",
        allow_new_weights: bool = False,
    ) -> None:
        import torch

        self.torch = torch
        self.device = torch_device(device)
        self.device_type = self.device.type
        self.providers: list[str] = []
        loaded = load_model(directory, allow_new_weights)
        #: Parameters not from the weights file (random or unused), allowed and recorded.
        self.new_weights = loaded.new_weights
        # Any: transformers' annotations of .to() and of submodules do not type-check.
        self.model = cast(Any, loaded.model)
        self.model.to(self.device)
        self.encoder = self.model.get_encoder()
        self.buckets = buckets
        self.decoder = decoder
        self.layout = encoder_layout(self.model.config)
        self.cache_keyword = cache_keyword(self.model)

    def _tensor(self, array: np.ndarray) -> Any:
        return self.torch.from_numpy(array).to(self.device)

    def encode(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, extra: dict[str, np.ndarray]
    ) -> np.ndarray:
        """transformers' encoder on the batch cut to its longest row: transformers pads it (and
        picks BigBird's pattern) itself, as for any user's batch; its output is padded back."""
        width = input_ids.shape[1]
        longest = int(attention_mask.sum(axis=1).max())
        inputs = {
            "input_ids": self._tensor(input_ids[:, :longest]),
            "attention_mask": self._tensor(attention_mask[:, :longest]),
        }
        if GLOBAL_ATTENTION_MASK in extra:
            inputs["global_attention_mask"] = self._tensor(extra[GLOBAL_ATTENTION_MASK][:, :longest])
        with self.torch.inference_mode():
            hidden = self.encoder(**inputs).last_hidden_state
        return np.pad(hidden.cpu().numpy(), ((0, 0), (0, width - longest), (0, 0)))

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Any, Any]:
        hidden = self._tensor(encoder_hidden)
        logits, past = self._forward(input_ids, hidden, attention_mask, None)
        return logits, past, hidden

    def decoder_step(
        self, input_ids: np.ndarray, position: int, attention_mask: np.ndarray, past: Any, cross: Any
    ) -> tuple[np.ndarray, Any]:
        return self._forward(input_ids, cross, attention_mask, past)

    def _forward(
        self, input_ids: np.ndarray, hidden: Any, attention_mask: np.ndarray, past: Any
    ) -> tuple[np.ndarray, Any]:
        with self.torch.inference_mode():
            output = self.model(
                encoder_outputs=(hidden,),
                attention_mask=self._tensor(attention_mask),
                decoder_input_ids=self._tensor(input_ids),
                use_cache=True,
                **{self.cache_keyword: past},
            )
        return output.logits[:, -1].float().cpu().numpy(), output[self.cache_keyword]


def cache_keyword(model: Any) -> str:
    """The name the model's ``forward`` takes, and its output returns, the KV cache by.

    transformers 5.x renamed ``past_key_values`` to ``cache`` (the old keyword is deprecated); 4.57,
    which the ``[optimum]`` extra installs, knows only ``past_key_values``.
    """
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
