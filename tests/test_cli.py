from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner, Result

from profiler.cli import app
from profiler.energy.contention import DISTURBED_SHARE
from profiler.rundir import RunDirectory
from profiler.workload import load_jsonl, token_count


def invoke(args: list[str]) -> Result:
    """Run the CLI in-process as the installed ``profiler`` command would."""
    return CliRunner().invoke(app, args, prog_name="profiler")


SUBCOMMANDS = [
    [],
    ["checkpoints"],
    ["checkpoints", "build"],
    ["workload"],
    ["workload", "check"],
    ["workload", "synth"],
    ["workload", "sample"],
    ["demo"],
    ["export"],
    ["serve"],
    ["sweep"],
    ["report"],
    ["eval"],
    ["doctor"],
]


@pytest.mark.integration
def test_console_script_is_installed() -> None:
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "profiler"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("checkpoints", "workload", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=lambda a: " ".join(a) or "profiler")
def test_every_command_has_help(args: list[str]) -> None:
    result = invoke([*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: profiler" in result.output


def test_checkpoints_build_prints_parameters_and_directory(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    result = invoke(["checkpoints", "build", "--arch", "led", "--size", "tiny", "-o", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert "parameters" in result.output
    assert str(out.resolve()) in result.output.replace("\n", "")
    assert config["model_type"] == "led"


def test_checkpoints_build_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke(["checkpoints", "build", "--arch", "led", "--size", "tiny", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_checkpoints_build_rejects_an_unknown_arch(tmp_path: Path) -> None:
    result = invoke(["checkpoints", "build", "--arch", "t5", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "led" in result.output
    assert "bigbird-pegasus" in result.output


def test_workload_synth_then_check(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "synth.jsonl"
    checkpoint = tiny_checkpoints["bigbird-pegasus"]
    result = invoke(
        [
            "workload",
            "synth",
            "--tokenizer",
            str(checkpoint),
            "--lengths",
            "100,1024",
            "--count",
            "2",
            "--style",
            "qa",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    records = load_jsonl(out)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert [token_count(tokenizer, r.input) for r in records] == [100, 100, 1024, 1024]
    checked = invoke(["workload", "check", str(out), "--tokenizer", str(checkpoint)])
    assert checked.exit_code == 0, checked.output
    assert "4 rows, 4 examples" in checked.output
    assert "min 100" in checked.output
    assert "max 1024" in checked.output


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ("1024,abc", '--lengths: "abc" is not a positive whole number'),
        ("0", '--lengths: "0" is not a positive whole number'),
        (",", '--lengths: "," has an empty item'),
    ],
)
def test_workload_synth_rejects_bad_lengths(
    lengths: str, message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    result = invoke(
        [
            "workload",
            "synth",
            "--tokenizer",
            str(tiny_checkpoints["led"]),
            "--lengths",
            lengths,
            "-o",
            str(tmp_path / "x.jsonl"),
        ],
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_workload_check_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "pid": "1_0", "input": "doc", "output": "x"}\n{"id": "2"}\n')
    result = invoke(["workload", "check", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output.replace("\n", "")
    assert "missing field" in result.output


def test_workload_sample_writes_the_shipped_set(tmp_path: Path) -> None:
    out = tmp_path / "sample.jsonl"
    result = invoke(["workload", "sample", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(load_jsonl(out)) == 8


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    result = invoke(
        [
            "demo",
            "--workdir",
            str(tmp_path / "build"),
            "--output-dir",
            str(tmp_path / "reports"),
            "--lengths",
            "1024",
            "--stage-seconds",
            "1",
            "--formats",
            "eager,onnx,torchscript",
        ]
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "reports").glob("demo-*")
    records = RunDirectory(run_dir).results.read()
    cells = {(r.model, r.format, r.load.concurrency) for r in records}
    assert cells == {
        (f"{arch}-small", fmt, users)
        for arch in ("led", "bigbird-pegasus")
        for fmt in ("eager", "onnx", "torchscript")
        for users in (1, 4)
    }
    assert all(r.stage.requests > 0 and r.stage.failures == 0 for r in records)
    # Each stage ran until it had the demo's minimum of requests, or reached its cap and is marked
    # so (a busy machine slows eager and TorchScript down that far: its cells are flagged disturbed).
    short = [r for r in records if not r.stage.enough_requests]
    assert all(r.stage.end_reason == "cap" for r in short)
    if short:
        assert " few" in result.output
    assert {r.stage.energy_source for r in records} == {"estimate"}
    assert "J/query" in result.output
    assert all(len(r.stage.ttft_ms) == len(r.stage.latency_ms) for r in records)  # streamed
    assert "Where the time goes" in result.output
    assert "TTFT" in result.output
    (search,) = RunDirectory(run_dir).capacity.read()
    assert (search.model, search.format, search.capacity.length) == ("led-small", "onnx", 1024)
    assert search.capacity.probes


@pytest.mark.e2e
@pytest.mark.slow
def test_a_quick_demo_run_twice_exports_once(tmp_path: Path) -> None:
    """`demo --quick` measures LED at 1024 and 4096 tokens with one user; a second demo serves the
    first one's export from the cache (the checkpoint is rebuilt byte for byte) instead of exporting."""
    reports = tmp_path / "reports"
    args = ["demo", "--quick", "--formats", "onnx", "--stage-seconds", "1"]
    args += ["--workdir", str(tmp_path / "build"), "--output-dir", str(reports)]
    first = invoke(args)
    assert first.exit_code == 0, first.output
    assert "exporting led-small to onnx (buckets [1024, 4096], parity at batch 1 and 4) into " in first.output
    second = invoke(args)
    assert second.exit_code == 0, second.output
    (export,) = (reports / ".artifacts").iterdir()
    assert f"reusing the onnx export of led-small from {export} (same checkpoint sha256 " in second.output
    assert "exporting" not in second.output
    runs = sorted(reports.glob("demo-*"))
    assert len(runs) == 2
    for run_dir in runs:
        records = RunDirectory(run_dir).results.read()
        cells = {(r.model, r.format, r.load.concurrency, r.bucket) for r in records}
        assert cells == {("led-small", "onnx", 1, 1024), ("led-small", "onnx", 1, 4096)}
        assert all(r.stage.requests > 0 and r.stage.failures == 0 for r in records)
        assert not RunDirectory(run_dir).capacity.path.exists()  # no search in a quick demo
        assert {path.name for path in run_dir.iterdir() if path.is_dir()} == set()  # no export inside


def test_doctor_prints_what_it_would_measure_with_and_exits_by_its_verdict() -> None:
    import onnxruntime
    import torch

    result = invoke(["doctor", "--seconds", "0.5"])
    lines = result.stdout.splitlines()
    assert lines[0].startswith("energy: estimate: CPU seconds")  # no GPU or readable RAPL here
    assert any(line.startswith("  skipped nvml: ") for line in lines)  # and why not
    (ort,) = [line for line in lines if line.startswith("onnxruntime ")]
    assert ", ".join(onnxruntime.get_available_providers()) in ort
    assert f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()}, " in result.stdout
    assert "OMP_NUM_THREADS=" in result.stdout
    assert "OMP_WAIT_POLICY=" in result.stdout
    verdict = lines[-1]
    assert verdict.startswith(("machine: quiet: others used ", "machine: BUSY: others used "))
    assert result.exit_code == (0 if verdict.startswith("machine: quiet") else 1)


def test_doctor_says_busy_and_exits_1_beside_a_cpu_burner(cpu_burner: psutil.Process) -> None:
    started, before = time.monotonic(), cpu_burner.cpu_times()
    result = invoke(["doctor", "--seconds", "1"])
    elapsed, after = time.monotonic() - started, cpu_burner.cpu_times()
    cpus = os.cpu_count() or 1
    share = ((after.user + after.system) - (before.user + before.system)) / elapsed / cpus
    if share <= 2 * DISTURBED_SHARE:
        pytest.skip(f"the burner got {share:.0%} of the machine: too little to judge by")
    assert result.exit_code == 1, result.stdout
    assert result.stdout.splitlines()[-1].startswith("machine: BUSY: others used ")


def test_doctor_refuses_a_sample_too_short_to_judge() -> None:
    result = invoke(["doctor", "--seconds", "0"])
    assert result.exit_code == 2
    assert "--seconds" in result.output
