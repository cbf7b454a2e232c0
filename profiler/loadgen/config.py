"""The load test's own flags: registration on locust's parser, parsing, and cross-flag validation.

Each flag is checked twice, where it can be: argparse ``type=`` functions reject a malformed value
as the command line is parsed (locust then exits 2 with argparse's usage message), and
:func:`config_from_options` checks combinations (``--rate`` without ``--arrival poisson``, a
missing dataset file) once locust has parsed everything, raising :class:`ConfigError` with a
message that says what to change.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from profiler.modelinfo import DEFAULT_LENGTHS

Mode = Literal["generate", "forward", "encode"]
Arrival = Literal["closed", "poisson"]
MODES: tuple[Mode, ...] = get_args(Mode)
ARRIVALS: tuple[Arrival, ...] = get_args(Arrival)

#: The study's input lengths: one stage each unless ``--input-lengths`` says otherwise.
#: Bounds the server's schema states for ``max_new_tokens`` and ``target_length``.
MAX_DECODE_TOKENS = 1024
#: A tokenizer directory holds at least one of these (Hugging Face's fast and slow formats).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
#: The server measures idle power for at most this long.
MAX_IDLE_SECONDS = 600.0


class ConfigError(ValueError):
    """Flags that cannot run together or name missing files; the message says what to change."""


@dataclass(frozen=True)
class LoadConfig:
    """Everything the load test was asked to do, validated.

    Attributes:
        input_lengths: one stage per length, in this order. Units: tokens.
        mode: ``generate``, ``forward`` or ``encode`` (see docs/serving.md).
        max_new_tokens: greedy tokens per query in ``generate`` mode.
        target_length: decoder positions per query in ``forward`` mode.
        arrival: ``closed`` (each user sends back to back) or ``poisson`` (open loop).
        rate: open-loop arrivals per second across all users; None in closed loop.
        stage_seconds: how long each stage sends load. Units: s.
        dataset: a SCROLLS JSONL file, or None for the shipped sample.
        tokenizer: the served model's checkpoint or artifact directory; None sends text.
        records: at most this many distinct documents per length.
        results: where the results file goes; None for ``reports/loadtest-<timestamp>.json``.
        p99_ms: SLO on each stage's p99 latency, or None. Units: ms.
        max_fail_ratio: SLO on each stage's failures / requests, or None.
        idle_seconds: idle baseline measured through the server before the first stage; 0 skips it.
        drain_timeout: how long a stage's end waits for in-flight requests. Units: s.
        seed: seeds the open-loop schedules (the same seed gives the same arrival times).
    """

    input_lengths: tuple[int, ...] = DEFAULT_LENGTHS
    mode: Mode = "generate"
    max_new_tokens: int = 32
    target_length: int = 64
    arrival: Arrival = "closed"
    rate: float | None = None
    stage_seconds: float = 30.0
    dataset: Path | None = None
    tokenizer: Path | None = None
    records: int = 8
    results: Path | None = None
    p99_ms: float | None = None
    max_fail_ratio: float | None = None
    idle_seconds: float = 0.0
    drain_timeout: float = 120.0
    seed: int = 0

    def stage_name(self, length: int) -> str:
        """The name a stage's requests, statistics and energy window carry, e.g. ``generate@2048``."""
        return f"{self.mode}@{length}"


# --- argparse types: malformed values fail while the command line is parsed ------------------------


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"1024,2048"`` -> ``(1024, 2048)``: positive, distinct token counts."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give comma-separated token counts, e.g. 1024,2048,3072,4096."
        )
    try:
        lengths = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: every length must be a whole number of tokens, e.g. 1024,2048."
        ) from None
    bad = [length for length in lengths if length < 2]
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r}: lengths must be at least 2 tokens, got {bad[0]}.")
    if len(set(lengths)) != len(lengths):
        raise argparse.ArgumentTypeError(f"{text!r}: a length appears twice; each stage needs its own.")
    return lengths


