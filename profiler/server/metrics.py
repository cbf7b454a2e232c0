"""Prometheus metrics of one server, in its own registry (several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Seconds; spans a small model at 1024 tokens to a large one at 4096 under load.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServerMetrics:
    """Requests by status and bucket, latency by bucket, queue depth, batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "profiler_requests",
            "Requests answered, by HTTP status and bucket.",
            ["status", "bucket"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "profiler_request_latency_seconds",
            "Server-side latency of successful requests.",
            ["bucket"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "profiler_queue_depth", "Requests waiting or running in the batcher.", registry=self.registry
        )
        self.batch_size = Histogram(
            "profiler_batch_size",
            "Requests per engine batch.",
            ["bucket"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def count(self, response: Response, bucket: int | None) -> Response:
        """Count ``response`` under its status and bucket ("none" before bucketing), return it."""
        self.requests.labels(status=str(response.status_code), bucket=str(bucket or "none")).inc()
        return response

    def observe_latency(self, bucket: int, seconds: float) -> None:
        self.latency.labels(bucket=str(bucket)).observe(seconds)

    def observe_batch(self, bucket: int, size: int) -> None:
        self.batch_size.labels(bucket=str(bucket)).observe(size)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
