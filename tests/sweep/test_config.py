from __future__ import annotations

from pathlib import Path

import pytest

from profiler.sweep.config import ConfigError, load_config, parse_config
from profiler.sweep.runner import new_run_dir


def _config(checkpoint: Path, **overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "run_id": "r1",
        "output_dir": "reports",
        "models": [{"name": "led", "checkpoint": str(checkpoint), "formats": ["eager", "onnx"]}],
        "load": {"input_lengths": [1024, 2048], "concurrency": [1, 4], "stage_seconds": 2},
    }
    raw.update(overrides)
    return raw


def test_a_valid_config(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    config = parse_config(_config(tiny_checkpoints["led"]), tmp_path)
    assert config.models[0].formats == ("eager", "onnx")
    assert config.load.levels() == [("closed", 1.0), ("closed", 4.0)]
    assert config.output_dir == (tmp_path / "reports").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"colour": "red"},
            "config: unknown key(s) colour; allowed: load, locust, models, output_dir, run_id, server",
        ),
        ({"models": []}, "add at least one [[models]]"),
        ({"load": {"concurrency": [1]}}, "load.input_lengths: missing"),
        (
            {"load": {"input_lengths": [1024], "concurrency": [0]}},
            "load.concurrency = [0]: expected a non-empty list",
        ),
        ({"load": {"input_lengths": [1024]}}, "give concurrency"),
        (
            {"load": {"input_lengths": [1024], "concurrency": [1], "mode": "train"}},
            "allowed values are generate",
        ),
        ({"load": {"input_lengths": ["long"], "concurrency": [1]}}, "load.input_lengths"),
        ({"load": {"input_lengths": [1024], "rates": [-1.0]}}, "load.rates"),
        ({"locust": {"processes": 2, "expect_workers": 2}}, "not both"),
        ({"server": {"max_batch": 4}}, "server: unknown key(s) max_batch"),
        ({"run_id": "a/b"}, "run_id"),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(
    change: dict[str, object], message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(_config(tiny_checkpoints["led"], **change), tmp_path)
    assert message in str(info.value)


def test_bad_model_entries(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    with pytest.raises(
        ConfigError, match=r"models\[0\].formats = \['tflite'\]: allowed values are eager, onnx"
    ):
        parse_config(
            _config(
                tiny_checkpoints["led"],
                models=[{"name": "m", "checkpoint": str(tiny_checkpoints["led"]), "formats": ["tflite"]}],
            ),
            tmp_path,
        )
    with pytest.raises(ConfigError, match="not a checkpoint or artifact directory"):
        parse_config(
            _config(tmp_path, models=[{"name": "m", "checkpoint": str(tmp_path / "nope")}]), tmp_path
        )


def test_config_files_and_run_directories(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("run_id = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'run_id = "r1"\n[[models]]\nname = "led"\ncheckpoint = "{tiny_checkpoints["led"]}"\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\n"
    )
    config = load_config(path)
    run_dir = new_run_dir(config, path)
    assert (run_dir / "config.toml").read_text() == path.read_text()
    with pytest.raises(ConfigError, match="already holds a run; resume it with --resume"):
        new_run_dir(config, path)
