"""The sweep's TOML config: the matrix, checked up front with errors that name the key.

```toml
run_id = "led-vs-bigbird"          # optional; default: a timestamp
output_dir = "reports"             # runs land in output_dir/run_id

[[models]]
name = "led-small"
checkpoint = "build/demo/led-small"
formats = ["eager", "onnx", "torchscript"]

[load]
input_lengths = [1024, 2048, 3072, 4096]
mode = "generate"                  # generate | forward | encode
max_new_tokens = 32
concurrency = [1, 4]               # closed loop: users; or
# rates = [2.0, 5.0]               # open loop: Poisson arrivals, requests/s
stage_seconds = 10
repeats = 1
idle_seconds = 3

[server]
max_batch_size = 8
max_wait_ms = 5

[locust]
processes = 1                      # local worker processes; or
# expect_workers = 2               # run as master for workers on other hosts
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.artifact import FORMATS

SWEEP_FORMATS = ("eager", *FORMATS)
MODES = ("generate", "forward", "encode")


class ConfigError(ValueError):
    """A sweep config that cannot run; the message names the key and the allowed values."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    checkpoint: Path
    formats: tuple[str, ...]


@dataclass(frozen=True)
class LoadSpec:
    input_lengths: tuple[int, ...]
    mode: str = "generate"
    max_new_tokens: int = 32
    target_length: int = 64
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    stage_seconds: float = 10.0
    repeats: int = 1
    idle_seconds: float = 3.0

    def levels(self) -> list[tuple[str, float]]:
        """(arrival, users or rate) for each load level."""
        return [("closed", float(users)) for users in self.concurrency] + [
            ("poisson", rate) for rate in self.rates
        ]


@dataclass(frozen=True)
class SweepConfig:
    run_id: str | None
    output_dir: Path
    models: tuple[ModelSpec, ...]
    load: LoadSpec
    server: dict[str, Any] = field(default_factory=dict)
    locust: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def _expect(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, allowed: str) -> Any:
    value = table[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where}.{key} = {value!r}: expected {allowed}.")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key} = {value!r}: expected {allowed}.")
    return value


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(known))}.")


def _positive_list(table: dict[str, Any], key: str, where: str, integers: bool) -> tuple[Any, ...]:
    label = "integers" if integers else "numbers"
    values = _expect(table, key, list, where, f"a list of positive {label}")
    kinds = (int,) if integers else (int, float)
    if not values or not all(isinstance(v, kinds) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError(f"{where}.{key} = {values!r}: expected a non-empty list of positive {label}.")
    return tuple(values)


def _models(raw: Any, base: Path) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("models: add at least one [[models]] table with name, checkpoint and formats.")
    specs = []
    for index, table in enumerate(raw):
        where = f"models[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table with name, checkpoint and formats.")
        _unknown(table, {"name", "checkpoint", "formats"}, where)
        for key in ("name", "checkpoint"):
            if key not in table:
                raise ConfigError(f"{where}: missing {key}.")
        name = _expect(table, "name", str, where, "a string")
        checkpoint = (base / _expect(table, "checkpoint", str, where, "a path")).resolve()
        formats = tuple(table.get("formats", ["onnx"]))
        bad = [f for f in formats if f not in SWEEP_FORMATS]
        if bad or not formats:
            raise ConfigError(
                f"{where}.formats = {list(formats)!r}: allowed values are {', '.join(SWEEP_FORMATS)}."
            )
        if not (checkpoint / "config.json").is_file() and not (checkpoint / "manifest.json").is_file():
            raise ConfigError(
                f"{where}.checkpoint = {str(checkpoint)!r}: not a checkpoint or artifact directory."
            )
        specs.append(ModelSpec(name, checkpoint, formats))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"models: names must be unique, got {names}.")
    return tuple(specs)


def _load(table: Any) -> LoadSpec:
    where = "load"
    if not isinstance(table, dict):
        raise ConfigError("load: add a [load] table with at least input_lengths and concurrency or rates.")
    known = {
        "input_lengths",
        "mode",
        "max_new_tokens",
        "target_length",
        "concurrency",
        "rates",
        "stage_seconds",
        "repeats",
        "idle_seconds",
    }
    _unknown(table, known, where)
    if "input_lengths" not in table:
        raise ConfigError("load.input_lengths: missing; e.g. [1024, 2048, 3072, 4096].")
    mode = table.get("mode", "generate")
    if mode not in MODES:
        raise ConfigError(f"load.mode = {mode!r}: allowed values are {', '.join(MODES)}.")
    if "concurrency" not in table and "rates" not in table:
        raise ConfigError("load: give concurrency (closed loop users) and/or rates (open loop requests/s).")
    spec = LoadSpec(
        input_lengths=_positive_list(table, "input_lengths", where, integers=True),
        mode=mode,
        max_new_tokens=int(table.get("max_new_tokens", 32)),
        target_length=int(table.get("target_length", 64)),
        concurrency=_positive_list(table, "concurrency", where, integers=True)
        if "concurrency" in table
        else (),
        rates=tuple(float(r) for r in _positive_list(table, "rates", where, integers=False))
        if "rates" in table
        else (),
        stage_seconds=float(table.get("stage_seconds", 10.0)),
        repeats=int(table.get("repeats", 1)),
        idle_seconds=float(table.get("idle_seconds", 3.0)),
    )
    for key in ("max_new_tokens", "target_length", "repeats"):
        if getattr(spec, key) < 1:
            raise ConfigError(f"load.{key} = {getattr(spec, key)}: expected an integer >= 1.")
    if spec.stage_seconds < 1:
        raise ConfigError(f"load.stage_seconds = {spec.stage_seconds}: expected at least 1 second.")
    if spec.idle_seconds < 0:
        raise ConfigError(f"load.idle_seconds = {spec.idle_seconds}: expected 0 (skip) or more.")
    return spec


def parse_config(raw: dict[str, Any], base: Path) -> SweepConfig:
    """Check a parsed TOML document; relative paths are taken from ``base`` (the config's folder)."""
    _unknown(raw, {"run_id", "output_dir", "models", "load", "server", "locust"}, "config")
    server = raw.get("server", {})
    _unknown(server, {"max_batch_size", "max_wait_ms", "max_queue", "port", "threads", "host"}, "server")
    locust = raw.get("locust", {})
    _unknown(locust, {"processes", "expect_workers", "master_bind_port", "target_host"}, "locust")
    if "processes" in locust and "expect_workers" in locust:
        raise ConfigError(
            "locust: give processes (local workers) or expect_workers (remote workers), not both."
        )
    run_id = raw.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or not run_id or "/" in run_id):
        raise ConfigError(f"run_id = {run_id!r}: expected a non-empty name without '/'.")
    return SweepConfig(
        run_id=run_id,
        output_dir=(base / str(raw.get("output_dir", "reports"))).resolve(),
        models=_models(raw.get("models"), base),
        load=_load(raw.get("load")),
        server=dict(server),
        locust=dict(locust),
        raw=raw,
    )


def load_config(path: Path) -> SweepConfig:
    """Read and check a sweep config file."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; pass a sweep config (see docs/sweeps.md).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from exc
    return parse_config(raw, path.parent)
