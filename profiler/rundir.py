"""A run directory (``reports/<run-id>/``) and the one place that knows its file names.

The sweep creates it and appends results; ``profiler eval --run`` appends scores; the report reads
it. Each file is reached through :class:`RunDirectory`, so no module spells a file name itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from profiler.environment import Environment
from profiler.jsonl import RecordFile, field_errors
from profiler.results import AccuracyRecord, CapacityRecord, ResultRecord, parse_result

RESULTS_NAME = "results.jsonl"
CAPACITY_NAME = "capacity.jsonl"
ACCURACY_NAME = "accuracy.jsonl"
ENVIRONMENT_NAME = "environment.json"
CONFIG_NAME = "config.toml"
#: The folder the copied config's relative paths are read from: the original config's.
CONFIG_FOLDER_NAME = "config-folder.txt"
#: Where a running locust writes its results; deleted once the sweep has read them.
LOCUST_RESULTS_NAME = "locust-results.json"
#: Where a running locust rewrites its live status every second (the sweep's progress reads it).
LOCUST_STATUS_NAME = "locust-status.json"
LOCUST_LOG_NAME = "locust.log"
#: What `profiler report` writes.
REPORT_MD_NAME = "report.md"
REPORT_HTML_NAME = "report.html"
SUMMARY_CSV_NAME = "summary.csv"
COMPARE_MD_NAME = "compare.md"
COMPARE_CSV_NAME = "compare.csv"


@dataclass(frozen=True)
class RunDirectory:
    """The files of one run; nothing is created until a writer asks for it."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def results(self) -> RecordFile[ResultRecord]:
        """One record per cell; version-1 lines are upgraded as they are read."""
        return RecordFile(self.path / RESULTS_NAME, ResultRecord, parse_result)

    @property
    def capacity(self) -> RecordFile[CapacityRecord]:
        """One record per capacity search (model, format, input length)."""
        return RecordFile(self.path / CAPACITY_NAME, CapacityRecord)

    @property
    def config_folder(self) -> Path:
        """The file naming the folder :attr:`config`'s relative paths are read from."""
        return self.path / CONFIG_FOLDER_NAME

    @property
    def accuracy(self) -> RecordFile[AccuracyRecord]:
        return RecordFile(self.path / ACCURACY_NAME, AccuracyRecord)

    @property
    def config(self) -> Path:
        """The sweep config the run was started with (a copy)."""
        return self.path / CONFIG_NAME

    @property
    def environment(self) -> Path:
        return self.path / ENVIRONMENT_NAME

    @property
    def locust_results(self) -> Path:
        return self.path / LOCUST_RESULTS_NAME

    @property
    def locust_status(self) -> Path:
        return self.path / LOCUST_STATUS_NAME

    @property
    def locust_log(self) -> Path:
        return self.path / LOCUST_LOG_NAME

    @property
    def report_md(self) -> Path:
        return self.path / REPORT_MD_NAME

    @property
    def report_html(self) -> Path:
        return self.path / REPORT_HTML_NAME

    @property
    def summary_csv(self) -> Path:
        return self.path / SUMMARY_CSV_NAME

    @property
    def compare_md(self) -> Path:
        return self.path / COMPARE_MD_NAME

    @property
    def compare_csv(self) -> Path:
        return self.path / COMPARE_CSV_NAME

    def server_log(self, model: str, fmt: str) -> Path:
        return self.path / f"server-{model}-{fmt}.log"

    def write_environment(self, environment: Environment) -> None:
        self.environment.write_text(environment.model_dump_json(indent=2) + "\n", encoding="utf-8")

    def read_environment(self) -> Environment:
        """The run's environment.

        Raises:
            OSError: the file is missing or unreadable.
            ValueError: it is not an environment document; the message names the fields.
        """
        text = self.environment.read_text(encoding="utf-8")
        try:
            return Environment.model_validate(json.loads(text))
        except ValidationError as exc:
            raise ValueError(field_errors(exc)) from exc
