"""Run directories the report cannot use: a ReportError that says what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from profiler.errors import ProfilerError
from profiler.jsonl import RecordFile
from profiler.report import ReportError, render_report
from profiler.report.load import load_run

from . import make_record, write_run
from .conftest import quiet_console


def _render(run_dir: Path, other: Path | None = None) -> None:
    render_report(run_dir, other, quiet_console())


def test_report_error_is_a_profiler_error() -> None:
    """The CLI turns exactly this root into one line and exit status 2."""
    assert issubclass(ReportError, ProfilerError)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"does not exist; pass a directory written by `profiler sweep`"):
        _render(tmp_path / "nope")


def test_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("")
    with pytest.raises(ReportError, match=r"results\.jsonl is one file of a run directory; pass its folder"):
        _render(path)


def test_directory_without_results(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"has no results\.jsonl.*profiler sweep --resume"):
        _render(tmp_path)


@pytest.mark.parametrize("content", ["", '{"schema": 1, "cell": "torn'], ids=["empty", "torn-only"])
def test_results_without_a_complete_record(tmp_path: Path, content: str) -> None:
    (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(ReportError, match=r"no complete records.*profiler sweep --resume"):
        _render(tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [make_record()])
    with (run_dir / "results.jsonl").open("a") as handle:
        handle.write('{"schema": 1, "cell": "half')
    assert len(load_run(run_dir).repeats) == 1


def test_unreadable_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = write_run(tmp_path / "run", [make_record()])

    def denied(self: RecordFile[Any]) -> list[Any]:
        raise PermissionError(13, "Permission denied", str(self.path))

    # Patched rather than chmod-ed: the suite may run as root, who reads any file.
    monkeypatch.setattr(RecordFile, "read", denied)
    with pytest.raises(ReportError, match=r"cannot read .*results\.jsonl.*check its permissions"):
        _render(run_dir)


def test_malformed_record_names_line_and_field(tmp_path: Path) -> None:
    bad = make_record(length=2048).model_dump(mode="json")
    bad["stage"]["latency_ms"] = ["fast"]
    run_dir = write_run(tmp_path / "run", [make_record(), bad])
    with pytest.raises(
        ReportError,
        match=r"results\.jsonl line 2 is damaged \(not a valid ResultRecord: stage\.latency_ms\.0: "
        r"Input should be a valid number\); the file was left unchanged",
    ):
        _render(run_dir)


def test_missing_field(tmp_path: Path) -> None:
    bad = make_record().model_dump(mode="json")
    del bad["load"]
    with pytest.raises(
        ReportError, match=r"line 1 is damaged \(not a valid ResultRecord: load: Field required\)"
    ):
        _render(write_run(tmp_path / "run", [bad]))


def test_other_schema(tmp_path: Path) -> None:
    record = make_record().model_dump(mode="json")
    record["schema_version"] = 3
    with pytest.raises(
        ReportError, match="line 1 is damaged \\(schema version 3, and this profiler reads versions 1 and 2"
    ):
        _render(write_run(tmp_path / "run", [record]))


def test_bad_accuracy_line(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "run", [make_record()], accuracy=[{"model": "led-small", "task": "qasper"}]
    )
    with pytest.raises(
        ReportError,
        match=r"accuracy\.jsonl line 1 is damaged \(not a valid AccuracyRecord: .*score: Field required",
    ):
        _render(run_dir)


def test_missing_comparison_run_is_named(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [make_record()])
    with pytest.raises(ReportError, match=r"^comparison run directory .*other does not exist"):
        _render(run_dir, tmp_path / "other")


def test_missing_environment_is_a_note_not_an_error(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [make_record(), make_record(length=2048, concurrency=4)])
    (run_dir / "environment.json").write_text("{not json")
    console = quiet_console()
    outputs = render_report(run_dir, None, console)
    text = outputs.report_md.read_text()
    assert "environment.json could not be read" in text
    assert "## Notes" in text
    assert json.loads(json.dumps([str(p) for p in outputs.files]))  # all paths, plain


def test_unwritable_report(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [make_record()])
    (run_dir / "report.md").mkdir()  # writing it fails even for root
    with pytest.raises(ReportError, match=r"cannot write .*report\.md"):
        _render(run_dir)


def test_stage_warnings_become_notes(tmp_path: Path) -> None:
    stage = make_record(source=None).stage.model_copy(
        update={"window_error": "server returned 500 for /v1/energy/windows", "complete": False}
    )
    record = make_record(source=None).model_copy(update={"stage": stage})
    run = load_run(write_run(tmp_path / "run", [record]))
    assert run.notes[:2] == [
        "cell 'led-small|onnx|closed:1|repeat 1|1024': no energy window: server returned 500 for "
        "/v1/energy/windows.",
        "cell 'led-small|onnx|closed:1|repeat 1|1024': the stage did not run to completion.",
    ]


def test_unwritable_plot(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [make_record()])
    (run_dir / "latency_vs_length.png").mkdir()
    with pytest.raises(ReportError, match=r"cannot write plots into .*make the run directory writable"):
        _render(run_dir)
