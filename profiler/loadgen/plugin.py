"""Locust glue: the flags, the event listeners, the messages, and each user's request loop.

``loadtests/scrolls.py`` calls :func:`install` once and hands its user and shape classes to the
returned :class:`LoadGenPlugin`. Importing this module imports locust (which gevent-patches the
process), so the rest of :mod:`profiler.loadgen` does not import it.

How samples travel: each load-generating process (every worker, or the single local process) has
a :class:`~profiler.loadgen.agent.WorkerAgent`; its users record each request there, and the agent
ships them to the master in ``loadgen_samples`` messages (``runner.send_message``): every few
seconds, at each stage's end after the drain (``final``), and when the test stops. The master's
:class:`~profiler.loadgen.coordinator.Coordinator` gathers them per stage. The coordinator talks
to the agents with ``loadgen_stage`` messages (a stage's start, with its bodies, and its end). A
local runner delivers both kinds in-process, so ``--processes N``, ``--master``/``--worker`` and a
single process run the same code.

With the web UI, :mod:`profiler.loadgen.webui` adds the load test's tab and checks each start.
Headless, the table is printed on locust's ``quit`` event, which fires after locust has printed
its own final statistics, so the load test's figures are the last thing on the screen.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
import psutil  # type: ignore[import-untyped, unused-ignore]
from geventhttpclient import HTTPClient
from locust import FastHttpUser
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, Runner, WorkerRunner

from profiler import sse
from profiler.errors import ConfigError
from profiler.loadgen import webui
from profiler.loadgen.agent import ActiveStage, WorkerAgent
from profiler.loadgen.config import add_arguments, config_from_options
from profiler.loadgen.coordinator import Coordinator
from profiler.loadgen.prepare import Prepared, prepare
from profiler.loadgen.samples import Sample, from_answer, from_error, from_stream
from profiler.loadgen.schedule import Pacer, PoissonSchedule, user_seed
from profiler.processes import forks_die_with_this_process

logger = logging.getLogger(__name__)

STAGE_MESSAGE = "loadgen_stage"
SAMPLES_MESSAGE = "loadgen_samples"
#: Exit status when flags are wrong (argparse's own errors exit 2 as well).
EXIT_CONFIG = 2
#: Exit status when an SLO (--p99-ms, --max-fail-ratio) was missed.
EXIT_SLO = 3
#: How long an idle user (no stage on) sleeps before looking again.
IDLE_POLL_S = 0.05
#: The longest single sleep while waiting for a scheduled send (so a stage's end is noticed).
WAIT_SLICE_S = 0.1
HEADERS = {"Content-Type": "application/json", "Accept": f"application/json, {sse.MEDIA_TYPE}"}


class RequestFailed(Exception):
    """A failed query, as locust's statistics show it (``HTTP 503 queue_full`` and the like)."""


