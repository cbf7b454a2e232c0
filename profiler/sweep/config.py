"""The sweep's TOML config: the matrix, as strict models checked before anything runs.

Unknown keys and wrong types are refused, each problem in one line that names the key
(``load.max_new_tokens = 'lots': expected an integer.``), and so is a decode length over what a
model's decoder can take. The example below is what ``profiler sweep --init`` writes
(:func:`example_config`) and what ``examples/sweep.toml`` holds.

```toml
# run_id = "led-vs-bigbird"        # default: a UTC timestamp
output_dir = "reports"             # from this file's folder: runs land in output_dir/run_id,
                                   # exports in output_dir/.artifacts (reused across runs)

[[models]]
name = "led-small"
checkpoint = "build/demo/led-small"      # from this file's folder; `profiler demo` builds it
formats = ["eager", "onnx", "torchscript"]
# precisions = ["fp32", "int8"]          # each format in each: fp32 | int8 (CPU) | fp16 | bf16 (CUDA)

[load]
input_lengths = [1024, 2048, 3072, 4096]
mode = "generate"                  # generate | forward | encode
max_new_tokens = 32
# stream = true                    # generate: streamed answers, TTFT and TPOT recorded
concurrency = [1, 4]               # closed loop: users; or
# rates = [2.0, 5.0]               # open loop: Poisson arrivals, requests/s
stage_seconds = 10                 # each stage: at least this long,
min_requests = 100                 # and this many successful requests,
max_stage_seconds = 300            # and stable (stability = 0.1 over window_requests = 10), or this
warmup_seconds = 2                 # sent and discarded before each stage
repeats = 1
idle_seconds = 3

# [capacity]                       # the highest rate within an SLO, per model, format and length
# latency_ms = 2000
# percentile = 99
# max_probes = 12

# [accuracy]                       # score each model and format at each length, on its live server
# dataset = "qasper_validation.jsonl"   # SCROLLS rows (id, pid, input, output), from this file's folder
# task = "qasper"                  # whose metric scores it (profiler eval --task)
# max_new_tokens = 64

[server]
max_batch_size = 8
max_wait_ms = 5

[locust]
processes = 1                      # local worker processes; or
# expect_workers = 2               # run as master for workers on other hosts
```
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PositiveFloat, ValidationInfo, model_validator

from profiler.accuracy import TASKS
from profiler.api import Batching
from profiler.artifact import FORMATS, MANIFEST_NAME, Format, Precision, precision_refusal, variant
from profiler.attention_layout import GlobalAttention
from profiler.decoding_config import DecodingConfig
from profiler.errors import ConfigError
from profiler.loadgen.capacity import SearchSpec, Slo
from profiler.loadgen.config import DECODE_KEYS, Arrival, IdleSeconds, InputLengths
from profiler.loadgen.stopping import StageRules
from profiler.modelinfo import decode_limit
from profiler.modes import Mode
from profiler.validation import Count, Strict, TupleOf, toml_key, validated

SweepFormat = Literal["eager", Format]
SWEEP_FORMATS: tuple[str, ...] = ("eager", *FORMATS)
#: A TCP port a config names.
Port = Annotated[int, Field(ge=1, le=65535)]


def _from_base(value: Any, info: ValidationInfo) -> Any:
    """A path as written, taken from the config's folder (``base`` in the validation context)."""
    if not isinstance(value, str | Path):
        raise ValueError("expected a path (a string)")
    return (Path((info.context or {}).get("base", ".")) / value).resolve()


def _model_dir(path: Path) -> Path:
    if not (path / "config.json").is_file() and not (path / MANIFEST_NAME).is_file():
        raise ValueError(
            f"{path} is not a checkpoint or artifact directory (no config.json or {MANIFEST_NAME})"
        )
    return path


def _run_id(run_id: str) -> str:
    if not run_id or "/" in run_id:
        raise ValueError("expected a non-empty name without '/'")
    return run_id


