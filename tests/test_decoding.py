"""The generation config honoured as transformers' ``generate`` honours it, token for token.

Each case writes a ``generation_config.json`` into a copy of a tiny checkpoint, then compares
``model.generate()`` (which reads that file) with :func:`decode` driven through the eager runner
on the same batch of two rows, the second padded. BigBird-Pegasus runs full attention at 64 tokens
and block-sparse at 200.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    GenerationConfig,
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)
from transformers.cache_utils import EncoderDecoderCache

from profiler.artifact import DecoderSpec
from profiler.decoding_config import DecodingConfig, DecodingError, parse_overrides
from profiler.engines.decoding import decode, process_scores
from profiler.engines.eager import EagerGraphs
from profiler.modelinfo import decoder_spec

#: (arch, input tokens): LED's sliding window, BigBird-Pegasus full and block-sparse.
INPUTS = [("led", 64), ("bigbird-pegasus", 64), ("bigbird-pegasus", 200)]
#: Added to the eos logit, per model type, where a case needs eos to compete (min_length, beams
#: ending early): tuned on the tiny checkpoints so that plain decoding ends rows within a few tokens.
EOS_BIAS = {"led": 7.0, "bigbird_pegasus": 5.0}
#: Stands for the model's own eos id in a case's settings.
EOS = "eos"

CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "forced_bos": ({"forced_bos_token_id": 5}, False),
    "forced_eos": ({"forced_eos_token_id": EOS, "max_length": 12}, False),
    "min_length": ({"min_length": 8}, True),
    "min_new_tokens": ({"min_new_tokens": 4, "max_new_tokens": 10}, True),
    "no_repeat_ngram": ({"no_repeat_ngram_size": 2}, False),
    "repetition_penalty": ({"repetition_penalty": 1.5}, False),
    "the_study": ({"no_repeat_ngram_size": 2, "min_length": 3}, False),
    "beams": ({"num_beams": 4, "max_length": 30}, True),
    "beams_led_published": (
        {"num_beams": 4, "length_penalty": 2.0, "early_stopping": True, "no_repeat_ngram_size": 3,
         "min_length": 5, "max_length": 30},
        True,
    ),
    "beams_pegasus_published": (
        {"num_beams": 5, "length_penalty": 0.8, "max_length": 30, "forced_eos_token_id": EOS},
        True,
    ),
    "beams_never": (
        {"num_beams": 3, "early_stopping": "never", "length_penalty": 1.5, "max_length": 25},
        True,
    ),
    "beams_penalised": ({"num_beams": 2, "repetition_penalty": 1.3, "max_new_tokens": 16}, True),
}  # fmt: skip


def with_generation_config(source: Path, directory: Path, settings: dict[str, Any]) -> Path:
    """A copy of the checkpoint ``source`` whose generation_config.json adds ``settings``."""
    shutil.copytree(source, directory)
    generation = GenerationConfig.from_pretrained(directory)
    eos = generation.eos_token_id
    generation.update(**{name: eos if value == EOS else value for name, value in settings.items()})
    generation.save_pretrained(directory)
    return directory


def load(directory: Path, eos_bias: bool = False) -> EagerGraphs:
    """The eager runner on ``directory``, with :data:`EOS_BIAS` if ``eos_bias``; its model is the
    reference too, so both see the bias."""
    config = AutoConfig.from_pretrained(directory)
    graphs = EagerGraphs(directory, [1024], decoder_spec(config))
    with torch.no_grad():
        graphs.model.final_logits_bias[0, config.eos_token_id] += (
            EOS_BIAS[config.model_type] if eos_bias else 0
        )
    return graphs


def batch(spec: DecoderSpec, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rows of seeded ids; the second a quarter padding."""
    input_ids = np.random.default_rng(length).integers(3, spec.vocab_size, size=(2, length), dtype=np.int64)
    mask = np.ones_like(input_ids)
    mask[1, length - length // 4 :] = 0
    input_ids[mask == 0] = spec.pad_token_id
    return input_ids, mask


def reference(graphs: EagerGraphs, input_ids: np.ndarray, mask: np.ndarray, **kwargs: Any) -> np.ndarray:
    """transformers' ``generate``, the model's generation config (read from its directory) applied.

    transformers fills ended beams with ``pad_token_id or eos`` (eos where pad is 0, as for
    Pegasus); :func:`decode` pads every ended row with pad, so those fills are read as pad.
    """
    with torch.inference_mode():
        output = graphs.model.generate(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask), **kwargs
        ).numpy()
    eos = graphs.decoder.eos_token_id
    for row in output:
        ended = np.nonzero(row[1:] == eos)[0]
        if ended.size:
            row[ended[0] + 2 :] = graphs.decoder.pad_token_id
    return output  # type: ignore[no-any-return]


