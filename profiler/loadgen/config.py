"""The load test's own flags: registration on locust's parser, and the checked config.

argparse only reads each flag's text: a malformed number or length list (read by
:func:`~profiler.validation.parse_numbers`) fails as the command line is parsed (locust then exits
2 with argparse's usage message). :func:`config_from_options` then checks the values and their
combinations against :class:`LoadConfig`, a strict model, and the files they name, raising
:class:`ConfigError` with one line per problem that names the flag.

Most flags also show in locust's web UI ("Custom parameters"), where each start of a run may
change them: :func:`options_from_form` reads the form's text with each flag's own parser, so a
value typed there is checked exactly as on the command line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, Field, PositiveFloat, model_validator

from profiler.attention_layout import GLOBAL_ATTENTION_MODES, GlobalAttention
from profiler.errors import ConfigError
from profiler.loadgen.capacity import SearchSpec, Slo, SloPercentile
from profiler.loadgen.stopping import STABLE_WINDOWS, StageRules
from profiler.modelinfo import DEFAULT_LENGTHS, MAX_DECODE_TOKENS, decode_limit
from profiler.modes import MODES, Mode
from profiler.validation import Count, TupleOf, flag, parse_numbers, validated
from profiler.workload import TOKENIZER_FILES, has_tokenizer_files

Arrival = Literal["closed", "poisson"]
ARRIVALS: tuple[Arrival, ...] = get_args(Arrival)

#: The server measures idle power for at most this long.
MAX_IDLE_SECONDS = 600.0
#: The flags that bound how many tokens a request decodes (generate) or feeds the decoder
#: (forward): both are held to the served model's bound.
DECODE_KEYS = ("max_new_tokens", "target_length")


def _distinct(lengths: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(lengths)) != len(lengths):
        raise ValueError("a length appears twice; each stage needs its own")
    return lengths


_SLO = Slo(latency_ms=1.0)  # the defaults of the capacity flags are the search's own
_SEARCH = SearchSpec()

#: One stage per length, in this order. Units: tokens.
InputLengths = Annotated[TupleOf[Annotated[int, Field(ge=2)]], Field(min_length=1), AfterValidator(_distinct)]
#: Seconds of idle baseline; 0 skips it.
IdleSeconds = Annotated[float, Field(ge=0, le=MAX_IDLE_SECONDS)]


class LoadConfig(StageRules):
    """Everything the load test was asked to do, validated; how long each stage runs is
    :class:`~profiler.loadgen.stopping.StageRules`'.

    Attributes:
        input_lengths: one stage per length, in this order. Units: tokens.
        mode: ``generate``, ``forward`` or ``encode`` (see docs/serving.md).
        max_new_tokens: greedy tokens per query in ``generate`` mode.
        stream: ``generate`` mode: ask for streamed answers and record each request's time to the
            first token and time per output token.
        target_length: decoder positions per query in ``forward`` mode.
        global_attention: LED's global attention each request asks for; None: the server's default.
        arrival: ``closed`` (each user sends back to back) or ``poisson`` (open loop).
        rate: open-loop arrivals per second across all users; None in closed loop.
        dataset: a SCROLLS JSONL file, or None for the shipped sample.
        tokenizer: the served model's checkpoint or artifact directory; None: the server's own
            (``GET /v1/tokenizer``), or text with ``dataset``.
        records: at most this many distinct documents per length.
        results: where the results file goes; None for ``reports/loadtest-<timestamp>.json``.
        status_file: where the run's live status (:class:`~profiler.loadgen.live.LiveStatus`) is
            rewritten at every tick, for a program that follows it (``profiler sweep``); None: nowhere.
        p99_ms: SLO on each stage's p99 latency, or None. Units: ms.
        max_fail_ratio: SLO on each stage's failures / requests, or None.
        idle_seconds: idle baseline measured through the server before the first stage; 0 skips it.
        drain_timeout: how long a stage's end waits for in-flight requests. Units: s.
        seed: seeds the open-loop schedules (the same seed gives the same arrival times).
        capacity_latency_ms .. capacity_max_probes: with ``capacity_latency_ms``, each length's
            stages search for the highest open-loop rate within that SLO: ``capacity_`` and a field
            of :class:`~profiler.loadgen.capacity.Slo` or :class:`~profiler.loadgen.capacity.SearchSpec`.
    """

    input_lengths: InputLengths = DEFAULT_LENGTHS
    mode: Mode = "generate"
    max_new_tokens: Count = 32
    target_length: Count = 64
    stream: bool = False
    global_attention: GlobalAttention | None = None
    arrival: Arrival = "closed"
    rate: PositiveFloat | None = None
    dataset: Path | None = None
    tokenizer: Path | None = None
    records: Count = 8
    results: Path | None = None
    status_file: Path | None = None
    p99_ms: PositiveFloat | None = None
    max_fail_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    idle_seconds: IdleSeconds = 0.0
    drain_timeout: PositiveFloat = 120.0
    seed: int = 0
    capacity_latency_ms: PositiveFloat | None = None
    capacity_percentile: SloPercentile = _SLO.percentile
    capacity_max_fail_ratio: Annotated[float, Field(ge=0, le=1)] = _SLO.max_fail_ratio
    capacity_start_rps: PositiveFloat = _SEARCH.start_rps
    capacity_max_rps: PositiveFloat = _SEARCH.max_rps
    capacity_min_rps: PositiveFloat = _SEARCH.min_rps
    capacity_tolerance: Annotated[float, Field(gt=0, le=1)] = _SEARCH.tolerance
    capacity_max_probes: Count = _SEARCH.max_probes

    @model_validator(mode="after")
    def stream_generates(self) -> LoadConfig:
        if self.stream and self.mode != "generate":
            raise ValueError(
                f"--stream applies to generate mode only (tokens); drop it for --mode {self.mode}"
            )
        return self

    @model_validator(mode="after")
    def rate_fits_arrival(self) -> LoadConfig:
        if self.capacity_latency_ms is not None:
            if self.arrival != "poisson" or self.rate is not None:
                raise ValueError(
                    "--capacity-latency-ms searches open-loop rates itself: give --arrival poisson "
                    "and no --rate"
                )
            return self
        if self.arrival == "poisson" and self.rate is None:
            raise ValueError("--arrival poisson needs --rate R (requests per second across all users)")
        if self.arrival == "closed" and self.rate is not None:
            raise ValueError(
                "--rate applies to open-loop load only: add --arrival poisson, or drop --rate for closed loop"
            )
        return self

    @property
    def tokenizer_from_server(self) -> bool:
        """Synthetic inputs of exact lengths with no tokenizer given: fetch the server's."""
        return self.tokenizer is None and self.dataset is None

    def stage_name(self, length: int, rate: float | None = None) -> str:
        """The name a stage's requests, statistics and energy window carry, e.g. ``generate@2048``,
        or ``generate@2048:3.5rps`` for a capacity probe."""
        return f"{self.mode}@{length}" + ("" if rate is None else f":{rate:.4g}rps")

    def capacity(self) -> tuple[Slo, SearchSpec] | None:
        """The capacity search asked for, or None."""
        if self.capacity_latency_ms is None:
            return None
        slo = Slo(
            latency_ms=self.capacity_latency_ms,
            percentile=self.capacity_percentile,
            max_fail_ratio=self.capacity_max_fail_ratio,
        )
        spec = SearchSpec(
            start_rps=self.capacity_start_rps,
            max_rps=self.capacity_max_rps,
            min_rps=self.capacity_min_rps,
            tolerance=self.capacity_tolerance,
            max_probes=self.capacity_max_probes,
        )
        return slo, spec


