"""The server's control endpoints the coordinator calls: info, energy windows, idle baseline.

Only the master (or the single local process) calls these, once per stage boundary; the load
itself goes through locust's users. Under locust the process is gevent-patched, so these blocking
calls yield to the users and heartbeats while they wait.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

logger = logging.getLogger(__name__)


class ControlError(RuntimeError):
    """A control call that failed; the message names the endpoint and the server's answer."""


class ServerControl:
    """Calls to one server's ``/v1/info`` and ``/v1/energy/*`` endpoints.

    Args:
        host: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        client: an httpx client to use (tests pass one with a mock transport).
        timeout: seconds per call, on top of any idle measurement's own length.
    """

    def __init__(self, host: str, client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.client = client or httpx.Client(base_url=self.host, timeout=timeout)

    def _call(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, timeout=timeout or self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ControlError(f"{method} {self.host}{path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ControlError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ControlError(f"{what}: the answer is not JSON ({exc}).") from exc
        if not isinstance(body, dict):
            raise ControlError(f"{what}: expected a JSON object, got {type(body).__name__}.")
        return body

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``: engine, device, buckets, batching (the manifest is left out)."""
        body = self._json(self._call("GET", "/v1/info"), "GET /v1/info")
        body.pop("manifest", None)
        return body

    def energy(self) -> dict[str, Any]:
        """``GET /v1/energy``: the source, whether it is an estimate, the method."""
        return self._json(self._call("GET", "/v1/energy"), "GET /v1/energy")

    def measure_idle(self, seconds: float) -> dict[str, Any]:
        """``POST /v1/energy/idle``: blocks for ``seconds`` while the server measures idle power."""
        response = self._call(
            "POST", "/v1/energy/idle", timeout=seconds + self.timeout, json={"seconds": seconds}
        )
        return self._json(response, "POST /v1/energy/idle")

    def open_window(self, name: str) -> None:
        """``POST /v1/energy/windows/{name}``; a window of that name left open by an earlier,
        interrupted run is closed first (and its figures dropped)."""
        path = f"/v1/energy/windows/{name}"
        response = self._call("POST", path)
        if response.status_code == 409:
            logger.warning("energy window %r was still open (an interrupted run?); reopening it.", name)
            self._call("POST", f"{path}/end")
            response = self._call("POST", path)
        self._json(response, f"POST {path}")

    def close_window(self, name: str) -> dict[str, Any]:
        """``POST /v1/energy/windows/{name}/end?requests=false``: the window's measurement and J/query."""
        path = f"/v1/energy/windows/{name}/end"
        return self._json(self._call("POST", path, params={"requests": "false"}), f"POST {path}")

    def close(self) -> None:
        self.client.close()
