"""Prometheus metrics of one server, in its own registry (several apps can live in one process).

Series are labelled by ``input_bucket``, the smallest of the server's buckets that held the input
(its length class, in tokens), not ``bucket``: beside a histogram's own ``_bucket`` series and
``le`` label, a label named ``bucket`` read as part of the histogram.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable

from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from profiler.api import EnergyShare

#: Seconds; spans a small model at 1024 tokens to a large one at 4096 under load.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: The length-class label of every per-bucket series.
INPUT_BUCKET = "input_bucket"


class ServerMetrics:
    """Requests by status and input bucket, latency, tokens and joules of answered requests, queue
    depth, batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "profiler_requests",
            "Requests answered, by HTTP status and input bucket (none: refused before bucketing).",
            ["status", INPUT_BUCKET],
            registry=self.registry,
        )
        self.latency = Histogram(
            "profiler_request_latency_seconds",
            "Server-side latency of successful requests, arrival to answer.",
            [INPUT_BUCKET],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.input_tokens = Counter(
            "profiler_input_tokens",
            "Input tokens of answered requests, as the engine ran them (after any truncation).",
            [INPUT_BUCKET],
            registry=self.registry,
        )
        self.output_tokens = Counter(
            "profiler_output_tokens",
            "Output tokens of answered requests (output_ids: generated, or the forward mode's target).",
            [INPUT_BUCKET],
            registry=self.registry,
        )
        self.energy = Counter(
            "profiler_energy_joules",
            "Joules attributed to answered requests by the server's energy meter, by its source "
            "(estimate, rapl, nvml-counter, nvml-power).",
            ["source", INPUT_BUCKET],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "profiler_queue_depth", "Requests waiting or running in the batcher.", registry=self.registry
        )
        self.batch_size = Histogram(
            "profiler_batch_size",
            "Requests per engine batch.",
            [INPUT_BUCKET],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def count(self, response: Response, bucket: int | None) -> Response:
        """Count ``response`` under its status and bucket ("none" before bucketing), return it."""
        self.requests.labels(status=str(response.status_code), input_bucket=str(bucket or "none")).inc()
        return response

    def observe_answer(
        self, bucket: int, seconds: float, input_tokens: int, output_tokens: int, energy: EnergyShare
    ) -> None:
        """An answered request: its latency, tokens and share of its batch's joules."""
        label = str(bucket)
        self.latency.labels(input_bucket=label).observe(seconds)
        self.input_tokens.labels(input_bucket=label).inc(input_tokens)
        self.output_tokens.labels(input_bucket=label).inc(output_tokens)
        self.energy.labels(source=energy.source, input_bucket=label).inc(energy.joules)

    def observe_batch(self, bucket: int, size: int) -> None:
        self.batch_size.labels(input_bucket=str(bucket)).observe(size)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def answered(self) -> dict[str, int]:
        """Requests answered so far by HTTP status, every input bucket together."""
        tally: Tally[str] = Tally()
        for metric in self.requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    tally[sample.labels["status"]] += int(sample.value)
        return dict(tally)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