class _LocustCluster:
    """The coordinator's view of locust's runner."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    @property
    def runner(self) -> Runner:
        runner = self.environment.runner
        if runner is None:  # pragma: no cover - the coordinator exists only once a runner does
            raise RuntimeError("locust has no runner yet")
        return runner

    def broadcast(self, message: dict[str, Any]) -> None:
        self.runner.send_message(STAGE_MESSAGE, message)

    def nodes(self) -> set[str]:
        runner = self.runner
        if isinstance(runner, MasterRunner):
            return {node.id for node in runner.clients.all}
        return {"local"}

    def target(self) -> tuple[int, float]:
        options = self.environment.parsed_options
        users = getattr(options, "num_users", None)
        spawn_rate = getattr(options, "spawn_rate", None)
        return int(users if users is not None else 1), float(spawn_rate if spawn_rate is not None else 1)

    def user_count(self) -> int:
        return int(self.runner.user_count)

    def host(self) -> str | None:
        return self.environment.host


class Sender:
    """One user's request loop: pace, send, measure, record, report to locust.

    Requests go through a geventhttpclient ``HTTPClient`` of the user's own (one keep-alive
    connection, FastHttpUser's ``connection_timeout`` and ``network_timeout``), not through
    ``user.client.post``: that would report to locust by itself, with its own timing from the
    actual send. Here latency runs from the scheduled time in open loop, and the request event is
    fired once, with that figure unrounded. Answers of every status come back with their bodies,
    so a failure keeps the server's reason (``HTTP 503 queue_full``). A streamed answer
    (``--stream``) is read event by event, each timed as it arrives.
    """

    def __init__(self, user: FastHttpUser, agent: WorkerAgent, number: int) -> None:
        self.user = user
        self.agent = agent
        self.number = number
        host = user.host or ""
        self.url = f"{host.rstrip('/')}/v1/generate"
        self.path = f"{urlsplit(host).path.rstrip('/')}/v1/generate"
        self.http = HTTPClient.from_url(
            host,
            concurrency=1,
            connection_timeout=user.connection_timeout,
            network_timeout=user.network_timeout,
        )
        self.stage_index = -1
        self.pacer = Pacer(0.0)
        self.cursor = number

    def close(self) -> None:
        """Close the user's connection (call it from ``on_stop``)."""
        self.http.close()

    def _enter(self, stage: ActiveStage) -> None:
        schedule = None
        if stage.rate_per_user is not None:
            seed = user_seed(stage.seed, stage.index, self.agent.node, self.number)
            schedule = PoissonSchedule(stage.rate_per_user, seed)
        self.pacer = Pacer(stage.origin_s, schedule)
        self.stage_index = stage.index
        self.cursor = self.number  # users start at different documents

    def send_next(self) -> None:
        """Send this user's next request of the current stage (or idle briefly if none is on)."""
        stage = self.agent.current
        if stage is None or not stage.bodies:
            gevent.sleep(IDLE_POLL_S)
            return
        if stage.index != self.stage_index:
            self._enter(stage)
        due = self.pacer.due(time.perf_counter())
        while (wait := due - time.perf_counter()) > 0:
            if self.agent.current is not stage:
                return
            gevent.sleep(min(wait, WAIT_SLICE_S))
        if self.agent.current is not stage:
            return  # the stage ended while this request waited for its time: it is not sent
        body = stage.bodies[self.cursor % len(stage.bodies)]
        self.cursor += 1
        self._send(stage, body, due)

    def _send(self, stage: ActiveStage, body: bytes, due: float) -> None:
        sample: Sample
        with self.agent.request(stage.index):
            sent_wall = time.time()
            sent = time.perf_counter()
            events: list[tuple[float, sse.Event]] | None = None
            try:
                with self.http.request("POST", self.path, body=body, headers=HEADERS) as response:
                    status = int(response.status_code)
                    if status == 200 and str(response.get("content-type", "")).startswith(sse.MEDIA_TYPE):
                        events, size = self._events(response, due, sent)
                    else:
                        content = response.read()
            # Any failure to get an answer (refused, reset, timeout, a parse error) is a failed
            # request to record, not a crash of the user; GreenletExit is not an Exception.
            except Exception as exc:
                timing = self.pacer.timing(due, sent, time.perf_counter())
                sample = from_error(stage.index, exc, timing, sent_wall)
            else:
                timing = self.pacer.timing(due, sent, time.perf_counter())
                if events is not None:
                    sample = from_stream(stage.index, events, size, timing, sent_wall)
                else:
                    sample = from_answer(stage.index, status, content, timing, sent_wall)
            self.agent.record(sample)
            if self.agent.current is not stage and self.pacer.open_loop:
                # Still in flight as far as the drain knows, so the count is in the final message.
                ended = self.agent.ended_at.get(stage.index, time.perf_counter())
                self.agent.count_unsent(stage.index, self.pacer.backlog(ended))
        self.user.environment.events.request.fire(
            request_type="POST",
            name=stage.name,
            response_time=sample.latency_ms,
            response_length=sample.response_bytes,
            response=None,
            context={"stage": stage.name, "status": sample.status, "bucket": sample.bucket},
            exception=None if sample.ok else RequestFailed(sample.reason),
            start_time=sent_wall,
            url=self.url,
        )

    def _events(self, response: Any, due: float, sent: float) -> tuple[list[tuple[float, sse.Event]], int]:
        """A streamed answer's events, each with when it arrived (ms from the request's start, as
        its latency counts), and the stream's size in bytes."""
        parser = sse.EventParser()
        events: list[tuple[float, sse.Event]] = []
        size = 0
        while line := response.readline(b"\n"):
            size += len(line)
            event = parser.line(line.decode())
            if event is not None:
                events.append((self.pacer.since_start_ms(due, sent, time.perf_counter()), event))
        return events, size


def _stop_forked_workers(options: Any) -> None:
    """Stop the workers ``--processes`` forked, before the master exits over bad flags.

    Locust forks them before any locustfile code sees the parsed flags, and when the master exits
    early it does not stop them (they would wait a minute for a master that is gone).
    """
    if not getattr(options, "processes", None):
        return
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            child.terminate()


