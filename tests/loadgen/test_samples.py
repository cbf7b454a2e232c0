"""Samples from answers and errors, their wire form, and gathering them from several workers."""

from __future__ import annotations

import json
from functools import partial

import msgpack

from profiler.loadgen.agent import WorkerAgent
from profiler.loadgen.samples import Sample, StageCollector, from_answer, from_error, from_stream, to_message
from profiler.loadgen.schedule import Timing
from profiler.sse import Event

TIMING = Timing(latency_ms=120.5, service_ms=100.25, lag_ms=20.25)


def answer(bucket: int = 1024, **extra: object) -> bytes:
    body = {
        "request_id": "r",
        "text": "x",
        "output_ids": [5, 6, 7],
        "input_tokens": 1024,
        "truncated": False,
        "bucket": bucket,
        "encoded_tokens": bucket,
        "global_attention": "first",
        "global_tokens": 1,
        "batch_size": 2,
        "mode": "generate",
        "timings": {
            "queue_ms": 1.0,
            "tokenize_ms": 0.1,
            "encode_ms": 50.0,
            "first_step_ms": 5.0,
            "decode_ms": 40.0,
            "total_ms": 95.0,
        },
        "energy": {
            "joules": 0.5,
            "batch_joules": 1.0,
            "source": "estimate",
            "estimate": True,
            "warnings": [],
        },
        **extra,
    }
    return json.dumps(body).encode()


def test_success_keeps_the_servers_figures() -> None:
    sample = from_answer(3, 200, answer(), TIMING, sent_wall_s=10.0)
    assert sample.ok
    assert sample.reason is None
    assert (sample.stage, sample.bucket, sample.batch_size, sample.input_tokens, sample.output_tokens) == (
        3,
        1024,
        2,
        1024,
        3,
    )
    assert sample.timings["encode_ms"] == 50.0
    assert (sample.energy_j, sample.energy_source) == (0.5, "estimate")
    assert (sample.latency_ms, sample.service_ms, sample.lag_ms) == (120.5, 100.25, 20.25)


def token(index: int, token_id: int) -> Event:
    return Event("token", json.dumps({"index": index, "token_id": token_id, "text": ""}))


def test_a_stream_gives_time_to_first_token_and_per_output_token() -> None:
    events = [
        (30.0, token(0, 5)),
        (40.0, token(1, 6)),
        (60.0, token(2, 7)),
        (61.0, Event("done", answer().decode())),
    ]
    sample = from_stream(1, events, 900, TIMING, 0.0)
    assert sample.ok, sample.reason
    assert (sample.ttft_ms, sample.tpot_ms) == (30.0, 15.0)
    assert (sample.status, sample.response_bytes, sample.output_tokens) == (200, 900, 3)
    assert sample.timings["first_step_ms"] == 5.0
    plain = from_answer(0, 200, answer(), TIMING, 0.0)
    assert (plain.ttft_ms, plain.tpot_ms) == (None, None)


def test_one_token_has_no_time_per_output_token() -> None:
    events = [(30.0, token(0, 5)), (31.0, Event("done", answer(output_ids=[5]).decode()))]
    sample = from_stream(0, events, 100, TIMING, 0.0)
    assert (sample.ok, sample.ttft_ms, sample.tpot_ms) == (True, 30.0, None)


def test_a_broken_stream_is_a_failure_with_its_reason() -> None:
    failed = Event("error", json.dumps({"error": {"type": "engine_error", "message": "boom"}}))
    assert from_stream(0, [(5.0, token(0, 5)), (6.0, failed)], 10, TIMING, 0.0).reason == (
        "stream error engine_error"
    )
    cut = from_stream(0, [(5.0, token(0, 5))], 10, TIMING, 0.0)
    assert (cut.ok, cut.reason) == (False, "stream ended without its done event")
    short = from_stream(0, [(5.0, token(0, 5)), (6.0, Event("done", answer().decode()))], 10, TIMING, 0.0)
    assert (short.ok, short.reason) == (False, "malformed stream: 1 token events for 3 output ids")