#: Flags kept off the web UI's form: the capacity search's tuning and the drain's patience (set
#: once per deployment), and --global-attention, whose default (the server's) a select cannot show.
COMMAND_LINE_ONLY = frozenset(
    {
        "global_attention",
        "drain_timeout",
        "status_file",
        "capacity_percentile",
        "capacity_max_fail_ratio",
        "capacity_start_rps",
        "capacity_max_rps",
        "capacity_min_rps",
        "capacity_tolerance",
        "capacity_max_probes",
    }
)


def _lengths(text: str) -> list[int]:
    """``--input-lengths`` as a list: locust's web UI edits list-valued options item by item."""
    return list(parse_numbers(text, kind=int))


def add_arguments(parser: Any) -> None:
    """Register the flags on locust's parser (``events.init_command_line_parser``).

    They go in an argument group of their own (``locust --help`` lists them together). Each but
    those in :data:`COMMAND_LINE_ONLY` is marked for locust's web UI, which shows it in its
    start form (a group's ``add_argument`` is argparse's own, so the marks are set on the
    action as locust's parser would set them); ``%(default)`` in a help text is filled in here,
    because the web UI shows the text as written. Defaults are :class:`LoadConfig`'s.
    """
    group = parser.add_argument_group("SCROLLS load test (profiler.loadgen; see docs/loadtests.md)")
    default = LoadConfig()
    lengths = ",".join(map(str, default.input_lengths))

    def add(*names: str, **kwargs: Any) -> None:
        name = names[0].removeprefix("--").replace("-", "_")
        value = getattr(default, name)
        if "help" in kwargs:
            kwargs["help"] = kwargs["help"] % {"default": value}
        action = group.add_argument(*names, default=value, **kwargs)
        action.include_in_web_ui = name not in COMMAND_LINE_ONLY

    add(
        "--input-lengths",
        type=_lengths,  # bounds are LoadConfig's, which names the flag
        metavar="N,N,...",
        help=f"Input lengths in tokens, one stage each, in order (default {lengths}).",
    )
    add("--dataset", metavar="PATH.jsonl", help="A SCROLLS JSONL file (default: the shipped sample).")
    add(
        "--tokenizer",
        metavar="DIR",
        help="The served model's checkpoint or artifact directory: inputs are sent as input_ids of "
        "exactly each length (default: the server's own tokenizer, fetched from --host; with "
        "--dataset and no --tokenizer, records go as text).",
    )
    add("--records", type=int, help="Distinct documents per length (default %(default)s).")
    add("--mode", choices=MODES, help="Query mode (default %(default)s).")
    add("--max-new-tokens", type=int, help="generate mode: tokens (default %(default)s).")
    add("--target-length", type=int, help="forward mode: positions (default %(default)s).")
    add(
        "--stream",
        action="store_true",
        help="generate mode: streamed answers; records time to first token and per output token.",
    )
    add(
        "--global-attention",
        choices=GLOBAL_ATTENTION_MODES,
        help="LED: tokens that attend globally, asked in every request (default: the server's).",
    )
    add("--arrival", choices=ARRIVALS, help="closed (back to back) or poisson (open loop).")
    add("--rate", type=float, help="poisson: requests/s across all users.")
    add("--stage-seconds", type=float, help="Least seconds of load per stage (default %(default)g).")
    add(
        "--min-requests",
        type=int,
        help="Least successful requests per stage (default %(default)s: enough for a p99).",
    )
    add(
        "--max-stage-seconds",
        type=float,
        help="Most seconds per stage, enough or not (default %(default)g).",
    )
    add(
        "--window-requests",
        type=int,
        help=f"Requests per stability window; the last {STABLE_WINDOWS} must agree (default %(default)s).",
    )
    add(
        "--stability",
        type=float,
        help="Largest spread of those windows' throughput and p50, as a fraction of their mean "
        "(default %(default)g; 0: no check).",
    )
    add(
        "--warmup-seconds",
        type=float,
        help="Load sent and discarded before each stage (default %(default)g).",
    )
    add("--results", metavar="PATH.json", help="Results file (default reports/loadtest-<time>.json).")
    add(
        "--status-file",
        metavar="PATH.json",
        help="Rewrite the run's live status (each stage's state, requests, seconds) here every second.",
    )
    add("--p99-ms", type=float, help="SLO: every stage's p99 latency at most this (ms).")
    add("--max-fail-ratio", type=float, help="SLO: every stage's failures/requests at most this.")
    add("--idle-seconds", type=float, help="Idle baseline before the first stage (0: skip).")
    add("--drain-timeout", type=float, help="Seconds a stage end waits for in-flight requests.")
    add("--seed", type=int, help="Seed of the open-loop arrival schedules (default %(default)s).")
    add(
        "--capacity-latency-ms",
        type=float,
        help="Search each length for the highest open-loop rate whose latency percentile stays "
        "within this (ms); needs --arrival poisson and no --rate.",
    )
    add("--capacity-percentile", type=int, choices=(50, 90, 99), help="The percentile bounded (default 99).")
    add(
        "--capacity-max-fail-ratio",
        type=float,
        help="Failures/requests a probe may have (default %(default)g).",
    )
    add("--capacity-start-rps", type=float, help="The first probe's rate (default %(default)g).")
    add("--capacity-max-rps", type=float, help="No probe above this rate (default %(default)g).")
    add("--capacity-min-rps", type=float, help="No probe below this rate (default %(default)g).")
    add(
        "--capacity-tolerance",
        type=float,
        help="Stop when the bracket's ends are within this fraction (default %(default)g).",
    )
    add("--capacity-max-probes", type=int, help="Probes per length at most (default %(default)s).")


