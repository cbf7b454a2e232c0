"""The one style of every config: strict pydantic models whose errors read as one line each.

A sweep's TOML, the load generator's flags and `profiler serve`'s options are all models built
on :class:`Strict`: unknown keys and wrong types are refused (``true`` is not an integer, ``"5"``
is not a number), and :func:`validated` turns pydantic's report into a :class:`ConfigError` with
one line per problem, each naming the key (``load.max_new_tokens``, ``--max-batch-size``) and
what it expects, so the CLI can print it instead of a traceback. A comma-separated list of
numbers given as one option (``--lengths 1024,2048``) is read by :func:`parse_numbers`, the one
parser of such lists, whose errors are one line too.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from profiler.documents import Document
from profiler.errors import ConfigError

T = TypeVar("T")
N = TypeVar("N", int, float)
M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


def _as_tuple(value: Any) -> Any:
    """TOML and argparse give lists; the models keep immutable tuples (strict refuses a list)."""
    return tuple(value) if isinstance(value, list) else value


#: A list in the config, held as a tuple; its items are checked as strictly as any field.
TupleOf = Annotated[tuple[T, ...], BeforeValidator(_as_tuple)]
#: A count of things: at least one.
Count = Annotated[int, Field(ge=1)]


class Strict(Document):
    """Base of every config model: a document (strict, closed, frozen) whose unknown keys are
    reported together."""

    @model_validator(mode="before")
    @classmethod
    def known_keys(cls, data: Any) -> Any:
        """Unknown keys in one message that lists the allowed ones (pydantic names one at a time)."""
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(cls.model_fields))
            if unknown:
                allowed = ", ".join(sorted(cls.model_fields))
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        return data


def toml_key(loc: Loc) -> str:
    """``('models', 0, 'formats')`` -> ``models[0].formats``; the top level is ``config``."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".") or "config"


def flag(loc: Loc) -> str:
    """``('max_new_tokens', ...)`` -> ``--max-new-tokens``; checks across flags name none."""
    return f"--{str(loc[0]).replace('_', '-')}" if loc else ""


_FIXED = {
    "missing": "missing",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "tuple_type": "expected a list",
    "model_type": "expected a table",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _expected(error: ErrorDetails) -> str:
    """What the key expects, in the config's words rather than pydantic's."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "value_error":
        return str(ctx["error"])
    if kind in _BOUNDS:
        return f"expected a value {_BOUNDS[kind]} {next(iter(ctx.values())):g}"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}"
    if kind == "too_short":
        return f"expected at least {ctx['min_length']} item(s)"
    return error["msg"]


def _shown(value: Any) -> str | None:
    """A value as the config would write it (``true``, ``"lots"``); None for a whole table."""
    tables = isinstance(value, dict) or (
        isinstance(value, list | tuple) and any(isinstance(v, dict) for v in value)
    )
    return None if tables else json.dumps(value, default=str, ensure_ascii=False)


def _line(error: ErrorDetails, name: Callable[[Loc], str]) -> str:
    where, expected = name(error["loc"]), _expected(error).rstrip(".")
    value = None if error["type"] == "missing" else _shown(error["input"])
    subject = f"{where} = {value}" if value is not None and where else where
    return f"{subject}: {expected}." if subject else f"{expected}."


def validated(model: type[M], data: Any, name: Callable[[Loc], str], context: Any = None) -> M:
    """``model`` checked from ``data``; ``name`` says how a key is written where the user wrote it.

    Raises:
        ConfigError: one line per problem, e.g. ``load.max_new_tokens = "lots": expected an integer.``
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = [_line(error, name) for error in exc.errors(include_url=False)]
        raise ConfigError("\n".join(lines)) from exc


class NumberListError(ConfigError, argparse.ArgumentTypeError):
    """A malformed number list. A :class:`ConfigError`, so the CLI prints it as one line; an
    ``ArgumentTypeError``, so argparse, given :func:`parse_numbers` as a ``type=``, prints it
    after the flag's name instead of its own ``invalid value``."""


def parse_numbers(text: str, kind: type[N], *, positive: bool = False, option: str = "") -> tuple[N, ...]:
    """``"1024, 2048"`` -> ``(1024, 2048)``: whole numbers for ``kind=int``, finite ones for ``float``.

    ``positive`` also refuses 0 and below. ``option`` (e.g. ``--lengths``) starts the message;
    leave it out under argparse, which names the flag itself.

    Raises:
        NumberListError: one line naming the bad part, e.g. ``--lengths: "10x24" is not a whole number``.
    """
    prefix = f"{option}: " if option else ""
    noun = ("positive " if positive else "") + ("whole number" if kind is int else "number")
    if not text.strip():
        raise NumberListError(f"{prefix}no numbers given; expected comma-separated {noun}s")
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        shown = json.dumps(text, ensure_ascii=False)
        raise NumberListError(f"{prefix}{shown} has an empty item; expected comma-separated {noun}s")
    numbers = []
    for part in parts:
        try:
            number = kind(part)
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or (positive and number <= 0):
            raise NumberListError(f"{prefix}{json.dumps(part, ensure_ascii=False)} is not a {noun}")
        numbers.append(number)
    return tuple(numbers)


def pydantic_problems(exc: ValidationError) -> str:
    """pydantic's findings on one line, each as ``field: what is wrong`` (``decoder.layers: ...``):
    a user's error is printed on one line."""
    found = []
    for error in exc.errors(include_url=False):
        what = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        found.append(f"{toml_key(error['loc'])}: {what[:1].lower()}{what[1:]}")
    return "; ".join(found)
