"""Config mistakes through the real CLI: one ``error:`` line and exit 2, before anything runs.

Also the one decode-length rule that the server's request schema and the sweep's check share.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from profiler.cli import app
from profiler.errors import ConfigError
from profiler.modelinfo import MAX_DECODE_TOKENS, decode_limit
from profiler.server.schemas import request_model
from profiler.server.settings import ServeSettings


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], prog_name="profiler")


def error_line(result: Result) -> str:
    """The single line a user error prints (exit 2, no traceback), without its ``error:`` tag."""
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ('"lots"', 'load.max_new_tokens = "lots": expected an integer.'),
        ("true", "load.max_new_tokens = true: expected an integer."),
        ("5000", "load.max_new_tokens = 5000: models[0] (led-small) decodes at most 1023 tokens; lower it."),
    ],
)
def test_sweep_refuses_a_bad_max_new_tokens(
    value: str, line: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """Once a ValueError traceback, ``true`` taken as 1, and 5000 accepted past the decoder's 1023."""
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'[[models]]\nname = "led-small"\ncheckpoint = "{tiny_checkpoints["led"]}"\nformats = ["eager"]\n'
        f"[load]\ninput_lengths = [1024]\nconcurrency = [1]\nmax_new_tokens = {value}\n"
    )
    assert error_line(invoke("sweep", config)) == line
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--max-batch-size", "0", "--max-batch-size = 0: expected a value >= 1."),
        ("--max-wait-ms", "-1", "--max-wait-ms = -1.0: expected a value >= 0."),
        ("--max-queue", "0", "--max-queue = 0: expected a value >= 1."),
    ],
)
def test_serve_refuses_bad_settings_before_loading(
    option: str, value: str, line: str, tmp_path: Path
) -> None:
    """The model directory does not exist: the settings are refused before it is looked at."""
    assert error_line(invoke("serve", tmp_path / "no-model", option, value)) == line


def test_serve_settings_are_strict() -> None:
    assert ServeSettings().max_batch_size == 8
    for bad in ({"max_batch_size": True}, {"max_queue": "5"}, {"max_body_bytes": 0}, {"batch": 4}):
        with pytest.raises(ValidationError):
            ServeSettings.model_validate(bad)


def test_one_decode_limit_for_the_server_and_the_sweep(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """The decoder's positions less the start token, read from config.json or manifest.json."""
    assert decode_limit(tiny_checkpoints["led"]) == 1023  # max_decoder_position_embeddings 1024
    assert decode_limit(tiny_checkpoints["bigbird-pegasus"]) == 4095  # max_position_embeddings 4096
    schema = request_model(1024).model_json_schema()["properties"]
    assert schema["max_new_tokens"]["maximum"] == schema["target_length"]["maximum"] == 1023
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    decoder = {"layers": 1, "heads": 2, "head_dim": 16, "vocab_size": 9, "decoder_start_token_id": 2}
    decoder |= {"eos_token_id": 2, "pad_token_id": 1, "max_target_positions": 512}
    (artifact / "manifest.json").write_text(json.dumps({"decoder": decoder}))
    assert decode_limit(artifact) == 511
    (artifact / "manifest.json").write_text(
        json.dumps({"decoder": decoder | {"max_target_positions": "512"}})
    )
    with pytest.raises(
        ConfigError, match=r"unreadable decoder \(max_target_positions: input should be a valid integer\)"
    ):
        decode_limit(artifact)
    (artifact / "manifest.json").write_text("{")
    with pytest.raises(ConfigError, match=r"manifest\.json: unreadable"):
        decode_limit(artifact)
    assert decode_limit(tmp_path) == MAX_DECODE_TOKENS  # no model files: the bound for an unknown model
