"""The HTTP server: FastAPI app, per-bucket dynamic batching, Prometheus metrics."""
