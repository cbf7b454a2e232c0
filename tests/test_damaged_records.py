"""A damaged line in results.jsonl or accuracy.jsonl: every reader refuses it by line number, through
the real CLI, and nothing is cut or dropped; only a torn last line (a killed writer) is cut."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from report import make_record, write_run

from profiler.accuracy import AccuracyError, TaskScore
from profiler.decoding_config import DecodingConfig
from profiler.evaluate import EvalTarget, record_accuracy
from profiler.results import AccuracyRecord
from profiler.rundir import RunDirectory

pytestmark = pytest.mark.integration

PROFILER = str(Path(sys.executable).parent / "profiler")
DAMAGED = '{"schema": 1, "cell": "led-small|onnx|clo\n'


def _profiler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROFILER, *args], capture_output=True, text=True, timeout=120, check=False)


def _assert_refused(result: subprocess.CompletedProcess[str], path: Path, line: int) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert "Traceback" not in result.stdout + result.stderr
    assert message.count("\n") == 0, message
    assert message.startswith(f"error: {path} line {line} is damaged (not JSON")
    assert "left unchanged" in message


def _damage(path: Path, line: int) -> bytes:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = DAMAGED
    path.write_text("".join(lines), encoding="utf-8")
    return path.read_bytes()


@pytest.fixture
def run_dir(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> Path:
    """A run of 16 recorded cells whose config can be resumed (a tiny checkpoint, eager)."""
    records = [
        make_record(fmt="eager", length=length, concurrency=users, run_id="damaged")
        for length in (1024, 2048, 3072, 4096)
        for users in (1, 2, 4, 8)
    ]
    directory = write_run(tmp_path / "reports" / "damaged", records)
    (directory / "config.toml").write_text(
        'run_id = "damaged"\n'
        f'[[models]]\nname = "led-small"\ncheckpoint = "{tiny_checkpoints["led"]}"\nformats = ["eager"]\n'
        "[load]\ninput_lengths = [1024, 2048, 3072, 4096]\nconcurrency = [1, 2, 4, 8]\n"
        "stage_seconds = 1\nidle_seconds = 0\n"
    )
    return directory


def test_report_and_resume_refuse_a_damaged_middle_line_and_change_nothing(run_dir: Path) -> None:
    results = run_dir / "results.jsonl"
    before = _damage(results, 5)
    _assert_refused(_profiler("report", str(run_dir)), results, 5)
    assert not (run_dir / "report.md").exists()
    _assert_refused(_profiler("sweep", "--resume", str(run_dir)), results, 5)
    assert results.read_bytes() == before
    assert not (run_dir / "environment.json").exists()  # refused before anything ran


def test_a_torn_last_line_is_the_only_line_skipped(run_dir: Path) -> None:
    results = run_dir / "results.jsonl"
    with results.open("a", encoding="utf-8") as handle:
        handle.write(DAMAGED.rstrip("\n"))  # a writer killed mid-line
    before = results.read_bytes()
    report = _profiler("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    summary = (run_dir / "summary.csv").read_text(encoding="utf-8").splitlines()
    assert len(summary) == 1 + 16  # the header and every recorded cell
    assert results.read_bytes() == before  # reading cuts nothing; only a resume's store does


def test_report_refuses_a_damaged_accuracy_line(run_dir: Path) -> None:
    accuracy = run_dir / "accuracy.jsonl"
    scores = [
        AccuracyRecord(
            model="led-small", format="onnx", input_length=1024, task="qasper", score=s, metrics={}, count=8
        )
        for s in range(3)
    ]
    accuracy.write_text("".join(score.model_dump_json() + "\n" for score in scores), encoding="utf-8")
    before = _damage(accuracy, 2)
    _assert_refused(_profiler("report", str(run_dir)), accuracy, 2)
    assert accuracy.read_bytes() == before


def _target() -> EvalTarget:
    return EvalTarget(
        "led-small",
        "onnx",
        lambda inputs: [],
        tokenizer=None,
        global_attention="first",
        decoding=DecodingConfig(),
    )


def _score(value: float) -> TaskScore:
    return TaskScore("qasper", {"f1": value}, value, 8, 12.0)


def test_record_accuracy_cuts_a_torn_last_line_then_appends(tmp_path: Path) -> None:
    path = record_accuracy(tmp_path, _target(), 1024, _score(10.0))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"model": "led-small", "sco')  # an eval killed mid-write
    record_accuracy(tmp_path, _target(), 2048, _score(20.0))
    assert [(r.input_length, r.score) for r in RunDirectory(tmp_path).accuracy.read()] == [
        (1024, 10.0),
        (2048, 20.0),
    ]
    assert path.read_bytes().endswith(b"\n")


def test_record_accuracy_refuses_a_damaged_file_and_keeps_the_score_in_the_message(tmp_path: Path) -> None:
    for score in (1.0, 2.0, 3.0):
        record_accuracy(tmp_path, _target(), 1024, _score(score))
    before = _damage(tmp_path / "accuracy.jsonl", 2)
    with pytest.raises(AccuracyError, match=r"^qasper score 42\.0000 was not recorded: .*line 2 is damaged"):
        record_accuracy(tmp_path, _target(), 1024, _score(42.0))
    assert (tmp_path / "accuracy.jsonl").read_bytes() == before


def test_record_accuracy_needs_an_existing_run_directory(tmp_path: Path) -> None:
    with pytest.raises(AccuracyError, match="no such directory"):
        record_accuracy(tmp_path / "typo", _target(), 1024, _score(1.0))
    assert not (tmp_path / "typo").exists()