def test_other_bucket_is_not_a_failure() -> None:
    sample = from_answer(0, 200, answer(bucket=2048), TIMING, 0.0)
    assert sample.ok
    assert sample.bucket == 2048


def test_failures_name_their_reason() -> None:
    queue_full = json.dumps({"error": {"type": "queue_full", "message": "full"}}).encode()
    assert from_answer(0, 503, queue_full, TIMING, 0.0).reason == "HTTP 503 queue_full"
    assert from_answer(0, 502, b"<html>bad gateway</html>", TIMING, 0.0).reason == "HTTP 502"
    broken = from_answer(0, 200, b"{not json", TIMING, 0.0)
    assert not broken.ok
    assert broken.reason is not None
    assert broken.reason.startswith("malformed answer")
    refused = from_error(0, ConnectionRefusedError(111, "Connection refused"), TIMING, 0.0)
    assert not refused.ok
    assert refused.status is None
    assert refused.reason is not None
    assert refused.reason.startswith("ConnectionRefusedError")


def test_wire_form_survives_msgpack() -> None:
    """Locust's messages are msgpack: a sample must come back equal."""
    sample = from_answer(1, 200, answer(), TIMING, 12.5)
    message = to_message(1, [sample], final=True, unsent=4)
    decoded = msgpack.loads(msgpack.dumps(message), raw=False)
    assert Sample.from_wire(decoded["samples"][0]) == sample
    assert decoded["final"] is True
    assert decoded["unsent"] == 4


def test_collector_merges_workers_and_waits_for_every_final() -> None:
    collector = StageCollector()
    ok = from_answer(0, 200, answer(), TIMING, 0.0)
    failed = from_answer(0, 503, b"{}", TIMING, 0.0)
    collector.add("w0", to_message(0, [ok, ok], final=False))
    collector.add("w1", to_message(0, [ok], final=True, unsent=2))
    assert not collector.complete({"w0", "w1"})
    collector.add("w0", to_message(0, [failed], final=True, unsent=1))
    assert collector.complete({"w0", "w1"})
    assert len(collector.samples) == 4
    assert collector.nodes == {"w0": 3, "w1": 1}
    assert collector.unsent == 3


def test_agents_ship_samples_per_stage_with_a_final_after_the_drain() -> None:
    """Two agents (two worker processes) feeding one collector, as the master sees them."""
    sent: list[tuple[str, dict[str, object]]] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def send(node: str, message: dict[str, object]) -> None:
        sent.append((node, message))

    agents = {
        node: WorkerAgent(partial(send, node), lambda fn: fn(), sleep, lambda: clock[0])
        for node in ("w0", "w1")
    }
    start = {
        "event": "start",
        "stage": 0,
        "name": "generate@1024",
        "length": 1024,
        "bodies": ['{"text":"a"}'],
    }
    for agent in agents.values():
        agent.on_stage(start)
        assert agent.current is not None
        assert agent.current.bodies == (b'{"text":"a"}',)
    sample = from_answer(0, 200, answer(), TIMING, 0.0)
    agents["w0"].record(sample)
    agents["w0"].flush()  # a routine shipment mid-stage
    agents["w0"].record(sample)
    agents["w1"].record(sample)
    with agents["w1"].request(0):  # one request still in flight when the end comes
        assert agents["w1"].in_flight[0] == 1
    for agent in agents.values():
        agent.on_stage({"event": "end", "stage": 0, "drain_timeout": 5})
        assert agent.current is None
    collector = StageCollector()
    for node, message in sent:
        collector.add(node, message)
    assert collector.complete({"w0", "w1"})
    assert collector.nodes == {"w0": 2, "w1": 1}


def test_drain_waits_for_in_flight_requests_then_gives_up() -> None:
    sent: list[dict[str, object]] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    agent = WorkerAgent(sent.append, lambda fn: fn(), sleep, lambda: clock[0])
    agent.in_flight[0] = 1  # never answers
    agent.drain(0, timeout_s=1.0)
    assert clock[0] >= 1.0
    assert sent == [{"run": "", "stage": 0, "final": True, "unsent": 0, "samples": []}]
