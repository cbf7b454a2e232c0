"""The master's side of a staged load test: stages, energy windows, gathering samples, the results.

It runs wherever the load shape runs: in the master of a distributed test, or in the single local
process. :meth:`Coordinator.tick` is the load shape's ``tick``; locust calls it about once a
second. The run goes through these phases:

``new``
    Ask the server what it serves and how it measures energy; measure the idle baseline through
    it (``--idle-seconds``), before any user exists. Then ask locust for the users.
``ramp``
    Users spawn but send nothing (no stage is active); wait until all are up.
``warmup``
    For each input length, first ``--warmup-seconds`` of the same load, announced as a stage of
    its own; then its end, a drain as below, and its samples are counted and dropped.
``stage``
    Open the server's energy window named after the stage, then announce the stage (its bodies,
    its arrival rate) to every load process. Once the stage's rules are met (time, successful
    requests, stability: :mod:`profiler.loadgen.stopping`) or its cap is reached, announce its
    end: every process stops starting requests, waits for its in-flight ones, and sends its last
    samples with ``final``. Once every process has (or the drain timeout passed), close the
    window, so it holds exactly the stage's requests, and go on to the next length.
``done``
    Build the results, write the file, print the table (or leave it for :meth:`Coordinator.print_table`
    after locust's own final statistics); ``tick`` returns None and locust stops.

:meth:`Coordinator.live` describes the run as it goes (:mod:`profiler.loadgen.live`), for the web UI.

Nothing here imports locust or gevent: the cluster is reached through :class:`Cluster`, and time
through injected clocks, so tests drive a whole run with fakes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.console import Console

from profiler.api import EnergyInfo, ServerInfo
from profiler.buckets import bucket_for
from profiler.client import ServerCallError, ServerClient
from profiler.energy.baseline import IdleBaseline
from profiler.loadgen import live
from profiler.loadgen.capacity import CapacitySearch, Probe, capacity_of, judge
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.payloads import StagePayload
from profiler.loadgen.results import (
    LoadTestResults,
    StageResult,
    StageRun,
    build_results,
    completed_s,
    default_results_path,
    stage_result,
    write_results,
)
from profiler.loadgen.samples import StageCollector
from profiler.loadgen.stopping import EndReason, end_reason
from profiler.loadgen.table import print_results

logger = logging.getLogger(__name__)
D = TypeVar("D")

#: Locust calls ``tick`` about once a second; a stage ending sooner than this ends inside the tick.
TICK_S = 1.0
#: How long to wait for users to spawn beyond users / spawn rate before starting anyway.
RAMP_GRACE_S = 10.0
#: How often the drain wait looks for the last samples.
POLL_S = 0.05
#: How long an interrupted run waits for the last samples before writing what it has.
ABORT_WAIT_S = 3.0


class Cluster(Protocol):
    """What the coordinator needs from locust's runner."""

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send a ``loadgen_stage`` message to every load-generating process."""

    def nodes(self) -> set[str]:
        """Ids of the load-generating processes that should answer (``local`` when alone)."""

    def target(self) -> tuple[int, float]:
        """Users and spawn rate asked for (``-u``, ``-r``, or the web UI's form)."""

    def user_count(self) -> int:
        """Users running now, across all processes."""

    def host(self) -> str | None:
        """The server's base URL (``--host``)."""


class Coordinator:
    """Runs the stages of one load test (and of each later run started from the web UI).

    Args:
        config: the validated flags.
        payloads: bodies per input length (:func:`~profiler.loadgen.payloads.build_payloads`).
        cluster: the runner, seen through :class:`Cluster`.
        control_factory: makes the server's control client from its URL.
        sleep / monotonic / wall: clocks (gevent-patched ``time`` functions under locust).
        console: where the table goes.
        print_at_finish: print the table as the run ends; False leaves it to :meth:`print_table`.
    """

    def __init__(
        self,
        config: LoadConfig,
        payloads: Mapping[int, StagePayload],
        cluster: Cluster,
        control_factory: Callable[[str], ServerClient] = ServerClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        console: Console | None = None,
        print_at_finish: bool = True,
    ) -> None:
        self.configure(config, payloads)
        self.cluster = cluster
        self.control_factory = control_factory
        self.sleep, self.monotonic, self.wall = sleep, monotonic, wall
        self.console = console
        self.print_at_finish = print_at_finish
        self.results: LoadTestResults | None = None
        self.results_path: Path | None = None
        self.error: str | None = None  # why the last start did not run
        self.reset()

    def configure(self, config: LoadConfig, payloads: Mapping[int, StagePayload]) -> None:
        """Use these flags and bodies from the next run on (the web UI's form may change them)."""
        self.config = config
        self.capacity = config.capacity()
        self.payloads = payloads

    def reset(self) -> None:
        """Forget the current run's progress (a new run starts); the last results are kept."""
        self.phase = "new"
        self.run_id = uuid.uuid4().hex  # tags this run's messages: a straggler of an earlier run is ignored
        self.control: ServerClient | None = None
        self.collectors: dict[int, StageCollector] = {}  # by announcement (StageRun.key)
        self.announced = 0  # announcements so far: the next one's key
        self.warmup: StageRun | None = None  # the warm-up running now, if any
        self.stage_rate: float | None = None  # the open-loop rate of the stage being started
        self.search: CapacitySearch | None = None  # the current length's capacity search
        self.probes: dict[int, list[Probe]] = {}  # capacity probes per length
        self.runs: list[StageRun] = []
        self.current: StageRun | None = None
        self.window_open = False
        self.end_announced = False
        self.energy: EnergyInfo | None = None
        self.idle: IdleBaseline | None = None
        self.server: ServerInfo | None = None
        self.started_wall_s = 0.0
        self.stage_started_s = 0.0
        self.ramp_deadline_s = 0.0
        self.users, self.spawn_rate = 0, 0.0
        self.target: Path | None = None  # where this run's results file goes
        self.written = False  # whether it has been written

    # --- messages from the load processes ------------------------------------------------------

    def receive(self, node: str, message: Mapping[str, Any]) -> None:
        """A ``loadgen_samples`` message from ``node`` (dropped if it belongs to another run)."""
        if message.get("run") != self.run_id:
            logger.debug("dropping samples of an earlier run from %s", node)
            return
        stage = int(message["stage"])
        self.collectors.setdefault(stage, StageCollector()).add(node, message)

    # --- the shape's tick ----------------------------------------------------------------------

    def tick(self) -> tuple[int, float] | None:
        """Advance the run; (users, spawn rate) while it goes on, None once it is over. With
        ``--status-file``, the run as it stands after the tick goes to that file."""
        target = self._advance()
        self._write_status()
        return target

    def _write_status(self) -> None:
        path = self.config.status_file
        if path is None:
            return
        try:
            live.write_status(self.live(), path)
        except OSError as exc:  # the run goes on; only its follower loses sight of it
            logger.error("could not write the status file %s: %s", path, exc)

    def _advance(self) -> tuple[int, float] | None:
        if self.phase == "new":
            return self._prepare()
        target = (self.users, self.spawn_rate)
        if self.phase == "ramp":
            if self.cluster.user_count() >= self.users or self.monotonic() >= self.ramp_deadline_s:
                if self.cluster.user_count() < self.users:
                    logger.warning(
                        "only %d of %d users spawned; starting anyway.", self.cluster.user_count(), self.users
                    )
                self._begin(0)
            return target
        if self.phase == "warmup" and self.warmup is not None:
            remaining = self.stage_started_s + self.config.warmup_seconds - self.monotonic()
            if remaining <= TICK_S:
                self.sleep(max(0.0, remaining))
                self._end_warmup()
            return target
        if self.phase == "stage" and self.current is not None:
            reason = self._due_end()
            if reason is not None:
                self._next_stage(reason)
            return target if self.phase != "done" else None
        return None

    def _next_stage(self, reason: EndReason) -> None:
        """End the current stage, then begin the next probe, the next length, or finish the run."""
        run = self.current
        assert run is not None
        self._end_stage(self.config.drain_timeout + 5.0, reason)
        if self.capacity is not None and self.search is not None:
            rate = self._judge(run, self.search)
            if rate is not None:
                self._begin(run.index, rate)
                return
        if run.index + 1 < len(self.config.input_lengths):
            self._begin(run.index + 1)
        else:
            self._finish(complete=True)

    def _judge(self, run: StageRun, search: CapacitySearch) -> float | None:
        """Judge a capacity probe against the SLO; the next rate to probe at its length, if any."""
        assert self.capacity is not None
        result = self._stage_result(run)
        window = result.window
        probe = judge(
            self.capacity[0],
            stage=result.name,
            offered_rps=run.offered_rps or 0.0,
            sent_rps=result.sent_rps,
            unsent=result.unsent,
            duration_s=result.duration_s,
            latency_ms=result.latency_ms,
            failures=result.failures,
            window_j=window.measurement.total_j if window else None,
            energy_source=result.energy_source,
        )
        self.probes.setdefault(run.length, []).append(probe)
        search.record(probe.offered_rps, probe.passed)
        verdict = "passed" if probe.passed else f"failed ({probe.why})"
        logger.info("probe %s %s.", run.name, verdict)
        return search.next_rate()

    def _stage_result(self, run: StageRun) -> StageResult:
        source = self.energy.source if self.energy else None
        return stage_result(run, self.collectors.get(run.key, StageCollector()).samples, source, self.config)

    def _due_end(self) -> EndReason | None:
        """Whether the current stage ends now (sleeping first to a boundary that falls before the
        next tick, so a stage that has enough ends on time), and why."""
        assert self.current is not None
        rules = self.config
        elapsed = self.monotonic() - self.stage_started_s
        soon = [b for b in (rules.stage_seconds, rules.max_stage_seconds) if elapsed < b <= elapsed + TICK_S]
        at = min(soon, default=elapsed)
        ok = [s for s in self.collectors[self.current.key].samples if s.ok]
        started = self.current.started_wall_s
        reason = end_reason(
            at,
            [completed_s(s, started) for s in ok],
            [s.latency_ms for s in ok],
            rules,
            open_loop=self.current.offered_rps is not None,
        )
        if reason is not None:
            self.sleep(max(0.0, at - elapsed))
        return reason

    def _prepare(self) -> tuple[int, float] | None:
        self.users, self.spawn_rate = self.cluster.target()
        self.started_wall_s = self.wall()
        self.error = None
        host = self.cluster.host()
        if not host:
            self._refuse("no server to load: pass --host http://HOST:PORT (or set it in the web UI).")
            return None
        if not all(length in self.payloads for length in self.config.input_lengths):
            self._refuse("no request bodies were built (no --host when locust started); start again.")
            return None
        self.target = self.config.results or default_results_path(self.started_wall_s)
        self.control = self.control_factory(host)
        self.server = self._try("read the server's info", self.control.info)
        self.energy = self._try("read the server's energy source", self.control.energy)
        self._warn_about_buckets()
        if self.config.idle_seconds > 0:
            logger.info("measuring idle power for %g s before any load.", self.config.idle_seconds)
            try:
                self.idle = self.control.measure_idle(self.config.idle_seconds)
            except ServerCallError as exc:
                logger.error("could not measure idle power: %s", exc)
        self.phase = "ramp"
        self.ramp_deadline_s = self.monotonic() + self.users / max(self.spawn_rate, 1e-9) + RAMP_GRACE_S
        return self.users, self.spawn_rate

    def _refuse(self, error: str) -> None:
        logger.error("%s", error)
        self.error = error
        self.phase = "done"

    def _try(self, what: str, call: Callable[[], D]) -> D | None:
        try:
            return call()
        except ServerCallError as exc:
            logger.error("could not %s: %s", what, exc)
            return None

    def _warn_about_buckets(self) -> None:
        if not self.server or any(payload.source == "dataset-text" for payload in self.payloads.values()):
            return
        over = [
            length for length in self.config.input_lengths if bucket_for(self.server.buckets, length) is None
        ]
        if over and not self.server.truncate:
            logger.warning(
                "the server's largest bucket is %d tokens: stages at %s will fail with 413 "
                "(serve a model exported with longer buckets, or start it with --truncate).",
                max(self.server.buckets, default=0),
                ", ".join(map(str, over)),
            )

    def _begin(self, index: int, rate: float | None = None) -> None:
        """Start the length at ``index`` (at ``rate``, a capacity probe's; else the configured
        rate): its warm-up if there is one, else the stage itself."""
        if self.capacity is not None and rate is None:  # a new length: a new search
            self.search = CapacitySearch(self.capacity[1])
            rate = self.search.next_rate()
        self.stage_rate = rate if rate is not None else self.config.rate
        if self.config.warmup_seconds <= 0:
            self._start_stage(index, warmup_requests=0)
            return
        length = self.config.input_lengths[index]
        name = f"warmup {self.config.stage_name(length, rate)}"
        self.warmup = StageRun(index=index, name=name, length=length, offered_rps=self.stage_rate)
        self.stage_started_s = self.monotonic()
        self.phase = "warmup"
        self._announce(self.warmup)

    def _end_warmup(self) -> None:
        """End the warm-up, drain it, drop its samples and start its stage."""
        warmup, self.warmup = self.warmup, None
        if warmup is None:
            return
        self._announce_end(warmup)
        collector = self._drain(warmup, self.config.drain_timeout + 5.0)
        del self.collectors[warmup.key]
        logger.info("%s ended: %d requests left out.", warmup.name, len(collector.samples))
        self._start_stage(warmup.index, warmup_requests=len(collector.samples))

    def _announce(self, run: StageRun) -> None:
        """Tell every load process to send ``run``'s length under a new key."""
        run.key, self.announced = self.announced, self.announced + 1
        self.collectors[run.key] = StageCollector()
        rate_per_user = run.offered_rps / max(self.users, 1) if run.offered_rps is not None else None
        self.cluster.broadcast(
            {
                "event": "start",
                "run": self.run_id,
                "stage": run.key,
                "name": run.name,
                "length": run.length,
                "bodies": list(self.payloads[run.length].bodies),
                "rate_per_user": rate_per_user,
                "seed": self.config.seed,
            }
        )

    def _announce_end(self, run: StageRun) -> None:
        """Tell every load process to start no new request of ``run`` and to drain it."""
        self.cluster.broadcast(
            {"event": "end", "run": self.run_id, "stage": run.key, "drain_timeout": self.config.drain_timeout}
        )

    def _drain(self, run: StageRun, wait_s: float) -> StageCollector:
        """Wait up to ``wait_s`` for every process's last samples of ``run``; ``run.complete`` says
        whether they all came."""
        collector = self.collectors.setdefault(run.key, StageCollector())
        deadline = self.monotonic() + wait_s
        expected = self.cluster.nodes()
        while not collector.complete(expected) and self.monotonic() < deadline:
            self.sleep(POLL_S)
            expected &= self.cluster.nodes()  # a process that left will not answer
        run.complete = collector.complete(expected)
        if not run.complete:
            missing = ", ".join(sorted(expected - collector.finals))
            logger.warning(
                "%s: no last samples from %s after %.0f s; their late requests are missing.",
                run.name,
                missing,
                wait_s,
            )
        return collector

    def _start_stage(self, index: int, warmup_requests: int) -> None:
        length = self.config.input_lengths[index]
        probe_rate = self.stage_rate if self.capacity is not None else None
        run = StageRun(index=index, name=self.config.stage_name(length, probe_rate), length=length)
        run.offered_rps = self.stage_rate
        run.warmup_requests = warmup_requests
        self.current, self.end_announced, self.window_open = run, False, False
        if self.control is not None:
            try:
                # Locust's local workers are forked children of this process: its tree covers them.
                self.control.open_window(run.name, load_generator_pid=os.getpid())
                self.window_open = True
            except ServerCallError as exc:
                run.window_error = str(exc)
                logger.error("no energy window for %s: %s", run.name, exc)
        run.started_wall_s = self.wall()
        self.stage_started_s = self.monotonic()
        self.phase = "stage"
        self._announce(run)
        logger.info("stage %s started (%d users).", run.name, self.users)

    def _end_stage(self, wait_s: float, reason: EndReason) -> None:
        """Announce the end, wait for every process's last samples, close the window (idempotent)."""
        run = self.current
        if run is None:
            return
        if not self.end_announced:
            run.load_s = self.monotonic() - self.stage_started_s
            run.end_reason = reason
            self._announce_end(run)
            self.end_announced = True
        collector = self._drain(run, wait_s)
        if self.window_open and self.control is not None:
            self.window_open = False
            try:
                run.window = self.control.close_window(run.name)
            except ServerCallError as exc:
                run.window_error = str(exc)
                logger.error("energy window %s: %s", run.name, exc)
        run.ended_wall_s = self.wall()
        run.duration_s = self.monotonic() - self.stage_started_s
        run.nodes = dict(collector.nodes)
        run.unsent = collector.unsent
        self.runs.append(run)
        self.current = None
        logger.info("stage %s ended: %d requests.", run.name, len(collector.samples))

    def abort(self) -> None:
        """The run was stopped early (Ctrl-C, the web UI's stop, --run-time): write what there is."""
        if self.phase == "warmup" and self.warmup is not None:
            self._announce_end(self.warmup)  # its requests would count for nothing
            self.warmup = None
        if self.phase == "stage" and self.current is not None:
            run = self.current
            self._end_stage(ABORT_WAIT_S, "stopped")
            run.complete = False  # cut short
        if self.phase in ("stage", "ramp", "warmup"):
            if self.runs:
                self._finish(complete=False)
            else:
                logger.warning("stopped before the first stage ended: no results to write.")
                self.phase = "done"

    def _finish(self, complete: bool) -> None:
        self.phase = "done"
        stages = [self._stage_result(run) for run in self.runs]
        capacity = []
        if self.capacity is not None:
            slo, spec = self.capacity
            capacity = [capacity_of(length, slo, spec, probes) for length, probes in self.probes.items()]
        results = build_results(
            self.config,
            host=self.cluster.host() or "",
            users=self.users,
            spawn_rate=self.spawn_rate,
            stages=stages,
            energy=self.energy,
            # Without --idle-seconds, the server's windows still subtract a baseline measured
            # earlier (by another run) if it has one; the results say which it was.
            idle=self.idle or (self.energy.idle if self.energy else None),
            idle_measured=self.idle is not None,
            server=self.server,
            workload=[self.payloads[length].describe() for length in self.config.input_lengths],
            started_wall_s=self.started_wall_s,
            ended_wall_s=self.wall(),
            complete=complete,
            capacity=capacity,
        )
        path = self.target or default_results_path(self.started_wall_s)
        try:
            self.results_path = write_results(results, path)
            self.written = True
        except OSError as exc:
            logger.error("could not write the results to %s: %s", path, exc)
            self.results_path = None
        self.results = results
        if self.print_at_finish:
            self.print_table()
        if self.control is not None:
            self.control.close()

    def print_table(self) -> None:
        """Print the last run's table, footnotes and results path (nothing before a run ended)."""
        if self.results is not None:
            print_results(self.results, str(self.results_path) if self.results_path else None, self.console)

    def live(self) -> live.LiveStatus:
        """The run so far: each stage's state, time left and figures, and the results file."""
        stages = [live.finished(self._stage_result(run)) for run in self.runs]
        now = self.monotonic() - self.stage_started_s
        index = len(self.config.input_lengths)
        current = None
        if self.phase == "warmup" and self.warmup is not None:
            current, index = self.warmup.name, self.warmup.index
            stages.append(live.warming_up(current, self.warmup.length, now, self.config.warmup_seconds))
        elif self.phase == "stage" and self.current is not None:
            run, current, index = self.current, self.current.name, self.current.index
            so_far = self._stage_result(dataclasses.replace(run, duration_s=now, load_s=now))
            stages.append(live.running(so_far, self.config, now))
        elif self.phase in ("new", "ramp"):
            index = 0
        elif self.runs and self.phase != "done":  # between a stage's end and the next one's start
            index = self.runs[-1].index + 1
        for length in self.config.input_lengths[index + (current is not None) :]:
            stages.append(live.waiting(self.config.stage_name(length), length))
        target = self.results_path if self.written else self.target
        return live.LiveStatus(
            phase=self.phase,
            current=current,
            stages=stages,
            results_path=str(target) if target is not None else None,
            results_written=self.written,
            error=self.error,
        )
