"""The checkpoint's generation settings that change tokens, as one document: read from its
``generation_config.json`` (or ``config.json``), overridable per run, written into the artifact's
manifest and answered by ``/v1/info``, so every figure says which decoding produced it.

Published LED and BigBird-Pegasus checkpoints ship beam search, n-gram blocking, minimum lengths
and forced start/end tokens; :mod:`profiler.engines.decoding` runs them as transformers does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError

from profiler.documents import Document
from profiler.errors import ConfigError
from profiler.validation import pydantic_problems

if TYPE_CHECKING:
    from transformers import GenerationConfig

#: New tokens when neither ``max_length`` nor ``max_new_tokens`` is set: transformers' default.
DEFAULT_NEW_TOKENS = 20
#: GenerationConfig settings that change tokens and that :func:`decode` does not run; refused when
#: not at transformers' default, rather than silently ignored.
UNSUPPORTED = (
    "encoder_repetition_penalty",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "remove_invalid_values",
    "guidance_scale",
    "watermarking_config",
    "num_return_sequences",
    "stop_strings",
    "max_time",
)


class DecodingError(ConfigError):
    """A generation config this profiler cannot reproduce; the message names the setting."""


class DecodingConfig(Document):
    """The generation settings that change tokens, named as in transformers' GenerationConfig.

    Special token ids other than the forced ones come from
    :class:`~profiler.artifact.DecoderSpec`. The defaults are transformers' own: plain greedy.
    """

    #: Longest output, decoder start token included (transformers counts it); None: unset, then
    #: :data:`DEFAULT_NEW_TOKENS` new tokens.
    max_length: int | None = Field(default=None, ge=1)
    #: Takes precedence over ``max_length`` when set.
    max_new_tokens: int | None = Field(default=None, ge=0)
    #: ``eos`` is blocked while the output, start token included, is shorter.
    min_length: int = Field(default=0, ge=0)
    #: Takes precedence over ``min_length`` when set.
    min_new_tokens: int | None = Field(default=None, ge=0)
    forced_bos_token_id: int | None = None
    #: Forced as the last token allowed by the length limit.
    forced_eos_token_id: int | None = None
    no_repeat_ngram_size: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, gt=0)
    num_beams: int = Field(default=1, ge=1)
    length_penalty: float = 1.0
    early_stopping: bool | Literal["never"] = False

    @property
    def default_max_new_tokens(self) -> int:
        """The new-token limit ``generate()`` uses when a call gives none."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        if self.max_length is None:
            return DEFAULT_NEW_TOKENS
        return self.max_length - 1

    @property
    def min_total_length(self) -> int:
        """The length (start token included) below which ``eos`` is blocked."""
        return self.min_length if self.min_new_tokens is None else self.min_new_tokens + 1

    def override(self, changes: Mapping[str, object]) -> DecodingConfig:
        """This config with ``changes`` (field name -> value), validated as a new document.

        Raises:
            DecodingError: an unknown field or a value it does not take.
        """
        try:
            return DecodingConfig.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise DecodingError(f"decoding override: {pydantic_problems(exc)}.") from exc

    @classmethod
    def from_generation_config(
        cls, generation: GenerationConfig, overrides: Mapping[str, object] | None = None
    ) -> DecodingConfig:
        """The settings of a transformers GenerationConfig, with ``overrides`` applied to it first
        (so that an unsupported setting such as ``do_sample`` can be switched off per run).

        Raises:
            DecodingError: a decoding mode other than greedy or beam search, a setting from
                :data:`UNSUPPORTED`, or an override that is not a GenerationConfig attribute.
        """
        from transformers import GenerationConfig

        generation = GenerationConfig.from_dict(generation.to_dict())
        unknown = generation.update(**dict(overrides or {}))
        if unknown:
            raise DecodingError(
                f"decoding override: no generation setting named {', '.join(sorted(unknown))}."
            )
        mode = str(generation.get_generation_mode().value)
        if mode not in ("greedy_search", "beam_search"):
            raise DecodingError(
                f"the generation config asks for {mode}; this profiler runs greedy and beam search only. "
                "Override it per run (e.g. do_sample=false, num_beam_groups=1, penalty_alpha=null)."
            )
        defaults = GenerationConfig()
        refused = [name for name in UNSUPPORTED if getattr(generation, name) != getattr(defaults, name)]
        eos = _ids(generation.eos_token_id)
        if len(eos) > 1:
            refused.append("eos_token_id (more than one)")
        forced_eos = _ids(generation.forced_eos_token_id)
        if len(forced_eos) > 1:
            refused.append("forced_eos_token_id (more than one)")
        if refused:
            raise DecodingError(
                f"the generation config sets {', '.join(refused)}, which this profiler does not run; "
                "override each back to its default per run, or remove it from generation_config.json."
            )

        def given(name: str, default: Any) -> Any:
            value = getattr(generation, name)
            return default if value is None else value

        fields = {
            # Unset: None in transformers 5.x. 4.57's default is 20, and its generate() reads a
            # max_length of 20, even one set explicitly, as unset.
            "max_length": None if generation.max_length == defaults.max_length else generation.max_length,
            "max_new_tokens": generation.max_new_tokens,
            "min_length": given("min_length", 0),
            "min_new_tokens": generation.min_new_tokens,
            "forced_bos_token_id": generation.forced_bos_token_id,
            "forced_eos_token_id": forced_eos[0] if forced_eos else None,
            "no_repeat_ngram_size": given("no_repeat_ngram_size", 0),
            "repetition_penalty": given("repetition_penalty", 1.0),
            "num_beams": given("num_beams", 1),
            "length_penalty": given("length_penalty", 1.0),
            "early_stopping": given("early_stopping", False),
        }
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise DecodingError(f"unusable generation config: {pydantic_problems(exc)}.") from exc

    @classmethod
    def from_checkpoint(
        cls, directory: Path, overrides: Mapping[str, object] | None = None
    ) -> DecodingConfig:
        """A checkpoint's ``generation_config.json``, or without one the generation settings of its
        ``config.json``, as ``from_pretrained`` falls back.

        Raises:
            DecodingError: see :meth:`from_generation_config`; or neither file is readable.
        """
        from transformers import GenerationConfig

        try:
            if (directory / "generation_config.json").is_file():
                generation = GenerationConfig.from_pretrained(directory, local_files_only=True)
            else:
                # config.json read as the model's from_pretrained reads it when there is no
                # generation_config.json (transformers 5.x's AutoConfig drops generation settings).
                generation = GenerationConfig.from_pretrained(
                    directory, "config.json", local_files_only=True, _from_model_config=True
                )
        except (OSError, ValueError) as exc:
            raise DecodingError(f"{directory}: unreadable generation settings ({exc}).") from exc
        try:
            return cls.from_generation_config(generation, overrides)
        except DecodingError as exc:
            raise DecodingError(f"{directory}: {exc}") from exc


def _ids(value: int | list[int] | None) -> list[int]:
    """A token id setting that transformers allows as one id or a list, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def parse_overrides(items: Iterable[str]) -> dict[str, object]:
    """``["num_beams=1", "early_stopping=never"]`` -> settings; values are JSON where they parse
    (numbers, ``true``, ``null``), else strings, so a command line needs no quoting.

    Raises:
        DecodingError: an item without ``=``.
    """
    changes: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise DecodingError(f"decoding override {item!r}: expected NAME=VALUE, e.g. num_beams=1.")
        try:
            changes[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            changes[name.strip()] = text
    return changes
