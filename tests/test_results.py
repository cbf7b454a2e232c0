"""The records of a run: the append-only files, the typed records, the version-1 upgrade and the
environment fingerprint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.environment import Environment, fingerprint
from profiler.jsonl import RecordsError
from profiler.results import AccuracyRecord, ResultRecord, parse_result
from profiler.rundir import RunDirectory

RECORDED = Path(__file__).parent / "report" / "data"


def score(n: int, pad: str = "") -> AccuracyRecord:
    return AccuracyRecord(
        model=f"m{n}{pad}", format="onnx", input_length=1024, task="qasper", score=n, metrics={}, count=8
    )


def test_records_append_and_read_back(tmp_path: Path) -> None:
    store = RunDirectory(tmp_path / "run").accuracy
    assert store.open() == []
    store.append(score(1))
    store.append(score(2))
    assert store.read() == [score(1), score(2)]
    assert store.path.read_text().count("\n") == 2


def test_a_torn_last_line_is_dropped_and_cut_off(tmp_path: Path) -> None:
    store = RunDirectory(tmp_path).accuracy
    store.open()
    store.append(score(1))
    with store.path.open("a") as handle:
        handle.write('{"model": "m2", "score": [1, 2')  # killed mid-write
    assert store.read() == [score(1)]
    assert store.open() == [score(1)]
    store.append(score(3))
    assert store.read() == [score(1), score(3)]


@pytest.mark.integration
def test_kill_9_mid_run_loses_no_recorded_line(tmp_path: Path) -> None:
    """A writer killed with SIGKILL while appending leaves only whole records."""
    script = (
        "import sys; from pathlib import Path; from profiler.rundir import RunDirectory\n"
        "from tests.test_results import score\n"
        "store = RunDirectory(Path(sys.argv[1])).accuracy; store.open()\n"
        "i = 0\n"
        "while True:\n"
        "    store.append(score(i, 'x' * 5000)); i += 1\n"
    )
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root)
    path = tmp_path / "accuracy.jsonl"
    while not path.exists() or path.stat().st_size < 200_000:
        assert process.poll() is None, "the writer died on its own"
    os.kill(process.pid, 9)
    process.wait()
    records = RunDirectory(tmp_path).accuracy.open()
    assert [r.score for r in records] == list(range(len(records)))
    assert len(records) > 10
    assert path.read_bytes().endswith(b"\n")


def test_fingerprint_names_the_machine_and_the_code(tmp_path: Path) -> None:
    found = fingerprint()
    assert found.cpu
    assert found.cpu_count is not None
    assert found.cpu_count >= 1
    assert found.gpus == []  # no GPU on the development machines
    assert "torch" in found.packages
    assert found.git_commit is None or len(found.git_commit.split("-")[0]) == 40
    run = RunDirectory(tmp_path)
    run.write_environment(found)
    assert run.read_environment() == found


def test_an_environment_with_a_wrong_field_is_refused_naming_it(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.environment.write_text(json.dumps({**fingerprint().model_dump(), "cpu_count": "two"}))
    with pytest.raises(ValueError, match="cpu_count: Input should be a valid integer"):
        run.read_environment()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b'{"model": "m4", "score": [1, 2\n', "not JSON"),
        (b"\n", "not JSON"),
        (b"\xff\xfe{}\n", "not UTF-8"),
        (b"[1, 2]\n", "a JSON list, not an object"),
        (b'{"model": "m4"}\n', "not a valid AccuracyRecord: format: Field required; .*score: Field required"),
        (
            score(4).model_dump_json().replace('"count":8', '"count":true').encode() + b"\n",
            "not a valid AccuracyRecord: count: Input should be a valid integer",
        ),
        (
            (score(4).model_dump_json()[:-1] + ',"extra":1}\n').encode(),
            "not a valid AccuracyRecord: extra: Extra inputs",
        ),
    ],
    ids=["torn-mid-file", "blank", "binary", "not-an-object", "missing-field", "wrong-type", "unknown-field"],
)
def test_a_damaged_line_before_the_last_is_refused_and_nothing_is_cut(
    tmp_path: Path, bad: bytes, why: str
) -> None:
    store = RunDirectory(tmp_path).accuracy
    for n in range(16):
        store.append(score(n))
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines[4] = bad
    store.path.write_bytes(b"".join(lines))
    before = store.path.read_bytes()
    message = rf"accuracy\.jsonl line 5 is damaged \({why}.*left unchanged"
    with pytest.raises(RecordsError, match=message):
        store.read()
    with pytest.raises(RecordsError, match=message):
        store.open()
    assert store.path.read_bytes() == before


def test_a_real_version_1_file_is_upgraded_and_round_trips(tmp_path: Path) -> None:
    """The records a real `profiler demo` wrote before the records were typed (version 1)."""
    source = RECORDED / "demo-real" / "results.jsonl"
    raw = [json.loads(line) for line in source.read_text().splitlines()]
    assert {r["schema"] for r in raw} == {1}
    shutil.copytree(source.parent, tmp_path / "run")
    records = RunDirectory(tmp_path / "run").results.read()
    assert len(records) == len(raw) == 8
    for old, new in zip(raw, records, strict=True):
        assert new.schema_version == 2
        assert new.stage.latency_ms == old["stage"]["latency_ms"]
        assert new.stage.energy_source == old["energy_source"] == old["stage"]["energy_source"]
        assert new.stage.summary.model_dump() == old["stage"]["summary"]
        assert new.stage.gross_j_per_query == old["stage"]["gross_j_per_query"]
        assert new.timeline[0].t_monotonic_s == old["timeline"][0]["t_monotonic_s"]
        again = parse_result(json.loads(new.model_dump_json()))
        assert again == new
    appended = RunDirectory(tmp_path / "run").results
    appended.append(records[0])  # a resumed sweep appends version 2 to a version-1 file
    assert appended.read()[-1] == records[0]


def test_a_record_of_a_future_version_is_refused() -> None:
    with pytest.raises(RecordsError, match="schema version 3, and this profiler reads versions 1 and 2"):
        parse_result({"schema_version": 3})


def test_the_recorded_environments_are_environments() -> None:
    for name in ("demo-real", "cpu-demo", "gpu-h100"):
        found = RunDirectory(RECORDED / name).read_environment()
        assert isinstance(found, Environment)
    assert RunDirectory(RECORDED / "gpu-h100").read_environment().gpus[0].name == "NVIDIA H100 80GB HBM3"


def _kept(old: object, new: object) -> bool:
    """Whether ``new`` holds every field of ``old`` with its value (fields added since may follow)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return all(key in new and _kept(value, new[key]) for key, value in old.items())
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_kept(a, b) for a, b in zip(old, new, strict=True))
    return old == new


def test_result_records_round_trip_through_one_type() -> None:
    """Recorded lines read into one type and are written back with nothing lost or changed (the
    fields added since they were recorded are written with their defaults), and read again equal."""
    for name in ("cpu-demo", "gpu-h100"):
        for line in (RECORDED / name / "results.jsonl").read_text().splitlines():
            record = ResultRecord.model_validate_json(line)
            written = record.model_dump_json()
            assert _kept(json.loads(line), json.loads(written))
            assert ResultRecord.model_validate_json(written) == record


def test_a_record_that_would_not_read_back_is_not_written(tmp_path: Path) -> None:
    store = RunDirectory(tmp_path).accuracy
    store.append(score(1))
    before = store.path.read_bytes()
    with pytest.raises(
        RecordsError, match=r"would not read back was not written \(score: Input should be a valid number"
    ):
        store.append(score(2).model_copy(update={"score": float("nan")}))  # JSON writes NaN as null
    assert store.path.read_bytes() == before
    assert store.read() == [score(1)]
