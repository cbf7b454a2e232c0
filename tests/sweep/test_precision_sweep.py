"""A real sweep of the tiny LED in ONNX at fp32 and int8: two exports, two servers, records and
accuracy scores that carry their precision under distinct cells, and a report that shows int8 as
its own series."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from profiler.rundir import RunDirectory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: The shipped sample set: SCROLLS rows with references, to score on.
SAMPLE = Path(__file__).parents[2] / "profiler" / "data" / "sample.jsonl"


def test_a_sweep_over_precisions_records_and_reports_each(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    profiler = str(Path(sys.executable).parent / "profiler")
    config = tmp_path / "sweep.toml"
    # A random-weight model's int8 tokens drift from fp32's (docs/exporting.md): a bound of 0.5.
    config.write_text(
        'run_id = "precisions"\noutput_dir = "reports"\n'
        f'[[models]]\nname = "tiny-led"\ncheckpoint = "{tiny_checkpoints["led"]}"\n'
        'formats = ["onnx"]\nprecisions = ["fp32", "int8"]\nmin_token_agreement = 0.5\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\nstage_seconds = 1\nidle_seconds = 0.5\n"
        "min_requests = 3\nstability = 0\nwarmup_seconds = 0\nmax_new_tokens = 4\n"
        f'[accuracy]\ndataset = "{SAMPLE}"\ntask = "qasper"\nmax_new_tokens = 4\n'
    )
    dry = subprocess.run(
        [profiler, "sweep", "--dry-run", str(config)], capture_output=True, text=True, check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert "  tiny-led: onnx, onnx int8 (" in dry.stdout
    assert "matrix: 2 model x format x precision pair(s)" in dry.stdout

    sweep = subprocess.run(
        [profiler, "sweep", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    run_dir = tmp_path / "reports" / "precisions"
    records = RunDirectory(run_dir).results.read()
    assert sorted((r.cell, r.format, r.precision) for r in records) == [
        ("tiny-led|onnx int8|closed:1|repeat 1|1024", "onnx", "int8"),
        ("tiny-led|onnx|closed:1|repeat 1|1024", "onnx", "fp32"),
    ]
    scores = RunDirectory(run_dir).accuracy.read()
    assert sorted((s.format, s.precision, s.input_length) for s in scores) == [
        ("onnx", "fp32", 1024),
        ("onnx", "int8", 1024),
    ]
    exports = sorted(path.name.rsplit("-", 1)[0] for path in (tmp_path / "reports" / ".artifacts").iterdir())
    assert exports == ["tiny-led-onnx", "tiny-led-onnx-int8"]

    report = subprocess.run(
        [profiler, "report", str(run_dir)], capture_output=True, text=True, timeout=180, check=False
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    text = (run_dir / "report.md").read_text()
    assert "| onnx int8 |" in text
    assert "| onnx |" in text
    # Each precision's score beside its own cost in the seed-study table.
    seed = text[text.index("Accuracy and cost") :]
    assert "| onnx int8 |" in seed