def config_from_options(options: Any) -> LoadConfig:
    """Check the flags, alone and together, and the files they name; return the config.

    Raises:
        ConfigError: a value out of range, a combination that cannot run, a file or directory
            that is not there, or a decode length over the served model's bound.
    """
    paths = ("dataset", "tokenizer", "results", "status_file")
    values = {name: getattr(options, name) for name in LoadConfig.model_fields}
    values.update({name: Path(values[name]) if values[name] else None for name in paths})
    config = validated(LoadConfig, values, flag)
    dataset, tokenizer, results = config.dataset, config.tokenizer, config.results
    if dataset is not None and not dataset.is_file():
        raise ConfigError(f"--dataset {dataset}: no such file; pass a SCROLLS JSONL file.")
    if tokenizer is not None and not tokenizer.is_dir():
        raise ConfigError(
            f"--tokenizer {tokenizer}: no such directory; pass the served model's checkpoint or "
            "artifact directory."
        )
    if tokenizer is not None and not has_tokenizer_files(tokenizer):
        raise ConfigError(
            f"--tokenizer {tokenizer}: no tokenizer files there (none of {', '.join(TOKENIZER_FILES)}); "
            "pass the served model's checkpoint or artifact directory."
        )
    for name, path in (("--results", results), ("--status-file", config.status_file)):
        if path is not None and path.is_dir():
            raise ConfigError(f"{name} {path} is a directory; give a file name such as {path}/run.json.")
    status = config.status_file
    if status is not None and not status.parent.is_dir():
        raise ConfigError(
            f"--status-file {status}: no directory {status.parent}; create it or pick another path."
        )
    limit = decode_limit(tokenizer) if tokenizer is not None else MAX_DECODE_TOKENS
    for name in DECODE_KEYS:
        value = getattr(config, name)
        if value > limit:
            model = f"the model in {tokenizer}" if tokenizer is not None else "an unknown model"
            raise ConfigError(f"{flag((name,))} = {value}: {model} decodes at most {limit} tokens; lower it.")
    return config