def _decoding_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides name generation settings the profiler runs (checked again, with the checkpoint's
    own, when the server starts)."""
    unknown = sorted(set(overrides) - set(DecodingConfig.model_fields))
    if unknown:
        known = ", ".join(DecodingConfig.model_fields)
        raise ValueError(f"no generation setting named {', '.join(unknown)}; known: {known}")
    return overrides


#: A path relative to the config's folder.
ConfigPath = Annotated[Path, BeforeValidator(_from_base)]


class ModelSpec(Strict):
    """``[[models]]``: a checkpoint (or artifact) and the formats to serve it in."""

    name: Annotated[str, Field(min_length=1)]
    checkpoint: Annotated[ConfigPath, AfterValidator(_model_dir)]
    formats: Annotated[TupleOf[SweepFormat], Field(min_length=1)] = ("onnx",)
    #: Each format is exported and served in each of these (eager: fp32 only).
    precisions: Annotated[TupleOf[Precision], Field(min_length=1)] = ("fp32",)
    #: Reduced precision's parity bound (``profiler export --min-token-agreement``); None: its default.
    min_token_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    #: Measure it even though some parameters do not come from its weights file (recorded).
    allow_new_weights: bool = False
    #: LED's global attention (``profiler serve --global-attention``); None: the server's default.
    global_attention: GlobalAttention | None = None
    #: Overrides of the checkpoint's generation settings (``profiler serve --decoding``).
    decoding: Annotated[dict[str, int | float | bool | str | None], AfterValidator(_decoding_fields)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def formats_take_precisions(self) -> ModelSpec:
        for fmt, precision in self.variants():
            why = precision_refusal(precision, fmt) if fmt != "eager" else None
            if why is not None:
                raise ValueError(f"precisions = {json.dumps(list(self.precisions))}: {why}")
        if self.min_token_agreement is not None and self.precisions == ("fp32",):
            raise ValueError(
                "min_token_agreement applies to reduced precisions (fp16, bf16, int8); fp32 must match "
                "transformers' tokens exactly. Drop it, or add a reduced precision to precisions"
            )
        return self

    def variants(self) -> list[tuple[str, Precision]]:
        """Every (format, precision) served, one export and one server each: each exported format
        in every precision; eager once, in fp32, as the checkpoint is."""
        return [
            (fmt, precision)
            for fmt in self.formats
            for precision in (("fp32",) if fmt == "eager" else self.precisions)
        ]

    def labels(self) -> list[str]:
        """:meth:`variants` as reports name them (:func:`profiler.artifact.variant`)."""
        return [variant(fmt, precision) for fmt, precision in self.variants()]


class LoadSpec(StageRules):
    """``[load]``: what locust sends and how long each stage runs; the bounds are the load
    generator's own, so what passes here passes there."""

    input_lengths: InputLengths
    mode: Mode = "generate"
    max_new_tokens: Count = 32
    target_length: Count = 64
    #: generate mode: locust's ``--stream`` (time to first token and per output token recorded).
    stream: bool = False
    concurrency: TupleOf[Count] = ()
    rates: TupleOf[PositiveFloat] = ()
    stage_seconds: Annotated[float, Field(ge=1)] = 10.0  # shorter than one load test's: many cells
    repeats: Count = 1
    idle_seconds: IdleSeconds = 3.0

    @model_validator(mode="after")
    def stream_generates(self) -> LoadSpec:
        if self.stream and self.mode != "generate":
            raise ValueError(f"stream applies to generate mode only (tokens); drop it for mode {self.mode}")
        return self

    def levels(self) -> list[tuple[Arrival, float]]:
        """(arrival, users or rate) for each load level."""
        return [("closed", float(users)) for users in self.concurrency] + [
            ("poisson", rate) for rate in self.rates
        ]


class ServerSpec(Batching):
    """``[server]``: passed to `profiler serve`; only the keys given become options."""

    host: str = "127.0.0.1"
    #: None: any free port.
    port: Port | None = None
    #: Compute threads; 0: the runtime's default.
    threads: Annotated[int, Field(ge=0)] | None = None


class LocustSpec(Strict):
    """``[locust]``: local worker processes, or a master for workers on other hosts."""

    processes: Count | None = None
    expect_workers: Count | None = None
    master_bind_port: Port | None = None
    target_host: str | None = None

    @model_validator(mode="after")
    def one_kind_of_workers(self) -> LocustSpec:
        if self.processes is not None and self.expect_workers is not None:
            raise ValueError("give processes (local workers) or expect_workers (remote workers), not both")
        return self


def _unique_names(models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"names must be unique, got {names}")
    return models


class CapacitySpec(Slo, SearchSpec):
    """``[capacity]``: search models, formats and input lengths for the highest open-loop rate
    within this SLO (the load generator's ``--capacity-*`` flags, one per SLO and search key).

    Attributes:
        models / formats / input_lengths: which to search; empty: every one of the sweep's.
    """

    models: TupleOf[str] = ()
    formats: TupleOf[SweepFormat] = ()
    input_lengths: TupleOf[int] = ()

    def flags(self) -> list[str]:
        """The load generator's flags that ask for this search."""
        search = self.model_dump(include={*Slo.model_fields, *SearchSpec.model_fields})
        return [
            item
            for name, value in search.items()
            for item in (f"--capacity-{name.replace('_', '-')}", str(value))
        ]

    def covers(self, model: str, fmt: str) -> bool:
        """Whether this model in this format is searched."""
        return (not self.models or model in self.models) and (not self.formats or fmt in self.formats)


def _dataset_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give a SCROLLS JSONL file (id, pid, input, output)")
    return path


def _known_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"no task named {task!r}; known: {', '.join(TASKS)}")
    return task


