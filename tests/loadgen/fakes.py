"""Fakes for driving the coordinator without locust: a cluster of worker agents, a server, a clock."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from profiler.api import Batching, EnergyInfo, EnergyShare, GenerateResponse, ServerInfo, Timings
from profiler.attention_layout import EncoderLayout
from profiler.client import ServerCallError
from profiler.decoding_config import DecodingConfig
from profiler.energy.baseline import IdleBaseline, per_query_energy
from profiler.energy.meter import Measurement
from profiler.energy.windows import WindowResult
from profiler.loadgen.agent import WorkerAgent
from profiler.loadgen.coordinator import Coordinator
from profiler.loadgen.samples import Sample, from_answer
from profiler.loadgen.schedule import Timing

ENERGY = EnergyInfo(
    source="estimate",
    domains=["cpu"],
    method="estimate: CPU seconds x 10 W",
    open_windows=[],
    idle=None,
    timeline_hz=10.0,
    clock="time.monotonic of the server process",
)
INFO = ServerInfo(
    engine="eager",
    device="cpu",
    providers=[],
    source="/models/led",
    model_type="led",
    buckets=[1024, 2048, 3072, 4096],
    layout=EncoderLayout(attention="sliding_window", multiple=32, global_attention=True),
    global_attention="first",
    decoding=DecodingConfig(),
    truncate=False,
    batching=Batching(),
    max_body_bytes=1 << 20,
    manifest=None,
    new_weights=[],
)


def window_result(name: str, completed: int, idle: IdleBaseline | None = None) -> WindowResult:
    """A closed 3 s window of 12 J as the server answers it, built by the server's own classes."""
    measurement = Measurement(
        name=name,
        source="estimate",
        duration_s=3.0,
        energy_j={"cpu": 12.0},
        start_monotonic_s=100.0,
        end_monotonic_s=103.0,
        start_wall_s=1.7e9,
    )
    per_query = per_query_energy(measurement, completed, idle) if completed else None
    return WindowResult(measurement=measurement, completed=completed, per_query=per_query, idle=idle)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ok_sample(stage: int, latency_ms: float, bucket: int = 1024) -> Sample:
    body = GenerateResponse(
        request_id="r",
        text="",
        output_ids=[1, 2],
        input_tokens=bucket,
        bucket=bucket,
        encoded_tokens=bucket,
        global_attention="first",
        global_tokens=1,
        batch_size=1,
        truncated=False,
        mode="generate",
        timings=Timings(queue_ms=1, tokenize_ms=0, encode_ms=5, first_step_ms=1, decode_ms=4, total_ms=10),
        energy=EnergyShare(joules=0.25, batch_joules=0.25, source="estimate", warnings=[]),
    )
    return from_answer(stage, 200, body.model_dump_json().encode(), Timing(latency_ms, latency_ms, 0.0), 0.0)


class Server:
    """A fake ServerClient: records the calls, answers like `profiler serve` on a CPU."""

    def __init__(self, calls: list[str], fail_windows: bool = False) -> None:
        self.calls = calls
        self.fail_windows = fail_windows
        self.closed = False
        self.load_generator_pids: list[int | None] = []

    def info(self) -> ServerInfo:
        self.calls.append("info")
        return INFO

    def energy(self) -> EnergyInfo:
        self.calls.append("energy")
        return ENERGY

    def measure_idle(self, seconds: float) -> IdleBaseline:
        self.calls.append(f"idle {seconds:g}")
        return IdleBaseline(source="estimate", duration_s=seconds, power_w={"cpu": 1.0})

    def open_window(self, name: str, load_generator_pid: int | None = None) -> None:
        self.calls.append(f"open {name}")
        self.load_generator_pids.append(load_generator_pid)
        if self.fail_windows:
            raise ServerCallError("POST /v1/energy/windows: HTTP 500")

    def close_window(self, name: str) -> WindowResult:
        self.calls.append(f"close {name}")
        idle = IdleBaseline(source="estimate", duration_s=5.0, power_w={"cpu": 1.0})
        return window_result(name, completed=4, idle=idle)  # net: (12 J - 1 W x 3 s) / 4

    def close(self) -> None:
        self.closed = True


class Cluster:
    """Worker agents reached by broadcast; each start makes every worker answer some requests."""

    def __init__(
        self, nodes: list[str], per_stage: Callable[[str, int], list[Sample]], events: list[str]
    ) -> None:
        self.events = events
        self.per_stage = per_stage
        self.coordinator: Coordinator | None = None
        self.users_running = 0
        self.agents = {node: WorkerAgent(partial(self._deliver, node), lambda fn: fn()) for node in nodes}
        self.silent: set[str] = set()  # workers whose last samples never arrive

    def _deliver(self, node: str, message: dict[str, Any]) -> None:
        if node in self.silent and message["final"]:
            return
        assert self.coordinator is not None
        self.coordinator.receive(node, message)

    def broadcast(self, message: dict[str, Any]) -> None:
        self.events.append(f"{message['event']} {message['stage']}")
        for node, agent in self.agents.items():
            agent.on_stage(message)
            if message["event"] == "start":
                for sample in self.per_stage(node, message["stage"]):
                    agent.record(sample)
                if node not in self.silent:
                    agent.flush()  # as the agent's flusher would, while the stage runs

    def nodes(self) -> set[str]:
        return set(self.agents)

    def target(self) -> tuple[int, float]:
        self.users_running = 4
        return 4, 2.0

    def user_count(self) -> int:
        return self.users_running

    def host(self) -> str | None:
        return "http://127.0.0.1:8000"


def run_to_end(coordinator: Coordinator, limit: int = 1000) -> int:
    """Tick as locust does (about once a second) until the shape says stop; returns the ticks."""
    for ticks in range(1, limit):
        if coordinator.tick() is None:
            return ticks
        coordinator.sleep(1.0)
    raise AssertionError("the shape never ended")