def options_from_form(options: argparse.Namespace, form: Mapping[str, str]) -> argparse.Namespace:
    """``options`` with the load test's flags as locust's web UI form sent them (text each).

    Each value is read by its flag's own parser; an empty field leaves an optional flag unset, and
    a check box sends ``true`` or ``false``. Form keys are matched with their underscores dropped,
    since the web UI rewrites names between snake and camel case (``p99_ms`` comes back
    ``p_99_ms``).

    Raises:
        ConfigError: one line per value that does not parse, naming the flag.
    """
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    sent = {key.replace("_", ""): value for key, value in form.items()}
    values = vars(options).copy()
    problems = []
    for action in parser._actions:
        text = sent.get(action.dest.replace("_", ""))
        if text is None or not getattr(action, "include_in_web_ui", False):
            continue
        try:
            values[action.dest] = _form_value(action, text.strip())
        except (argparse.ArgumentTypeError, ValueError) as exc:
            problems.append(f"{action.option_strings[0]} = {json.dumps(text)}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return argparse.Namespace(**values)


def _form_value(action: argparse.Action, text: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        return text.lower() in ("true", "on", "1")
    if not text and action.default is None:
        return None
    kind = action.type
    value: Any = text
    if kind is int or kind is float:
        try:
            value = float(text) if kind is float else int(text)
        except ValueError:
            raise ValueError("expected a whole number" if kind is int else "expected a number") from None
    elif callable(kind):
        value = kind(text)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value