class AccuracySpec(Strict):
    """``[accuracy]``: after each model and format's load, score it on a dataset at each input
    length through its live server (what ``profiler eval URL --run`` records), so every cell's cost
    has its accuracy beside it.

    Attributes:
        dataset: SCROLLS JSONL rows with references.
        task: whose metric scores it (:data:`profiler.accuracy.TASKS`).
        input_lengths: the lengths to score at; empty: every one of the load's.
        max_new_tokens: greedy tokens per answer.
    """

    dataset: Annotated[ConfigPath, AfterValidator(_dataset_file)]
    task: Annotated[str, AfterValidator(_known_task)]
    input_lengths: TupleOf[int] = ()
    max_new_tokens: Count = 64


class SweepConfig(Strict):
    """A whole sweep config, checked."""

    run_id: Annotated[str, AfterValidator(_run_id)] | None = None
    output_dir: Annotated[ConfigPath, Field(validate_default=True)] = Path("reports")
    models: Annotated[TupleOf[ModelSpec], Field(min_length=1), AfterValidator(_unique_names)]
    load: LoadSpec
    capacity: CapacitySpec | None = None
    accuracy: AccuracySpec | None = None
    server: ServerSpec = Field(default_factory=ServerSpec)
    locust: LocustSpec = Field(default_factory=LocustSpec)

    @model_validator(mode="after")
    def some_load(self) -> SweepConfig:
        if not self.load.concurrency and not self.load.rates and self.capacity is None:
            raise ValueError(
                "give load.concurrency (closed-loop users), load.rates (open-loop requests/s) or a "
                "[capacity] search"
            )
        capacity = self.capacity
        if capacity is not None:
            names = {model.name for model in self.models}
            unknown = [name for name in capacity.models if name not in names]
            lengths = [n for n in capacity.input_lengths if n not in self.load.input_lengths]
            if unknown:
                raise ValueError(f"capacity.models names {unknown}, not among the models {sorted(names)}")
            if lengths:
                raise ValueError(f"capacity.input_lengths {lengths} are not among load.input_lengths")
        if self.accuracy is not None:
            lengths = [n for n in self.accuracy.input_lengths if n not in self.load.input_lengths]
            if lengths:
                raise ValueError(f"accuracy.input_lengths {lengths} are not among load.input_lengths")
        return self

    def accuracy_lengths(self) -> tuple[int, ...]:
        """The input lengths accuracy is scored at."""
        assert self.accuracy is not None
        return self.accuracy.input_lengths or self.load.input_lengths

    def capacity_lengths(self) -> tuple[int, ...]:
        """The input lengths capacity searches run at."""
        assert self.capacity is not None
        return self.capacity.input_lengths or self.load.input_lengths


def _check_decode_lengths(config: SweepConfig) -> None:
    """Refuse a decode length some model cannot serve: its server would answer every request 422."""
    for index, model in enumerate(config.models):
        limit = decode_limit(model.checkpoint)
        for key in DECODE_KEYS:
            value = getattr(config.load, key)
            if value > limit:
                raise ConfigError(
                    f"load.{key} = {value}: models[{index}] ({model.name}) decodes at most {limit} tokens; "
                    "lower it."
                )
        if config.accuracy is not None and config.accuracy.max_new_tokens > limit:
            raise ConfigError(
                f"accuracy.max_new_tokens = {config.accuracy.max_new_tokens}: models[{index}] "
                f"({model.name}) decodes at most {limit} tokens; lower it."
            )


def parse_config(raw: dict[str, Any], base: Path) -> SweepConfig:
    """Check a parsed TOML document; relative paths are taken from ``base`` (the config's folder)."""
    config = validated(SweepConfig, raw, toml_key, context={"base": base})
    _check_decode_lengths(config)
    return config


def load_config(path: Path, base: Path | None = None) -> SweepConfig:
    """Read and check a sweep config file; relative paths are read from ``base``, by default the
    file's own folder."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; pass a sweep config (see docs/sweeps.md).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from exc
    return parse_config(raw, path.parent if base is None else base)


#: The paths the example config names, as written in it: the demo's LED and the reports folder.
EXAMPLE_PATHS = ("build/demo/led-small", "reports")


def example_config(config: Path, checkpoint: Path, output_dir: Path) -> str:
    """The commented example at the top of this module, for a config written at ``config``, naming
    ``checkpoint`` and ``output_dir`` relative to its folder (as the config reads paths)."""
    assert __doc__ is not None
    text = __doc__.split("```toml\n", 1)[1].split("```", 1)[0]
    for written, path in zip(EXAMPLE_PATHS, (checkpoint, output_dir), strict=True):
        relative = Path(os.path.relpath(path.resolve(), config.resolve().parent)).as_posix()
        quoted = re.search(f'"{re.escape(written)}"( *)', text)
        assert quoted is not None
        # The comment after the value stays in its column where there is room.
        padding = " " * max(1, len(quoted.group(1)) - len(relative) + len(written))
        text = text[: quoted.start()] + f'"{relative}"{padding}' + text[quoted.end() :]
    return "# Written by `profiler sweep --init`; every key is described in docs/sweeps.md.\n" + text
