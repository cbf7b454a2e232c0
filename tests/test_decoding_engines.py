"""Every engine decodes as the checkpoint's generation config says, as transformers' ``generate``
does: forced BOS, min_length, no_repeat_ngram_size, repetition penalty and beam search, recorded
in the manifest and ``/v1/info``; a run may override any of them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporters.export import export
from exporters.parity import global_mask
from profiler.artifact import FORMATS
from profiler.checkpoints import load_model
from profiler.cli import app
from profiler.decoding_config import DecodingConfig
from profiler.engines.engine import Job, load_engine

pytestmark = pytest.mark.integration

SETTINGS = {
    "num_beams": 3,
    "length_penalty": 0.8,
    "no_repeat_ngram_size": 2,
    "min_length": 5,
    "repetition_penalty": 1.3,
    "forced_bos_token_id": 7,
    "max_length": 40,
}
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]) -> Path:
    """The tiny LED with a published-style generation config (beam search and its companions)."""
    from transformers import GenerationConfig

    path = Path(shutil.copytree(tiny_checkpoints["led"], tmp_path_factory.mktemp("gen") / "led"))
    generation = GenerationConfig.from_pretrained(path)
    generation.update(**SETTINGS)
    generation.save_pretrained(path)
    return path


def _expected(model: Any, ids: list[int]) -> list[int]:
    """transformers' generate with the checkpoint's own generation config, LED's first token global."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig.from_pretrained(model.name_or_path)
    with torch.inference_mode():
        output = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            global_attention_mask=torch.from_numpy(global_mask(len(ids), 1))[None],
            max_new_tokens=NEW_TOKENS,
        )
    tokens: list[int] = output[0, 1:].tolist()
    eos, pad = model.config.eos_token_id, model.config.pad_token_id
    return tokens[: tokens.index(eos) + 1] if eos in tokens else [t for t in tokens if t != pad]


def test_every_engine_decodes_as_the_generation_config_says(checkpoint: Path, tmp_path: Path) -> None:
    model = load_model(checkpoint).model
    model.name_or_path = str(checkpoint)
    rng = np.random.default_rng(3)
    rows = [[int(t) for t in rng.integers(3, model.config.vocab_size, size=n)] for n in (300, 1000)]
    expected = [_expected(model, ids) for ids in rows]
    assert all(ids[0] == SETTINGS["forced_bos_token_id"] for ids in expected)
    engines = {"eager": load_engine(checkpoint)}
    for fmt in FORMATS:
        manifest = export(checkpoint, fmt, tmp_path / fmt, lengths=[1024], new_tokens=8)
        assert manifest.decoding == DecodingConfig.model_validate(SETTINGS)
        engines[fmt] = load_engine(tmp_path / fmt)
    for kind, engine in engines.items():
        assert engine.decoding.num_beams == 3
        jobs = [Job(ids, max_new_tokens=NEW_TOKENS, global_tokens=1) for ids in rows]
        assert [engine.run([job])[0].output_ids for job in jobs] == expected, kind
        assert [outcome.output_ids for outcome in engine.run(jobs)] == expected, kind


def test_a_run_overrides_the_generation_config(checkpoint: Path) -> None:
    greedy = load_engine(checkpoint, decoding_overrides={"num_beams": 1, "forced_bos_token_id": None})
    assert (greedy.decoding.num_beams, greedy.decoding.forced_bos_token_id) == (1, None)
    assert greedy.decoding.no_repeat_ngram_size == 2  # the rest stays the checkpoint's
    result = CliRunner().invoke(app, ["serve", str(checkpoint), "--decoding", "num_beams=0"])
    assert result.exit_code == 2
    assert "num_beams" in result.output
    assert "Traceback" not in result.output
