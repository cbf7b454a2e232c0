"""`profiler sweep --init` writes the example config (examples/sweep.toml is that file and parses);
`profiler sweep --dry-run` prints the matrix and a time range and starts and writes nothing; a
sweep names the report command to run next."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from profiler.checkpoints import DEMO_WORKDIR
from profiler.cli import app
from profiler.sweep.config import load_config
from profiler.sweep.dryrun import duration

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "examples" / "sweep.toml"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], prog_name="profiler")


def _demo_tree(root: Path, led: Path) -> None:
    """``root/build/demo/led-small``: where the example expects the demo's LED."""
    (root / DEMO_WORKDIR).mkdir(parents=True)
    shutil.copytree(led, root / DEMO_WORKDIR / "led-small")


def test_examples_sweep_toml_is_what_init_writes_and_it_parses(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _demo_tree(tmp_path, tiny_checkpoints["led"])
    monkeypatch.chdir(tmp_path)
    result = invoke("sweep", "--init", "examples/sweep.toml")
    assert result.exit_code == 0, result.output
    written = tmp_path / "examples" / "sweep.toml"
    assert written.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")

    config = load_config(written)  # from the repository's root, as `profiler sweep examples/sweep.toml`
    assert config.models[0].checkpoint == (tmp_path / DEMO_WORKDIR / "led-small").resolve()
    assert config.output_dir == (tmp_path / "reports").resolve()
    assert config.run_id is None
    assert config.models[0].formats == ("eager", "onnx", "torchscript")
    assert config.load.levels() == [("closed", 1.0), ("closed", 4.0)]


def test_init_writes_a_config_that_parses_where_it_is_asked_and_never_over_a_file(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _demo_tree(tmp_path, tiny_checkpoints["led"])
    monkeypatch.chdir(tmp_path)
    result = invoke("sweep", "--init")
    assert result.exit_code == 0, result.output
    assert "profiler sweep --dry-run sweep.toml" in result.output
    text = (tmp_path / "sweep.toml").read_text(encoding="utf-8")
    assert 'checkpoint = "build/demo/led-small"' in text
    assert "# [capacity]" in text  # commented: the example explains, the user chooses
    assert load_config(tmp_path / "sweep.toml").models[0].name == "led-small"

    again = invoke("sweep", "--init")
    assert again.exit_code == 2
    assert "sweep.toml already exists; give --init another path, or remove it first." in again.output
    assert (tmp_path / "sweep.toml").read_text(encoding="utf-8") == text


def _config(tmp_path: Path, led: Path, capacity: str = "", run_id: str | None = "plan") -> Path:
    path = tmp_path / ("sweep.toml" if run_id else "timestamped.toml")
    path.write_text(
        (f'run_id = "{run_id}"\n' if run_id else "")
        + f'[[models]]\nname = "a"\ncheckpoint = "{led}"\nformats = ["eager", "onnx"]\n'
        f'[[models]]\nname = "b"\ncheckpoint = "{led}"\nformats = ["torchscript"]\n'
        "[load]\ninput_lengths = [1024, 2048, 4096]\nconcurrency = [1, 2]\nrepeats = 2\n"
        "stage_seconds = 5\nmax_stage_seconds = 20\nwarmup_seconds = 1\nidle_seconds = 3\n" + capacity,
        encoding="utf-8",
    )
    return path


def test_dry_run_prints_the_matrix_and_time_range_and_starts_nothing(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = _config(tmp_path, tiny_checkpoints["led"])
    result = invoke("sweep", "--dry-run", config)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    run_dir = tmp_path / "reports" / "plan"
    assert lines[0] == f"dry run: nothing is exported, started or written; the run directory: {run_dir}"
    timestamped = invoke("sweep", "--dry-run", _config(tmp_path, tiny_checkpoints["led"], run_id=None))
    assert timestamped.exit_code == 0, timestamped.output
    assert re.search(r"the run directory: .*/reports/\d{8}-\d{6}$", timestamped.output.splitlines()[0])
    assert "  a: eager, onnx (" in result.output
    assert "  b: torchscript (" in result.output
    pairs, levels, lengths, repeats = 3, 2, 3, 2
    runs = pairs * levels * repeats
    assert (
        f"matrix: {pairs} model x format pair(s) x {levels} load level(s) (closed 1, closed 2) x {lengths} "
        f"input length(s) (1024, 2048, 4096) x {repeats} repeat(s)"
    ) in lines
    assert f"cells to measure: {runs * lengths} ({runs} locust run(s), {pairs} server(s))" in lines
    assert "capacity searches: none" in lines
    low = pairs * 3 + runs * lengths * (5 + 1)  # idle per server; stage + warm-up per stage
    high = pairs * 3 + runs * lengths * (20 + 1)
    (estimate,) = [line for line in lines if line.startswith("estimated time: ")]
    assert estimate.startswith(f"estimated time: {duration(low)} to {duration(high)} (")
    assert not (tmp_path / "reports").exists()

    run_dir.mkdir(parents=True)  # a run already holds its run_id: the dry run says so, as the run would
    (run_dir / "config.toml").write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    taken = invoke("sweep", "--dry-run", config)
    assert taken.exit_code == 2
    said = " ".join(taken.output.split())
    assert f"{run_dir} already holds a run; resume it with --resume {run_dir}" in said


def test_dry_run_counts_capacity_searches_and_their_probe_cap(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    capacity = (
        '[capacity]\nmodels = ["a"]\nformats = ["onnx"]\ninput_lengths = [1024, 4096]\n'
        "latency_ms = 500\nmax_probes = 4\n"
    )
    config = _config(tmp_path, tiny_checkpoints["led"], capacity)
    result = invoke("sweep", "--dry-run", config)
    assert result.exit_code == 0, result.output
    searches = 2 * 2  # two lengths, two repeats
    assert (
        f"capacity searches: {searches} (a/onnx at 1024, 4096 tokens; at most 4 probes each)" in result.output
    )
    runs, lengths = 3 * 2 * 2, 3
    low = 3 * 3 + runs * lengths * 6 + searches * 6
    high = 3 * 3 + runs * lengths * 21 + searches * 4 * 21
    assert f"estimated time: {duration(low)} to {duration(high)} (" in result.output
    assert (duration(4 * 60 + 9), duration(3600 + 120), duration(45)) == ("4m 09s", "1h 02m", "45s")


def test_dry_run_of_a_resume_counts_only_what_is_left(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = _config(tmp_path, tiny_checkpoints["led"])
    run_dir = tmp_path / "reports" / "plan"
    run_dir.mkdir(parents=True)
    shutil.copyfile(config, run_dir / "config.toml")
    before = sorted(os.listdir(run_dir))
    result = invoke("sweep", "--dry-run", "--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert "cells to measure: 36 (12 locust run(s), 3 server(s))" in result.output
    assert sorted(os.listdir(run_dir)) == before  # read, not opened for appending


def test_dry_run_names_the_accuracy_it_will_score(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    (tmp_path / "eval.jsonl").write_text("")
    accuracy = '[accuracy]\ndataset = "eval.jsonl"\ntask = "qasper"\ninput_lengths = [1024, 4096]\n'
    result = invoke("sweep", "--dry-run", _config(tmp_path, tiny_checkpoints["led"], accuracy))
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        "accuracy: qasper on eval.jsonl at 1024, 4096 tokens, each model and format on its live server"
        in said
    )
