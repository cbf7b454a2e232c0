"""`profiler sweep`: for each model and format, export if needed, serve, measure the idle
baseline, run locust headless at each load level, record one result per cell, score accuracy on
the live server where ``[accuracy]`` asks, stop the server.

Cells already in ``results.jsonl`` (and lengths already in ``accuracy.jsonl``) are skipped, so
``--resume`` after a crash (even ``kill -9``) loses nothing that was recorded; a locust run that
was cut short is simply run again. The server and locust die with the sweep however it ends (see
:mod:`profiler.processes`), so a resume finds their ports free.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from profiler.artifact import CUDA_PRECISIONS, MANIFEST_NAME, Precision, variant
from profiler.client import ServerCallError, ServerClient
from profiler.energy.baseline import IdleBaseline
from profiler.environment import fingerprint
from profiler.errors import ConfigError, ProfilerError, last_words
from profiler.evaluate import predict, record_accuracy, remote_target, score
from profiler.jsonl import RecordFile, RecordsError, field_errors
from profiler.loadgen.config import Arrival
from profiler.loadgen.launch import locust_command
from profiler.loadgen.live import read_status
from profiler.loadgen.results import LoadTestResults
from profiler.loadgen.stopping import StageRules
from profiler.memory import peak_rss_bytes
from profiler.processes import dies_with_this_process
from profiler.results import CAPACITY_LEVEL, CapacityRecord, LoadShape, ResultRecord, cell_key
from profiler.rundir import RunDirectory
from profiler.server.launch import (
    PortInUseError,
    ServerProcess,
    ServerStartError,
    ensure_port_free,
    start_server,
)
from profiler.sweep.artifacts import CACHE_NAME, ArtifactCache
from profiler.sweep.config import ModelSpec, SweepConfig, load_config
from profiler.sweep.progress import RunWork, SweepProgress
from profiler.workload import Record, load_jsonl

#: Locust's default ``--master-bind-port``.
LOCUST_MASTER_PORT = 5557
#: Users that carry an open-loop (Poisson) rate; each sends on its own schedule.
OPEN_LOOP_USERS = 16


class SweepError(ProfilerError):
    """The sweep cannot go on; the message says why (with a server's log tail where relevant)."""


@dataclass(frozen=True)
class Run:
    """One locust run: a model in one format and precision at one load level and repeat (one cell
    per length), or, with ``search``, its capacity search at every length (one record per length)."""

    model: ModelSpec
    format: str
    arrival: Arrival
    level: float
    repeat: int
    search: bool = False
    precision: Precision = "fp32"

    @property
    def variant(self) -> str:
        """The format, and the precision beside it unless fp32: how cells and reports name it."""
        return variant(self.format, self.precision)

    @property
    def level_key(self) -> str:
        return CAPACITY_LEVEL if self.search else f"{self.arrival}:{self.level:g}"

    @property
    def label(self) -> str:
        return f"{self.model.name}|{self.variant}|{self.level_key}|repeat {self.repeat}"

    def cell(self, length: int) -> str:
        """The key of one result record."""
        return cell_key(self.model.name, self.variant, self.level_key, self.repeat, length)


def free_run_dir(config: SweepConfig) -> Path:
    """``output_dir/run_id`` (a UTC timestamp without ``run_id``), refused if a run holds it."""
    run_id = config.run_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = RunDirectory(config.output_dir / run_id)
    if run_dir.config.exists():
        raise ConfigError(
            f"{run_dir.path} already holds a run; resume it with --resume {run_dir.path} or pick another "
            "run_id."
        )
    return run_dir.path


def run_work(config: SweepConfig, run: Run) -> RunWork:
    """What ``run`` will do, for the time estimates (the sweep's progress and ``--dry-run``)."""
    if run.search and config.capacity is not None:
        return RunWork(len(config.capacity_lengths()), config.capacity.max_probes)
    return RunWork(len(config.load.input_lengths))


def new_run_dir(config: SweepConfig, config_path: Path) -> Path:
    """Create ``output_dir/run_id`` with a copy of the config; refuse to reuse a run's directory,
    or a config this machine cannot run (fp16/bf16 without CUDA), before anything is written."""
    _check_cuda_precisions(config)
    run_dir = RunDirectory(free_run_dir(config))
    run_dir.path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, run_dir.config)
    run_dir.config_folder.write_text(f"{config_path.resolve().parent}\n", encoding="utf-8")
    return run_dir.path