def _number(kind: Callable[[str], Any], low: float, high: float | None, inclusive_low: bool) -> Any:
    """An argparse type: a number of ``kind`` in the given range, with a message naming the range."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}.") from None
        too_low = value < low if inclusive_low else value <= low
        if too_low or (high is not None and value > high):
            above = f">= {low:g}" if inclusive_low else f"> {low:g}"
            bound = f"{above} and <= {high:g}" if high is not None else above
            raise argparse.ArgumentTypeError(f"{text!r}: must be {bound}.")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


positive_int = _number(int, 1, None, inclusive_low=True)
decode_tokens = _number(int, 1, MAX_DECODE_TOKENS, inclusive_low=True)
positive_float = _number(float, 0, None, inclusive_low=False)
idle_seconds = _number(float, 0, MAX_IDLE_SECONDS, inclusive_low=True)
ratio = _number(float, 0, 1, inclusive_low=True)


def add_arguments(parser: Any) -> None:
    """Register the flags on locust's parser (``events.init_command_line_parser``).

    They go in an argument group of their own (``locust --help`` lists them together), which
    also keeps them out of the web UI's form: the workload is built from them when locust starts,
    so they are set on the command line (or in a locust config file) and apply to every run.
    """
    group = parser.add_argument_group("SCROLLS load test (profiler.loadgen; see docs/loadtests.md)")

    def add(*names: str, **kwargs: Any) -> None:
        group.add_argument(*names, **kwargs)

    add(
        "--input-lengths",
        type=parse_lengths,
        default=DEFAULT_LENGTHS,
        metavar="N,N,...",
        help="Input lengths in tokens, one stage each, in order (default 1024,2048,3072,4096).",
    )
    add(
        "--dataset",
        default=None,
        metavar="PATH.jsonl",
        help="A SCROLLS JSONL file (default: the shipped sample).",
    )
    add(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="The served model's checkpoint or artifact directory: inputs are sent as input_ids of "
        "exactly each length. Required unless --dataset is given (then records go as text).",
    )
    add("--records", type=positive_int, default=8, help="Distinct documents per length (default 8).")
    add("--mode", choices=MODES, default="generate", help="Query mode (default generate).")
    add("--max-new-tokens", type=decode_tokens, default=32, help="generate mode: tokens (default 32).")
    add("--target-length", type=decode_tokens, default=64, help="forward mode: positions (default 64).")
    add("--arrival", choices=ARRIVALS, default="closed", help="closed (back to back) or poisson (open loop).")
    add("--rate", type=positive_float, default=None, help="poisson: requests/s across all users.")
    add("--stage-seconds", type=positive_float, default=30.0, help="Seconds of load per stage (default 30).")
    add(
        "--results",
        default=None,
        metavar="PATH.json",
        help="Results file (default reports/loadtest-<time>.json).",
    )
    add(
        "--p99-ms",
        type=positive_float,
        default=None,
        help="SLO: every stage's p99 latency at most this (ms).",
    )
    add(
        "--max-fail-ratio",
        type=ratio,
        default=None,
        help="SLO: every stage's failures/requests at most this.",
    )
    add(
        "--idle-seconds",
        type=idle_seconds,
        default=0.0,
        help="Idle baseline before the first stage (0: skip).",
    )
    add(
        "--drain-timeout",
        type=positive_float,
        default=120.0,
        help="Seconds a stage end waits for in-flight requests.",
    )
    add("--seed", type=int, default=0, help="Seed of the open-loop arrival schedules (default 0).")


def config_from_options(options: Any) -> LoadConfig:
    """Check the flags together and return the config.

    Raises:
        ConfigError: a combination that cannot run, or a file or directory that is not there.
    """
    arrival: Arrival = options.arrival
    rate = options.rate
    if arrival == "poisson" and rate is None:
        raise ConfigError("--arrival poisson needs --rate R (requests per second across all users).")
    if arrival == "closed" and rate is not None:
        raise ConfigError(
            "--rate applies to open-loop load only: add --arrival poisson, or drop --rate for closed loop."
        )
    dataset = Path(options.dataset) if options.dataset else None
    if dataset is not None and not dataset.is_file():
        raise ConfigError(f"--dataset {dataset}: no such file; pass a SCROLLS JSONL file.")
    tokenizer = Path(options.tokenizer) if options.tokenizer else None
    if tokenizer is not None and not tokenizer.is_dir():
        raise ConfigError(
            f"--tokenizer {tokenizer}: no such directory; pass the served model's checkpoint or "
            "artifact directory."
        )
    if tokenizer is not None and not any((tokenizer / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            f"--tokenizer {tokenizer}: no tokenizer files there (none of {', '.join(TOKENIZER_FILES)}); "
            "pass the served model's checkpoint or artifact directory."
        )
    if tokenizer is None and dataset is None:
        raise ConfigError(
            "synthetic inputs of exact lengths need the served model's tokenizer: add --tokenizer DIR "
            "(its checkpoint or artifact directory), or pass --dataset FILE to send real records as text."
        )
    results = Path(options.results) if options.results else None
    if results is not None and results.is_dir():
        raise ConfigError(f"--results {results} is a directory; give a file name such as {results}/run.json.")
    return LoadConfig(
        input_lengths=tuple(options.input_lengths),
        mode=options.mode,
        max_new_tokens=options.max_new_tokens,
        target_length=options.target_length,
        arrival=arrival,
        rate=rate,
        stage_seconds=options.stage_seconds,
        dataset=dataset,
        tokenizer=tokenizer,
        records=options.records,
        results=results,
        p99_ms=options.p99_ms,
        max_fail_ratio=options.max_fail_ratio,
        idle_seconds=options.idle_seconds,
        drain_timeout=options.drain_timeout,
        seed=options.seed,
    )
