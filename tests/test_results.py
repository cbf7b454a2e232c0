from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.results import RecordsError, ResultStore, fingerprint, read_records


def test_records_append_and_read_back(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "run")
    assert store.open() == []
    store.append({"cell": "a", "latency_ms": [1.5, 2.25]})
    store.append({"cell": "b", "value": None})
    assert [r["cell"] for r in read_records(store.path)] == ["a", "b"]
    assert store.path.read_text().count("\n") == 2


def test_a_torn_last_line_is_dropped_and_cut_off(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.open()
    store.append({"cell": "a"})
    with store.path.open("a") as handle:
        handle.write('{"cell": "b", "latency_ms": [1, 2')  # killed mid-write
    assert [r["cell"] for r in read_records(store.path)] == ["a"]
    assert [r["cell"] for r in store.open()] == ["a"]
    store.append({"cell": "c"})
    assert [r["cell"] for r in read_records(store.path)] == ["a", "c"]


def test_kill_9_mid_run_loses_no_recorded_line(tmp_path: Path) -> None:
    """A writer killed with SIGKILL while appending leaves only whole records."""
    script = (
        "import sys; from pathlib import Path; from profiler.results import ResultStore\n"
        "store = ResultStore(Path(sys.argv[1])); store.open()\n"
        "i = 0\n"
        "while True:\n"
        "    store.append({'cell': str(i), 'pad': 'x' * 5000}); i += 1\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    path = tmp_path / "results.jsonl"
    while not path.exists() or path.stat().st_size < 200_000:
        pass
    os.kill(process.pid, 9)
    process.wait()
    records = ResultStore(tmp_path).open()
    assert [r["cell"] for r in records] == [str(i) for i in range(len(records))]
    assert len(records) > 10
    assert path.read_bytes().endswith(b"\n")


def test_fingerprint_names_the_machine_and_the_code() -> None:
    print_ = fingerprint()
    assert print_["cpu"]
    assert print_["cpu_count"] >= 1
    assert print_["gpus"] == []  # no GPU on the development machines
    assert "torch" in print_["packages"]
    assert print_["git_commit"] is None or len(print_["git_commit"].split("-")[0]) == 40
    json.dumps(print_)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b'{"cell": "4", "latency_ms": [1, 2\n', "not JSON"),
        (b"\n", "not JSON"),
        (b"\xff\xfe{}\n", "not UTF-8"),
        (b"[1, 2]\n", "a JSON list, not an object"),
    ],
    ids=["torn-mid-file", "blank", "binary", "not-an-object"],
)
def test_a_damaged_line_before_the_last_is_refused_and_nothing_is_cut(
    tmp_path: Path, bad: bytes, why: str
) -> None:
    store = ResultStore(tmp_path)
    for cell in range(16):
        store.append({"cell": str(cell)})
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines[4] = bad
    store.path.write_bytes(b"".join(lines))
    before = store.path.read_bytes()
    message = rf"results\.jsonl line 5 is damaged \({why}.*left unchanged"
    with pytest.raises(RecordsError, match=message):
        read_records(store.path)
    with pytest.raises(RecordsError, match=message):
        store.open()
    assert store.path.read_bytes() == before
