"""Flag parsing and validation: every mistake a user can make gets a message that says what to do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from profiler.loadgen.config import DEFAULT_LENGTHS, ConfigError, add_arguments, config_from_options


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="locust", exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(list(args))


@pytest.fixture
def tokenizer_dir(tmp_path: Path) -> Path:
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    return tmp_path / "tok"


def test_defaults(tokenizer_dir: Path) -> None:
    config = config_from_options(parse("--tokenizer", str(tokenizer_dir)))
    assert config.input_lengths == DEFAULT_LENGTHS
    assert (config.mode, config.arrival, config.rate, config.max_new_tokens) == (
        "generate",
        "closed",
        None,
        32,
    )
    assert config.stage_name(2048) == "generate@2048"


def test_every_flag_parses(tokenizer_dir: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"id": "a", "pid": "a_0", "input": "text", "output": null}\n')
    config = config_from_options(
        parse(
            *("--input-lengths", "1024, 4096", "--dataset", str(dataset), "--tokenizer", str(tokenizer_dir)),
            *("--records", "3", "--mode", "forward", "--max-new-tokens", "8", "--target-length", "16"),
            *("--arrival", "poisson", "--rate", "2.5", "--stage-seconds", "12", "--results", "r.json"),
            *("--p99-ms", "900", "--max-fail-ratio", "0.01", "--idle-seconds", "5", "--drain-timeout", "30"),
            *("--seed", "9"),
        )
    )
    assert config.input_lengths == (1024, 4096)
    assert (config.mode, config.target_length, config.records) == ("forward", 16, 3)
    assert (config.arrival, config.rate, config.stage_seconds) == ("poisson", 2.5, 12.0)
    assert (config.p99_ms, config.max_fail_ratio, config.idle_seconds) == (900.0, 0.01, 5.0)
    assert (config.results, config.drain_timeout, config.seed) == (Path("r.json"), 30.0, 9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--input-lengths", "1024,abc"), "whole number"),
        (("--input-lengths", "1024,,2048"), "comma-separated"),
        (("--input-lengths", "1024,1024"), "appears twice"),
        (("--input-lengths", "0"), "at least 2"),
        (("--rate", "-1"), "must be > 0"),
        (("--stage-seconds", "0"), "must be > 0"),
        (("--max-fail-ratio", "1.5"), "<= 1"),
        (("--max-new-tokens", "5000"), "<= 1024"),
        (("--idle-seconds", "-2"), ">= 0"),
        (("--records", "x"), "not a whole number"),
        (("--mode", "train"), "invalid choice"),
    ],
)
def test_malformed_values_fail_while_parsing(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(argparse.ArgumentError, match=message):
        parse(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--arrival", "poisson"), "needs --rate"),
        (("--rate", "5"), "add --arrival poisson"),
        (("--dataset", "/no/such/file.jsonl"), "no such file"),
        (("--tokenizer", "/no/such/dir"), "no such directory"),
        ((), "add --tokenizer DIR"),
    ],
)
def test_combinations_that_cannot_run(args: tuple[str, ...], message: str, tokenizer_dir: Path) -> None:
    extra = ("--tokenizer", str(tokenizer_dir)) if args and args[0] in ("--arrival", "--rate") else ()
    with pytest.raises(ConfigError, match=message):
        config_from_options(parse(*args, *extra))


def test_tokenizer_dir_without_tokenizer_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tokenizer files"):
        config_from_options(parse("--tokenizer", str(tmp_path)))


def test_results_must_not_be_a_directory(tokenizer_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        config_from_options(parse("--tokenizer", str(tokenizer_dir), "--results", str(tmp_path)))
