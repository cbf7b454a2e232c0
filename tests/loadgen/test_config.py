"""Flag parsing and validation: every mistake a user can make gets a message that says what to do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from profiler.errors import ConfigError
from profiler.loadgen.config import COMMAND_LINE_ONLY, add_arguments, config_from_options, options_from_form
from profiler.loadgen.prepare import prepare
from profiler.modelinfo import DEFAULT_LENGTHS
from profiler.server.launch import free_port


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
        (("--input-lengths", "1024,abc"), '"abc" is not a whole number'),
        (("--input-lengths", "1024,,2048"), '"1024,,2048" has an empty item'),
        (("--records", "x"), "invalid int value: 'x'"),
        (("--rate", "fast"), "invalid float value: 'fast'"),
        (("--mode", "train"), "invalid choice"),
    ],
)
def test_malformed_values_fail_while_parsing(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(argparse.ArgumentError, match=message):
        parse(*args)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("--input-lengths", "1024,1024"),
            "--input-lengths = [1024, 1024]: a length appears twice; each stage needs its own.",
        ),
        (("--input-lengths", "0"), "--input-lengths = 0: expected a value >= 2."),
        (("--arrival", "poisson", "--rate", "-1"), "--rate = -1.0: expected a value > 0."),
        (("--stage-seconds", "0"), "--stage-seconds = 0.0: expected a value > 0."),
        (("--max-fail-ratio", "1.5"), "--max-fail-ratio = 1.5: expected a value <= 1."),
        (("--idle-seconds", "-2"), "--idle-seconds = -2.0: expected a value >= 0."),
        (("--idle-seconds", "601"), "--idle-seconds = 601.0: expected a value <= 600."),
        (("--records", "0"), "--records = 0: expected a value >= 1."),
        (("--max-new-tokens", "0"), "--max-new-tokens = 0: expected a value >= 1."),
    ],
)
def test_values_out_of_range_are_one_line_each(args: tuple[str, ...], line: str, tokenizer_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_options(parse("--tokenizer", str(tokenizer_dir), *args))
    assert str(info.value) == line


def test_the_config_is_strict(tokenizer_dir: Path) -> None:
    """Options set by code rather than argparse (a locust config, a plugin) are checked as strictly."""
    options = parse("--tokenizer", str(tokenizer_dir))
    options.max_new_tokens, options.seed = True, "7"
    with pytest.raises(ConfigError) as info:
        config_from_options(options)
    assert str(info.value).splitlines() == [
        "--max-new-tokens = true: expected an integer.",
        '--seed = "7": expected an integer.',
    ]


@pytest.mark.parametrize(
    ("flag", "field"), [("--max-new-tokens", "max_new_tokens"), ("--target-length", "target_length")]
)
def test_decode_lengths_over_the_served_models_bound(
    flag: str, field: str, tiny_checkpoints: dict[str, Path], tokenizer_dir: Path
) -> None:
    """--tokenizer names the served model: its decoder's bound (LED's 1024 positions: 1023) holds."""
    model = tiny_checkpoints["led"]
    config = config_from_options(parse("--tokenizer", str(model), flag, "1023"))
    assert getattr(config, field) == 1023
    with pytest.raises(ConfigError) as info:
        config_from_options(parse("--tokenizer", str(model), flag, "5000"))
    assert str(info.value) == f"{flag} = 5000: the model in {model} decodes at most 1023 tokens; lower it."
    with pytest.raises(
        ConfigError, match=f"{flag} = 1025: the model in {tokenizer_dir} decodes at most 1024"
    ):
        config_from_options(parse("--tokenizer", str(tokenizer_dir), flag, "1025"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--arrival", "poisson"), "needs --rate"),
        (("--stream", "--mode", "encode"), "--stream applies to generate mode only"),
        (("--rate", "5"), "add --arrival poisson"),
        (("--dataset", "/no/such/file.jsonl"), "no such file"),
        (("--tokenizer", "/no/such/dir"), "no such directory"),
    ],
)
def test_combinations_that_cannot_run(args: tuple[str, ...], message: str, tokenizer_dir: Path) -> None:
    extra = (
        ("--tokenizer", str(tokenizer_dir)) if args and args[0] in ("--arrival", "--rate", "--stream") else ()
    )
    with pytest.raises(ConfigError, match=message):
        config_from_options(parse(*args, *extra))


def test_tokenizer_dir_without_tokenizer_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tokenizer files"):
        config_from_options(parse("--tokenizer", str(tmp_path)))


def test_results_must_not_be_a_directory(tokenizer_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        config_from_options(parse("--tokenizer", str(tokenizer_dir), "--results", str(tmp_path)))


def test_a_status_file_must_be_a_file_in_a_directory_that_exists(tokenizer_dir: Path, tmp_path: Path) -> None:
    tokenizer = ("--tokenizer", str(tokenizer_dir))
    with pytest.raises(ConfigError, match=r"^--status-file .* is a directory; give a file name"):
        config_from_options(parse(*tokenizer, "--status-file", str(tmp_path)))
    with pytest.raises(ConfigError, match=r"^--status-file .*: no directory .*missing; create it"):
        config_from_options(parse(*tokenizer, "--status-file", str(tmp_path / "missing" / "s.json")))
    config = config_from_options(parse(*tokenizer, "--status-file", str(tmp_path / "s.json")))
    assert config.status_file == tmp_path / "s.json"


def test_without_tokenizer_or_dataset_the_servers_tokenizer_is_used() -> None:
    assert config_from_options(parse()).tokenizer_from_server
    assert not config_from_options(parse("--dataset", "profiler/data/sample.jsonl")).tokenizer_from_server


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (None, "no --host: synthetic inputs are cut with the served model's tokenizer"),
        (
            "http://127.0.0.1:{port}",
            "--host http://127.0.0.1:{port}: could not fetch the served model's tokenizer",
        ),
    ],
)
def test_the_servers_tokenizer_needs_a_server(host: str | None, message: str) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConfigError) as info:
        prepare(parse(), host.format(port=port) if host else None)
    assert str(info.value).startswith(message.format(port=port))
    assert "\n" not in str(info.value)


def test_the_web_uis_form_is_read_by_each_flags_own_parser(tokenizer_dir: Path) -> None:
    """Text as locust's form posts it (names through its camel-case round trip: p99_ms -> p_99_ms)."""
    options = parse("--tokenizer", str(tokenizer_dir), "--rate", "3", "--arrival", "poisson")
    form = {
        "input_lengths": "1024, 2048",
        "stage_seconds": "12",
        "p_99_ms": "900",
        "stream": "true",
        "rate": "",
        "arrival": "closed",
        "user_count": "4",  # locust's own: left to locust
    }
    config = config_from_options(options_from_form(options, form))
    assert config.input_lengths == (1024, 2048)
    assert (config.stage_seconds, config.p99_ms, config.stream) == (12.0, 900.0, True)
    assert (config.arrival, config.rate, config.tokenizer) == ("closed", None, tokenizer_dir)
    assert not options_from_form(options, {"stream": "false"}).stream


def test_bad_values_in_the_web_uis_form_are_one_line_each(tokenizer_dir: Path) -> None:
    form = {"input_lengths": "1024,x", "records": "many", "stage_seconds": "soon", "mode": "train"}
    with pytest.raises(ConfigError) as info:
        options_from_form(parse("--tokenizer", str(tokenizer_dir)), form)
    assert str(info.value).splitlines() == [
        '--input-lengths = "1024,x": "x" is not a whole number',
        '--records = "many": expected a whole number',
        '--mode = "train": expected one of generate, forward, encode',
        '--stage-seconds = "soon": expected a number',
    ]


def test_flags_marked_for_the_web_ui_have_their_defaults_in_the_help() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    shown = [action for action in parser._actions if getattr(action, "include_in_web_ui", False)]
    assert {action.dest for action in shown} >= {"input_lengths", "stage_seconds", "p99_ms", "tokenizer"}
    assert not {action.dest for action in shown} & COMMAND_LINE_ONLY
    assert all("%(" not in (action.help or "") for action in shown)
    assert "(default 30)" in next(action.help or "" for action in shown if action.dest == "stage_seconds")