def resume_config(run_dir: Path) -> SweepConfig:
    """The config a run was started with (its copy in the run directory), its relative paths read
    from the original config's folder, as they were when the run started."""
    files = RunDirectory(run_dir)
    if not files.config.is_file():
        raise ConfigError(f"{run_dir}: no {files.config.name}; pass a directory made by `profiler sweep`.")
    # Runs made before the folder was recorded read their paths from the run directory.
    base = (
        Path(files.config_folder.read_text(encoding="utf-8").strip())
        if files.config_folder.is_file()
        else run_dir
    )
    config = load_config(files.config, base)
    return config.model_copy(update={"run_id": run_dir.name, "output_dir": run_dir.parent})


class Sweep:
    """Runs the matrix of one config into one run directory."""

    def __init__(self, config: SweepConfig, run_dir: Path, console: Console) -> None:
        self.config = config
        self.run_dir = run_dir
        self.files = RunDirectory(run_dir)
        self.store = self.files.results
        self.console = console
        self.locust: subprocess.Popen[str] | None = None
        self.shown: SweepProgress | None = None  # the progress lines while run() goes on
        self.records: list[Record] | None = None  # [accuracy]'s dataset, once read

    def done(self, *, appending: bool = True) -> set[str]:
        """The cells already recorded; when ``appending``, a torn last line is cut off first (a dry
        run only reads, and creates nothing)."""
        files: tuple[RecordFile[Any], ...] = (self.store, self.files.capacity)
        try:
            return {record.cell for file in files for record in (file.open() if appending else file.read())}
        except RecordsError as exc:
            raise SweepError(str(exc)) from exc

    def pending(self) -> list[Run]:
        """The locust runs left to do (``--dry-run`` prints them)."""
        return self.plan(self.done(appending=False))

    def plan(self, done: set[str]) -> list[Run]:
        load = self.config.load
        capacity = self.config.capacity
        levels = [(arrival, level, False) for arrival, level in load.levels()]
        if capacity is not None:
            levels.append(("poisson", 0.0, True))
        runs = [
            Run(model, fmt, arrival, level, repeat, search, precision)
            for model in self.config.models
            for fmt, precision in model.variants()
            for arrival, level, search in levels
            if not search or (capacity is not None and capacity.covers(model.name, fmt))
            for repeat in range(1, load.repeats + 1)
        ]
        return [run for run in runs if any(run.cell(n) not in done for n in self._lengths(run))]

    def _lengths(self, run: Run) -> tuple[int, ...]:
        """The input lengths a locust run covers: its search's, or the load's."""
        return self.config.capacity_lengths() if run.search else self.config.load.input_lengths

    def run(self) -> int:
        """Run every pending cell; returns the number of cells recorded by this call."""
        done = self.done()
        _check_cuda_precisions(self.config)
        if not self.files.environment.exists():
            self.files.write_environment(fingerprint())
        self._check_port()
        if self.config.accuracy is not None:
            self._dataset()  # a damaged dataset is refused before any load, not after
        runs = self.plan(done)
        groups = _by_artifact(runs)
        scoring = [(model, *served) for model in self.config.models for served in model.variants()]
        groups += [
            (served, [])
            for served in scoring
            if self._unscored(*served) and all(key != served for key, _ in groups)
        ]
        if not groups:
            self.console.print(f"every cell of {self.run_dir} is already recorded.")
            return 0
        cells = sum(run.cell(n) not in done for run in runs for n in self._lengths(run))
        work = [self._work(run) for run in runs]
        with SweepProgress(
            self.console, self.config.load, cells, work, [fmt for (_, fmt, _), _ in groups]
        ) as shown:
            self.shown = shown
            try:
                return sum(self._measure(served, group, done) for served, group in groups)
            finally:
                self.shown = None

    def _measure(self, served: Served, group: list[Run], done: set[str]) -> int:
        """Prepare, serve and load one model in one format and precision (``served``; ``group``'s
        runs, which may be none when only ``[accuracy]`` is left to score); returns the cells it
        recorded."""
        assert self.shown is not None
        model, fmt, precision = served
        label = f"{model.name}/{variant(fmt, precision)}"
        self.shown.preparing(
            label, fmt, "the checkpoint" if fmt == "eager" else "its export (or one to reuse)"
        )
        artifact = self._artifact(model, fmt, precision)
        self.shown.preparing(label, fmt, "server start, idle baseline")
        server = self._start(artifact, model, variant(fmt, precision))
        recorded = 0
        try:
            idle = self._idle(server)
            self.shown.prepared()
            for run in group:
                results = self._locust(server, artifact, run)
                cells = 0
                if run.search:
                    for found in self._capacity_records(run, server, results):
                        if found.cell not in done:
                            self.files.capacity.append(found)
                            cells += 1
                else:
                    for record in self._records(run, server, results, idle):
                        if record.cell not in done:
                            self.store.append(record)
                            cells += 1
                recorded += cells
                self.shown.run_finished(cells, [stage.duration_s for stage in results.stages])
            self._score(model, fmt, precision, server)
        finally:
            server.stop()
        return recorded

    def _unscored(self, model: ModelSpec, fmt: str, precision: Precision) -> tuple[int, ...]:
        """The lengths ``[accuracy]`` asks for that ``accuracy.jsonl`` lacks for this model, format
        and precision."""
        if self.config.accuracy is None:
            return ()
        try:
            scored = {
                (r.model, variant(r.format, r.precision), r.input_length) for r in self.files.accuracy.read()
            }
        except RecordsError as exc:
            raise SweepError(str(exc)) from exc
        served = variant(fmt, precision)
        return tuple(n for n in self.config.accuracy_lengths() if (model.name, served, n) not in scored)

    def _score(self, model: ModelSpec, fmt: str, precision: Precision, server: ServerProcess) -> None:
        """Score the live server at each length ``[accuracy]`` asks for and append each score to
        ``accuracy.jsonl`` as ``profiler eval URL --run`` does, under the sweep's model name (the
        precision is the server's, from ``/v1/info``)."""
        spec, lengths = self.config.accuracy, self._unscored(model, fmt, precision)
        if spec is None or not lengths:
            return
        records = self._dataset()
        target = remote_target(
            server.url, spec.max_new_tokens, None, in_flight=self.config.server.max_batch_size
        )
        target = dataclasses.replace(target, model=model.name, format=fmt)
        for length in lengths:
            if self.shown is not None:
                self.shown.scoring(
                    f"{model.name}/{variant(fmt, precision)}", length, len({r.id for r in records})
                )
            result = score(spec.task, predict(target, records, length), records)
            record_accuracy(self.run_dir, target, length, result)

    def _dataset(self) -> list[Record]:
        """``[accuracy]``'s dataset, read once."""
        assert self.config.accuracy is not None
        if self.records is None:
            self.records = load_jsonl(self.config.accuracy.dataset)
        return self.records

    def _work(self, run: Run) -> RunWork:
        return run_work(self.config, run)

    def interrupt(self) -> None:
        """Stop the locust child now (Ctrl-C): what is recorded stays recorded."""
        if self.locust is not None and self.locust.poll() is None:
            self.locust.send_signal(signal.SIGTERM)

    def _check_port(self) -> None:
        """The server's host (and port, if fixed) and the locust master's port, before anything runs."""
        server, locust = self.config.server, self.config.locust
        addresses = [(server.host, server.port or 0)]
        if locust.processes or locust.expect_workers:
            host = "127.0.0.1" if locust.processes else "0.0.0.0"
            addresses.append((host, locust.master_bind_port or LOCUST_MASTER_PORT))
        try:
            for host, port in addresses:
                ensure_port_free(host, port)
        except PortInUseError as exc:
            raise SweepError(str(exc)) from exc

    def _artifact(self, model: ModelSpec, fmt: str, precision: Precision) -> Path:
        """The directory to serve: the checkpoint itself for eager, else its export from the cache
        shared by every run under ``output_dir`` (:mod:`profiler.sweep.artifacts`)."""
        if fmt == "eager" or (model.checkpoint / MANIFEST_NAME).is_file():
            return model.checkpoint
        cache = ArtifactCache(self.config.output_dir / CACHE_NAME, self.console.print)
        return cache.get(
            model.name,
            model.checkpoint,
            fmt,
            self.config.load.input_lengths,
            (1, self.config.server.max_batch_size),
            model.allow_new_weights,
            progress=self.shown.export_listener(f"{model.name}/{variant(fmt, precision)}")
            if self.shown
            else None,
            precision=precision,
            min_token_agreement=model.min_token_agreement,
        )

    def _start(self, artifact: Path, model: ModelSpec, fmt: str) -> ServerProcess:
        """A server for ``artifact``; ``fmt`` (with its precision: :attr:`Run.variant`) names its log."""
        server = self.config.server
        args = [
            f"--{key.replace('_', '-')}={value}"
            for key, value in server.model_dump(exclude_unset=True, exclude={"port", "host"}).items()
        ]
        if model.allow_new_weights:
            args.append("--allow-new-weights")
        if model.global_attention is not None:
            args.append(f"--global-attention={model.global_attention}")
        args += [f"--decoding={name}={json.dumps(value)}" for name, value in model.decoding.items()]
        try:
            return start_server(
                artifact,
                *args,
                host=server.host,
                port=server.port,
                log=self.files.server_log(model.name, fmt.replace(" ", "-")),
            )
        except ServerStartError as exc:
            raise SweepError(f"the server for {model.name}/{fmt} did not start: {exc}") from exc

    def _idle(self, server: ServerProcess) -> IdleBaseline | None:
        seconds = self.config.load.idle_seconds
        if seconds <= 0:
            return None
        with ServerClient(server.url) as client:
            try:
                return client.measure_idle(seconds)
            except ServerCallError as exc:
                raise SweepError(f"idle power could not be measured: {exc}") from exc

    def _locust_command(self, server: ServerProcess, artifact: Path, run: Run, results: Path) -> list[str]:
        load, locust = self.config.load, self.config.locust
        users = int(run.level) if run.arrival == "closed" and not run.search else OPEN_LOOP_USERS
        options = [
            "--input-lengths", ",".join(map(str, self._lengths(run))),
            "--mode", load.mode,
            "--max-new-tokens", str(load.max_new_tokens),
            "--target-length", str(load.target_length), "--tokenizer", str(artifact),
            "--arrival", run.arrival, "--results", str(results), "--idle-seconds", "0",
        ]  # fmt: skip
        for name in StageRules.model_fields:  # how long each stage runs
            options += [f"--{name.replace('_', '-')}", str(getattr(load, name))]
        if run.search and self.config.capacity is not None:
            options += self.config.capacity.flags()
        elif run.arrival == "poisson":
            options += ["--rate", f"{run.level:g}"]
        if load.stream:
            options.append("--stream")
        if locust.processes:  # forked workers on this machine: nobody else may join
            options += ["--processes", str(locust.processes), "--master-bind-host", "127.0.0.1"]
        if locust.expect_workers:
            options += ["--master", "--expect-workers", str(locust.expect_workers)]
        if locust.master_bind_port:
            options += ["--master-bind-port", str(locust.master_bind_port)]
            if locust.processes:  # where the forked workers look for their master
                options += ["--master-port", str(locust.master_bind_port)]
        return locust_command(locust.target_host or server.url, users, *options)

    def _locust(self, server: ServerProcess, artifact: Path, run: Run) -> LoadTestResults:
        results = self.files.locust_results
        results.unlink(missing_ok=True)  # a run killed before it was read leaves one
        status_file = self.files.locust_status
        status_file.unlink(missing_ok=True)
        log = self.files.locust_log
        label = f"{run.model.name}/{run.format} {run.level_key.replace(':', ' ')} #{run.repeat}"
        if self.shown is not None:
            self.shown.locust_started(label, self._work(run))
        try:
            with log.open("a", encoding="utf-8") as handle:
                handle.write(f"\n=== {run.label} ===\n")
                handle.flush()
                self.locust = subprocess.Popen(
                    [
                        *self._locust_command(server, artifact, run, results),
                        "--status-file",
                        str(status_file),
                    ],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    preexec_fn=dies_with_this_process(),  # noqa: PLW1509 - only a prctl call
                )
                while self.locust.poll() is None:
                    live = read_status(status_file)
                    if live is not None and self.shown is not None:
                        self.shown.status(label, live)
                    time.sleep(0.5)
            status = self.locust.returncode
            self.locust = None
            if not results.is_file():
                raise SweepError(
                    f"locust exited {status} without results for {run.label}: {last_words(log)} "
                    f"(its log: {log})"
                )
            try:
                return LoadTestResults.model_validate_json(results.read_text(encoding="utf-8"))
            except ValidationError as exc:
                raise SweepError(
                    f"locust's results for {run.label} are not a load test's results ({field_errors(exc)}); "
                    f"is the locustfile this profiler's? (its log: {log})"
                ) from exc
        finally:
            if self.locust is not None:  # interrupted: let it finish writing before the file goes
                self.interrupt()
                self.locust.wait()
                self.locust = None
            results.unlink(missing_ok=True)
            status_file.unlink(missing_ok=True)

    def _records(
        self, run: Run, server: ServerProcess, results: LoadTestResults, idle: IdleBaseline | None
    ) -> list[ResultRecord]:
        with ServerClient(server.url) as client:
            info = client.info()
            timeline = client.timeline()
        peak_rss = peak_rss_bytes(server.process.pid)
        records = []
        for stage in results.stages:
            measurement = stage.window.measurement if stage.window else None
            start, end = (
                (measurement.start_monotonic_s, measurement.end_monotonic_s)
                if measurement
                else (-math.inf, math.inf)
            )
            samples = [s for s in timeline if start <= s.t_monotonic_s <= end]
            gpu_memory = [g.memory_used_bytes for s in samples for g in s.gpus if g.memory_used_bytes]
            records.append(
                ResultRecord(
                    run_id=self.files.run_id,
                    cell=run.cell(stage.length),
                    model=run.model.name,
                    checkpoint=str(run.model.checkpoint),
                    format=run.format,
                    engine=info.engine,
                    device=info.device,
                    bucket=stage.length,
                    mode=results.mode,
                    max_new_tokens=results.max_new_tokens,
                    global_attention=results.global_attention or info.global_attention,
                    decoding=info.decoding,
                    load=LoadShape.at(run.arrival, run.level),
                    repeat=run.repeat,
                    stage=stage,
                    idle=idle,
                    timeline=samples,
                    peak_rss_bytes=peak_rss,
                    peak_gpu_memory_bytes=max(gpu_memory) if gpu_memory else None,
                    recorded_wall_s=time.time(),
                    new_weights=info.new_weights,
                    precision=info.precision,
                )
            )
        return records

    def _capacity_records(
        self, run: Run, server: ServerProcess, results: LoadTestResults
    ) -> list[CapacityRecord]:
        with ServerClient(server.url) as client:
            info = client.info()
        return [
            CapacityRecord(
                run_id=self.files.run_id,
                cell=run.cell(found.length),
                model=run.model.name,
                checkpoint=str(run.model.checkpoint),
                format=run.format,
                engine=info.engine,
                device=info.device,
                mode=results.mode,
                max_new_tokens=results.max_new_tokens,
                global_attention=results.global_attention or info.global_attention,
                repeat=run.repeat,
                capacity=found,
                recorded_wall_s=time.time(),
                precision=info.precision,
            )
            for found in results.capacity
        ]


def _check_cuda_precisions(config: SweepConfig) -> None:
    """Refuse fp16/bf16 before anything is measured on a machine without CUDA (their exports would
    fail only when the sweep reached them); torch is imported only when one is asked for."""
    asked = sorted({p for model in config.models for p in model.precisions if p in CUDA_PRECISIONS})
    if not asked:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"precisions {', '.join(asked)} need CUDA, which this machine does not have; run this sweep "
            "on a machine with an NVIDIA GPU and a CUDA build of torch, or list only fp32 and int8."
        )


#: What one server serves: a model in one format and precision.
Served = tuple[ModelSpec, str, Precision]


def _by_artifact(runs: list[Run]) -> list[tuple[Served, list[Run]]]:
    """The runs grouped by what they serve, in order."""
    groups: dict[tuple[str, str], tuple[Served, list[Run]]] = {}
    for run in runs:
        served = (run.model, run.format, run.precision)
        groups.setdefault((run.model.name, run.variant), (served, []))[1].append(run)
    return list(groups.values())
