"""The one parser of comma-separated number options: what it accepts, and one line for each mistake."""

from __future__ import annotations

import argparse
from functools import partial

import pytest

from profiler.errors import ConfigError
from profiler.validation import NumberListError, parse_numbers


def test_whole_numbers() -> None:
    assert parse_numbers("1024, 2048,4096", int) == (1024, 2048, 4096)
    assert parse_numbers("-3,0", int) == (-3, 0)


def test_numbers() -> None:
    assert parse_numbers("10,2.5, 1e2", float) == (10.0, 2.5, 100.0)


@pytest.mark.parametrize(
    ("text", "kind", "positive", "message"),
    [
        ("1024,10x24", int, False, '--lengths: "10x24" is not a whole number'),
        ("1024,2.5", int, False, '--lengths: "2.5" is not a whole number'),
        ("1024,0", int, True, '--lengths: "0" is not a positive whole number'),
        ("-1", int, True, '--lengths: "-1" is not a positive whole number'),
        ("10,fast", float, False, '--lengths: "fast" is not a number'),
        ("nan", float, False, '--lengths: "nan" is not a number'),
        ("inf", float, True, '--lengths: "inf" is not a positive number'),
        ("0.0", float, True, '--lengths: "0.0" is not a positive number'),
        (
            "1024,,2048",
            int,
            False,
            '--lengths: "1024,,2048" has an empty item; expected comma-separated whole numbers',
        ),
        ("1024,", int, False, '--lengths: "1024," has an empty item; expected comma-separated whole numbers'),
        (" ", float, True, "--lengths: no numbers given; expected comma-separated positive numbers"),
    ],
)
def test_each_mistake_is_one_line_naming_the_bad_part(
    text: str, kind: type[int] | type[float], positive: bool, message: str
) -> None:
    with pytest.raises(NumberListError) as caught:
        parse_numbers(text, kind, positive=positive, option="--lengths")
    assert str(caught.value) == message
    assert isinstance(caught.value, ConfigError)  # the CLI prints it as one line and exits 2


def test_argparse_names_the_flag_once() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--rates", type=partial(parse_numbers, kind=float, positive=True))
    assert parser.parse_args(["--rates", "10,40.5"]).rates == (10.0, 40.5)
    with pytest.raises(argparse.ArgumentError) as caught:
        parser.parse_args(["--rates", "10,x"])
    assert str(caught.value) == 'argument --rates: "x" is not a positive number'