class LoadGenPlugin:
    """The listeners of one locust process, and the objects they share."""

    def __init__(self) -> None:
        self.coordinator: Coordinator | None = None
        self.agent: WorkerAgent | None = None
        self.numbers = itertools.count()

    # --- what the locustfile's classes call ----------------------------------------------------

    def sender(self, user: FastHttpUser) -> Sender:
        """The request loop for a new user (call it from ``on_start``)."""
        if self.agent is None:
            raise RuntimeError("loadgen is not initialised in this process; was install(events) called?")
        return Sender(user, self.agent, next(self.numbers))

    def tick(self) -> tuple[int, float] | None:
        """The load shape's tick (runs on the master or the single local process)."""
        if self.coordinator is None:
            return None
        return self.coordinator.tick()

    def restart(self) -> None:
        """A new run of the shape begins (locust calls the shape's ``reset_time``)."""
        if self.coordinator is not None:
            self.coordinator.reset()

    # --- locust events -------------------------------------------------------------------------

    def on_init(self, environment: Environment, runner: Runner, **_: Any) -> None:
        if isinstance(runner, MasterRunner | LocalRunner):
            options = environment.parsed_options
            headless = bool(getattr(options, "headless", False)) or environment.web_ui is None
            try:
                prepared = self._prepare(options, environment.host, headless)
            except ConfigError as exc:
                logger.error("%s", exc)
                sys.stderr.write(f"error: {exc}\n")
                _stop_forked_workers(options)
                raise SystemExit(EXIT_CONFIG) from exc
            self.coordinator = Coordinator(
                prepared.config,
                prepared.payloads,
                _LocustCluster(environment),
                print_at_finish=not headless,  # headless: after locust's final statistics (on_quit)
            )
            runner.register_message(SAMPLES_MESSAGE, self.on_samples)
            webui.install(environment, self.coordinator)
        if isinstance(runner, WorkerRunner | LocalRunner):
            self.agent = WorkerAgent(self._sender_for(runner), gevent.spawn, gevent.sleep)
            runner.register_message(STAGE_MESSAGE, self.on_stage)
            gevent.spawn(self.agent.run_flusher)

    @staticmethod
    def _prepare(options: Any, host: str | None, headless: bool) -> Prepared:
        """The flags checked and the bodies built; with the web UI and no --host yet, the bodies
        wait for the first start from the form, which names the host."""
        if not headless and not host:
            config = config_from_options(options)
            if config.tokenizer_from_server:
                return Prepared(config, {})
        return prepare(options, host)

    def _sender_for(self, runner: Runner) -> Any:
        def send(message: dict[str, Any]) -> None:
            runner.send_message(SAMPLES_MESSAGE, message)

        return send

    def on_stage(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.agent is not None:
            runner = environment.runner
            if isinstance(runner, WorkerRunner):  # the index the master gave it: stable across runs
                self.agent.node = f"worker{runner.worker_index}"
            self.agent.on_stage(msg.data)

    def on_samples(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.coordinator is not None:
            self.coordinator.receive(str(msg.node_id), msg.data)

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.coordinator is not None:
            self.coordinator.abort()  # a no-op once the stages have run to their end
        if self.agent is not None:
            self.agent.stop()

    def on_quit(self, **_: Any) -> None:
        """Locust has printed its final statistics (headless): now the load test's table."""
        if self.coordinator is not None and not self.coordinator.print_at_finish:
            self.coordinator.print_table()

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        self.on_test_stop(environment)
        if self.coordinator is None:
            return
        results = self.coordinator.results
        if results is None:
            return
        slo = results.slo
        if not slo.passed:
            for violation in slo.violations:
                logger.error("SLO missed: %s", violation)
            environment.process_exit_code = EXIT_SLO
        elif results.complete and (slo.p99_ms is not None or slo.max_fail_ratio is not None):
            # The SLOs were given and met: failures within --max-fail-ratio do not fail the run
            # (locust would otherwise exit 1 on any failed request).
            environment.process_exit_code = 0


def install(events: Any) -> LoadGenPlugin:
    """Register the flags and listeners on locust's ``events``; returns the plugin to use."""
    plugin = LoadGenPlugin()
    # httpx logs every control call at INFO; the coordinator logs the stage boundaries itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Locust stops the workers that --processes forks only when it exits cleanly; killed, it would
    # orphan them (they wait minutes for a master that is gone).
    forks_die_with_this_process()
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(plugin.on_init)
    events.test_stop.add_listener(plugin.on_test_stop)
    events.quitting.add_listener(plugin.on_quitting)
    events.quit.add_listener(plugin.on_quit)
    return plugin


__all__ = ["EXIT_CONFIG", "EXIT_SLO", "LoadGenPlugin", "install"]
