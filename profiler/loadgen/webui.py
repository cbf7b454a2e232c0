"""The load test in locust's web UI: its flags in the start form, its figures in a tab of their own.

Locust's UI is extended the way its ``extend_web_ui`` example does it: ``extended_tabs`` and
``extended_tables`` in the page's template arguments declare a tab and its columns, and the
rows ride on the UI's own poll of ``/stats/requests`` (every 2 s while a test runs) as
``extended_stats``. The same figures, typed (:class:`~profiler.loadgen.live.LiveStatus`), are at
``GET /loadgen/status``; the last results file is at ``GET /loadgen/results``.

Each start from the form (``POST /swarm``) is checked here before locust acts on it: the load
test's fields are read by each flag's own parser and the bodies are built for the host in the
form, so a bad value or an unreachable server is refused in one line shown under the form, and a
good one applies to that run (:meth:`~profiler.loadgen.coordinator.Coordinator.configure`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, g, jsonify, request, send_file
from locust.env import Environment
from locust.runners import STATE_INIT, STATE_STOPPED

from profiler.errors import ConfigError
from profiler.loadgen.config import LoadConfig, options_from_form
from profiler.loadgen.coordinator import Coordinator
from profiler.loadgen.live import COLUMNS, table_rows
from profiler.loadgen.prepare import prepare

#: The tab's key (``?tab=scrolls`` opens it) and title.
TAB = "scrolls"
TITLE = "SCROLLS stages"
STATUS_PATH = "/loadgen/status"
RESULTS_PATH = "/loadgen/results"
#: The runner states in which the form starts a new run (otherwise locust refuses the start).
STARTABLE = (STATE_INIT, STATE_STOPPED)


def install(environment: Environment, coordinator: Coordinator) -> None:
    """Add the tab, its routes and the check of each start to ``environment.web_ui``."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    web_ui.template_args["extended_tabs"] = [{"title": TITLE, "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": f".{RESULTS_PATH}", "title": "Download the load test's results file (JSON)"}
    ]

    @app.route(STATUS_PATH)
    def loadgen_status() -> Response:
        return Response(coordinator.live().model_dump_json(), mimetype="application/json")

    @app.route(RESULTS_PATH)
    def loadgen_results() -> Any:
        status = coordinator.live()
        if not status.results_written or status.results_path is None:
            return Response(
                "no results file yet: it is written when a run ends.\n", 404, mimetype="text/plain"
            )
        return send_file(status.results_path, mimetype="application/json", as_attachment=True)

    @app.before_request
    def check_start() -> Response | None:
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        runner, options = environment.runner, environment.parsed_options
        if runner is None or options is None or runner.state not in STARTABLE:
            return None  # locust refuses to edit a running shape test itself
        host = (request.form.get("host") or "").replace("<", "").replace(">", "") or environment.host
        try:
            options = options_from_form(options, request.form)
            prepared = prepare(options, host)
        except ConfigError as exc:
            message = "; ".join(str(exc).splitlines())
            return jsonify({"success": False, "message": message, "host": environment.host})
        coordinator.configure(prepared.config, prepared.payloads)
        g.loadgen_options = options
        return None

    @app.after_request
    def after(response: Response) -> Response:
        if request.path.endswith("/swarm") and "loadgen_options" in g:
            # Locust copied the form into parsed_options by its own rules (text for unset
            # options); keep the values as the flags parsed them, for anything that reads them.
            for name in LoadConfig.model_fields:
                setattr(environment.parsed_options, name, getattr(g.loadgen_options, name))
        if request.path.endswith("/stats/requests") and response.is_json:
            body = response.get_json()
            extended = [*body.get("extended_stats", []), {"key": TAB, "data": table_rows(coordinator.live())}]
            response.set_data(json.dumps({**body, "extended_stats": extended}))
        return response
