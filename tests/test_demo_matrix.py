"""`profiler demo --quick / --models / --formats` choose the matrix: the config the demo writes,
read back as the sweep reads it (the sweep itself is the e2e test's, in tests/test_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from profiler import checkpoints
from profiler.cli import app
from profiler.demo import EVAL_EXAMPLES, EVAL_SEED, EVAL_SET
from profiler.rundir import RunDirectory
from profiler.sweep.config import SweepConfig, load_config
from profiler.sweep.runner import Sweep
from profiler.synthetic import TASK
from profiler.workload import load_jsonl


@pytest.fixture
def demo_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs `profiler demo ARGS` up to its sweep and returns the config the sweep was given; the
    checkpoints are built tiny (random) instead of the trained small ones, to keep this quick."""
    swept: list[SweepConfig] = []

    def build_tiny(arch: str, out: Path, overwrite: bool = False) -> Path:
        return checkpoints.build_checkpoint(arch, "tiny", out, overwrite=overwrite).path

    def record(self: Sweep) -> int:
        swept.append(self.config)
        return 0

    monkeypatch.setattr("profiler.demo.write_trained_checkpoint", build_tiny)
    monkeypatch.setattr(Sweep, "run", record)
    monkeypatch.setattr("profiler.report.render_report", lambda *args: None)

    def run(*args: str) -> SweepConfig:
        workdir, reports = tmp_path / "build", tmp_path / "reports"
        result = CliRunner().invoke(
            app,
            ["demo", "--workdir", str(workdir), "--output-dir", str(reports), *args],
            prog_name="profiler",
        )
        assert result.exit_code == 0, result.output
        (config,) = swept
        swept.clear()
        (run_dir,) = [path for path in reports.iterdir() if path.name.startswith("demo-")]
        assert load_config(RunDirectory(run_dir).config) == load_config(workdir / "sweep.toml")
        run_dir.rename(tmp_path / f"done-{len(list(tmp_path.iterdir()))}")
        return config

    return run


def _matrix(config: SweepConfig) -> set[tuple[str, str]]:
    return {(model.name, fmt) for model in config.models for fmt in model.formats}


def test_quick_is_led_at_the_shortest_and_longest_length_with_one_user(demo_config: Any) -> None:
    config = demo_config("--quick")
    assert _matrix(config) == {("led-small", fmt) for fmt in ("eager", "onnx")}
    assert config.load.input_lengths == (1024, 4096)
    assert config.load.levels() == [("closed", 1.0)]
    assert (config.load.stage_seconds, config.load.max_stage_seconds) == (3, 15)
    assert config.capacity is None


def test_models_and_formats_cut_the_full_matrix(demo_config: Any) -> None:
    full = demo_config()
    assert _matrix(full) == {
        (f"{arch}-small", fmt) for arch in ("led", "bigbird-pegasus") for fmt in ("eager", "onnx")
    }
    assert (full.load.input_lengths, full.load.concurrency) == ((1024, 2048, 3072, 4096), (1, 4))
    assert (full.load.stage_seconds, full.load.warmup_seconds, full.load.min_requests) == (3, 0.5, 20)
    assert full.capacity is not None
    assert (full.capacity.models, full.capacity.formats, full.capacity_lengths()) == (
        ("led-small",),
        ("onnx",),
        (1024, 4096),
    )

    cut = demo_config("--models", "bigbird-pegasus", "--formats", "torchscript,eager", "--lengths", "2048")
    assert _matrix(cut) == {("bigbird-pegasus-small", "torchscript"), ("bigbird-pegasus-small", "eager")}
    assert cut.capacity is not None  # no ONNX: the first format given is searched
    assert (cut.capacity.models, cut.capacity.formats, cut.capacity_lengths()) == (
        ("bigbird-pegasus-small",),
        ("torchscript",),
        (2048,),
    )

    everything = demo_config("--formats", "eager,onnx,torchscript")
    assert {fmt for _, fmt in _matrix(everything)} == {"eager", "onnx", "torchscript"}

    quick = demo_config("--quick", "--formats", "onnx", "--models", "led,bigbird-pegasus")
    assert _matrix(quick) == {("led-small", "onnx"), ("bigbird-pegasus-small", "onnx")}
    assert (quick.load.input_lengths, quick.load.concurrency, quick.capacity) == ((1024, 4096), (1,), None)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--models",
            "led,gpt2",
            "--models 'led,gpt2': got gpt2; choose from led, bigbird-pegasus, comma-separated.",
        ),
        (
            "--formats",
            ",",
            "--formats ',': got nothing; choose from eager, onnx, torchscript, comma-separated.",
        ),
    ],
)
def test_an_unknown_model_or_format_is_refused_in_one_line(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--workdir", str(tmp_path / "b"), option, value], prog_name="profiler"
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"
    assert not (tmp_path / "b").exists()


def test_the_demo_writes_the_synthetic_tasks_eval_set_and_scores_every_model_on_it(
    demo_config: Any, tmp_path: Path
) -> None:
    demo_config("--quick")
    records = load_jsonl(tmp_path / "build" / EVAL_SET)
    assert len(records) == EVAL_EXAMPLES
    assert all(record.id.startswith(f"{TASK}-{EVAL_SEED}-") for record in records)
    # ... and scores every model and format on it, at every length, on the live servers.
    config = demo_config("--models", "led,bigbird-pegasus")
    assert config.accuracy is not None
    assert (config.accuracy.dataset, config.accuracy.task) == (
        (tmp_path / "build" / EVAL_SET).resolve(),
        TASK,
    )
    assert config.accuracy_lengths() == config.load.input_lengths