def encoded(graphs: EagerGraphs, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The encoder's output as ``generate`` computes it: the whole (padded) batch at once."""
    with torch.inference_mode():
        hidden = graphs.model.get_encoder()(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
    return hidden.numpy()  # type: ignore[no-any-return]


def produced(
    graphs: EagerGraphs, input_ids: np.ndarray, mask: np.ndarray, config: DecodingConfig, limit: Any
) -> np.ndarray:
    return decode(graphs, encoded(graphs, input_ids, mask), mask, config, limit)


@pytest.mark.parametrize(("arch", "length"), INPUTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_decode_matches_generate_with_the_checkpoints_settings(
    arch: str, length: int, case: str, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    settings, needs_eos = CASES[case]
    directory = with_generation_config(tiny_checkpoints[arch], tmp_path / arch, settings)
    graphs = load(directory, eos_bias=needs_eos)
    input_ids, mask = batch(graphs.decoder, length)
    config = DecodingConfig.from_checkpoint(directory)

    expected = reference(graphs, input_ids, mask)
    tokens = produced(graphs, input_ids, mask, config, config.default_max_new_tokens)

    assert tokens.tolist() == expected.tolist()
    plain = produced(graphs, input_ids, mask, DecodingConfig(), config.default_max_new_tokens)
    assert plain.tolist() != tokens.tolist(), "the settings changed nothing here: the case tests nothing"


def test_beam_search_ends_hypotheses_early_as_generate_does(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """Finished beams compete with running ones (length penalty, early-stop heuristic)."""
    settings = {"num_beams": 4, "max_length": 30, "length_penalty": 0.5}
    graphs = load(with_generation_config(tiny_checkpoints["led"], tmp_path / "led", settings), eos_bias=True)
    input_ids, mask = batch(graphs.decoder, 64)
    config = DecodingConfig.from_checkpoint(tmp_path / "led")
    tokens = produced(graphs, input_ids, mask, config, config.default_max_new_tokens)
    assert tokens.tolist() == reference(graphs, input_ids, mask).tolist()
    eos = graphs.decoder.eos_token_id
    assert any(eos in row[1:-1] for row in tokens.tolist()), "no beam ended before the limit"


@pytest.mark.parametrize("num_beams", [1, 3])
def test_per_row_limits_decode_each_row_as_if_alone(
    num_beams: int, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """A batch's rows with their own limits (the server's case); forced eos ends each at its own."""
    settings = {"num_beams": num_beams, "forced_eos_token_id": EOS, "no_repeat_ngram_size": 2}
    directory = with_generation_config(tiny_checkpoints["bigbird-pegasus"], tmp_path / "bbp", settings)
    graphs = load(directory)
    input_ids, mask = batch(graphs.decoder, 200)
    limits = np.array([5, 9])
    tokens = produced(graphs, input_ids, mask, DecodingConfig.from_checkpoint(directory), limits)
    for row, limit in enumerate(limits):
        alone = reference(graphs, input_ids[row : row + 1], mask[row : row + 1], max_new_tokens=int(limit))
        assert tokens[row, : alone.shape[1]].tolist() == alone[0].tolist()
        assert (tokens[row, alone.shape[1] :] == graphs.decoder.pad_token_id).all()
    assert tokens.shape[1] == 1 + limits.max()


class ListCaches:
    """The eager runner with its caches as one numpy array per layer and role, as exported
    runners hold them, so beam search reorders them with ``np.take``."""

    def __init__(self, graphs: EagerGraphs) -> None:
        self.graphs = graphs
        self.decoder = graphs.decoder

    def decoder_init(self, input_ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray) -> Any:
        logits, past, cross = self.graphs.decoder_init(input_ids, hidden, mask)
        return logits, _arrays(past), cross

    def decoder_step(
        self, input_ids: np.ndarray, position: int, mask: np.ndarray, past: Any, cross: Any
    ) -> Any:
        tensors = [torch.from_numpy(array) for array in past]
        # Per layer: self-attention key and value, cross-attention key and value.
        cache = EncoderDecoderCache([tuple(tensors[i : i + 4]) for i in range(0, len(tensors), 4)])
        logits, past = self.graphs.decoder_step(input_ids, position, mask, cache, cross)
        return logits, _arrays(past)


def _arrays(cache: Any) -> list[np.ndarray]:
    """An EncoderDecoderCache as per-layer arrays, in the order its constructor takes them back."""
    layers = zip(cache.self_attention_cache.layers, cache.cross_attention_cache.layers, strict=True)
    return [t.numpy() for own, cross in layers for t in (own.keys, own.values, cross.keys, cross.values)]


def test_beam_search_reorders_per_layer_array_caches(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    settings = {"num_beams": 4, "max_length": 20, "no_repeat_ngram_size": 2}
    directory = with_generation_config(tiny_checkpoints["led"], tmp_path / "led", settings)
    graphs = load(directory, eos_bias=True)
    input_ids, mask = batch(graphs.decoder, 64)
    config = DecodingConfig.from_checkpoint(directory)
    hidden = encoded(graphs, input_ids, mask)
    tokens = decode(ListCaches(graphs), hidden, mask, config, config.default_max_new_tokens)  # type: ignore[arg-type]
    assert tokens.tolist() == reference(graphs, input_ids, mask).tolist()


@pytest.mark.filterwarnings("ignore:Some non-default generation parameters are set in the model config")
@pytest.mark.parametrize("arch", ["led", "bigbird-pegasus"])
def test_without_generation_config_the_model_configs_settings_hold(
    arch: str, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """No generation_config.json: transformers' defaults, or the generation settings an older
    checkpoint kept in config.json (``from_pretrained``'s fallback)."""
    directory = tmp_path / arch
    shutil.copytree(tiny_checkpoints[arch], directory)
    (directory / "generation_config.json").unlink()
    assert DecodingConfig.from_checkpoint(directory) == DecodingConfig()
    assert DecodingConfig().default_max_new_tokens == 20

    # Written as an older transformers wrote it: 5.x refuses to save generation settings in config.json.
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config.update({"no_repeat_ngram_size": 2, "min_length": 3, "num_beams": 2})
    config_path.write_text(json.dumps(config))
    decoding = DecodingConfig.from_checkpoint(directory)
    assert decoding == DecodingConfig(no_repeat_ngram_size=2, min_length=3, num_beams=2)
    graphs = load(directory)
    input_ids, mask = batch(graphs.decoder, 64)
    tokens = produced(graphs, input_ids, mask, decoding, decoding.default_max_new_tokens)
    assert tokens.tolist() == reference(graphs, input_ids, mask).tolist()


def test_settings_are_overridden_per_run(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    settings = {"num_beams": 4, "no_repeat_ngram_size": 3, "max_length": 30}
    directory = with_generation_config(tiny_checkpoints["led"], tmp_path / "led", settings)
    graphs = load(directory)
    input_ids, mask = batch(graphs.decoder, 64)
    changes = parse_overrides(["num_beams=1", "no_repeat_ngram_size=0", "max_new_tokens=12"])
    config = DecodingConfig.from_checkpoint(directory).override(changes)
    assert (config.num_beams, config.no_repeat_ngram_size, config.default_max_new_tokens) == (1, 0, 12)
    expected = reference(graphs, input_ids, mask, **changes)
    tokens = produced(graphs, input_ids, mask, config, config.default_max_new_tokens)
    assert tokens.tolist() == expected.tolist()
    # Overrides given to the loader apply before its checks, so they can switch off what it refuses.
    sampled = with_generation_config(tiny_checkpoints["led"], tmp_path / "sampled", {"do_sample": True})
    with pytest.raises(DecodingError, match="sample"):
        DecodingConfig.from_checkpoint(sampled)
    assert DecodingConfig.from_checkpoint(sampled, {"do_sample": False}) == DecodingConfig()


def test_config_records_and_reads_back() -> None:
    config = DecodingConfig(num_beams=4, length_penalty=2.0, early_stopping="never", forced_eos_token_id=1)
    assert DecodingConfig.model_validate_json(config.model_dump_json()) == config


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"do_sample": True}, "sample"),
        ({"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0}, "group_beam_search"),
        ({"bad_words_ids": [[5]]}, "bad_words_ids"),
        ({"num_beams": 2, "num_return_sequences": 2}, "num_return_sequences"),
        ({"eos_token_id": [1, 2]}, "eos_token_id"),
        ({"suppress_tokens": [5]}, "suppress_tokens"),
    ],
)
def test_settings_it_cannot_reproduce_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(DecodingError, match=named):
        DecodingConfig.from_generation_config(GenerationConfig(**settings))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"num_beam": 2}, "num_beam"),
        ({"num_beams": 0}, "num_beams"),
        ({"early_stopping": "soon"}, "early_stopping"),
    ],
)
def test_bad_overrides_are_refused_by_name(changes: dict[str, object], named: str) -> None:
    with pytest.raises(DecodingError, match=named):
        DecodingConfig().override(changes)
    if named == "num_beam":
        with pytest.raises(DecodingError, match="no generation setting named num_beam"):
            DecodingConfig.from_generation_config(GenerationConfig(), changes)


def test_parse_overrides_reads_json_values_and_bare_words() -> None:
    items = ["num_beams=4", "length_penalty=2.0", "early_stopping=never", "forced_bos_token_id=null"]
    assert parse_overrides(items) == {
        "num_beams": 4,
        "length_penalty": 2.0,
        "early_stopping": "never",
        "forced_bos_token_id": None,
    }
    with pytest.raises(DecodingError, match="NAME=VALUE"):
        parse_overrides(["num_beams"])


@pytest.mark.parametrize("cur_len", [1, 2, 3, 6, 8])
@pytest.mark.parametrize("ngram", [1, 2, 3])
def test_processors_equal_transformers_bit_for_bit(cur_len: int, ngram: int) -> None:
    """Same order, same float32 arithmetic: the scores are equal, not close."""
    rng = np.random.default_rng(cur_len * 10 + ngram)
    vocab, eos, max_length = 40, 2, 9
    sequences = rng.integers(0, 8, size=(6, cur_len))  # few ids: n-grams repeat
    scores = (rng.standard_normal((6, vocab)) * 4).astype(np.float32)
    config = DecodingConfig(
        repetition_penalty=1.3,
        no_repeat_ngram_size=ngram,
        min_length=4,
        min_new_tokens=5,
        forced_bos_token_id=7,
        forced_eos_token_id=eos,
        max_length=max_length,
    )
    processors: Any = LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(1.3),
            NoRepeatNGramLogitsProcessor(ngram),
            MinLengthLogitsProcessor(5 + 1, eos),  # min_new_tokens replaces min_length, as generate does
            MinNewTokensLengthLogitsProcessor(1, 5, eos),
            ForcedBOSTokenLogitsProcessor(7),
            ForcedEOSTokenLogitsProcessor(max_length, eos),
        ]
    )
    expected = processors(torch.from_numpy(sequences), torch.from_numpy(scores.copy())).numpy()
    limits = np.full(6, max_length)
    assert np.array_equal(process_scores(config, sequences, scores, limits, eos), expected)


def test_teacher_forcing_feeds_the_targets_whatever_the_settings(tiny_checkpoints: dict[str, Path]) -> None:
    graphs = load(tiny_checkpoints["led"])
    input_ids, mask = batch(graphs.decoder, 64)
    targets = np.array([[5, 6, 7], [8, 9, 10]])
    config = DecodingConfig(num_beams=4, forced_bos_token_id=3, min_length=10)
    tokens = decode(graphs, encoded(graphs, input_ids, mask), mask, config, 0, forced=targets)
    assert tokens[:, 1:].tolist() == targets.tolist()
