from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from exporters.export import export
from profiler.cli import app
from profiler.server.launch import start_server
from profiler.workload import load_sample, write_jsonl

SAMPLE = Path(__file__).resolve().parents[1] / "profiler" / "data" / "sample.jsonl"


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(app, args, prog_name="profiler")


def test_eval_in_process_scores_and_records_beside_the_run(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    out = tmp_path / "predictions.json"
    run = tmp_path / "run"
    run.mkdir()
    result = invoke(
        [
            "eval",
            str(tiny_checkpoints["led"]),
            "--dataset",
            str(SAMPLE),
            "--task",
            "qasper",
            "--input-length",
            "512",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
            "--run",
            str(run),
        ]
    )
    assert result.exit_code == 0, result.output
    predictions = json.loads(out.read_text())
    assert set(predictions) == {record.id for record in load_sample()}
    line = json.loads((run / "accuracy.jsonl").read_text())
    assert (line["model"], line["format"], line["input_length"], line["task"]) == (
        "led",
        "eager",
        512,
        "qasper",
    )
    assert 0 <= line["score"] <= 100
    assert "f1" in result.output


@pytest.mark.integration
def test_eval_against_a_live_server(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    artifact = tmp_path / "onnx"
    export(tiny_checkpoints["bigbird-pegasus"], "onnx", artifact, lengths=[1024], skip_parity=True)
    # The remote and the in-process runs below are asked the same.
    same = [
        "--dataset",
        str(SAMPLE),
        "--task",
        "gov_report",
        "--max-new-tokens",
        "3",
        "--input-length",
        "1024",
    ]
    server = start_server(artifact, log=tmp_path / "serve.log")
    try:
        result = invoke(["eval", server.url, *same, "--batch-size", "4", "--out", str(tmp_path / "p.json")])
    finally:
        assert server.stop() == 0
    assert result.exit_code == 0, result.output
    assert "rouge/geometric_mean" in result.output
    remote = json.loads((tmp_path / "p.json").read_text())
    assert len(remote) == 8
    # Four requests in flight, batched by the server: each answer is still its own example's, as
    # the same artifact gives it in-process.
    local = invoke(["eval", str(artifact), *same, "--out", str(tmp_path / "local.json")])
    assert local.exit_code == 0, local.output
    assert json.loads((tmp_path / "local.json").read_text()) == remote


def test_a_predictions_file_is_scored_on_its_own(tmp_path: Path) -> None:
    records = load_sample()
    references = {record.id: record.output for record in records}
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(references))
    result = invoke(["eval", "--predictions", str(path), "--dataset", str(SAMPLE), "--task", "narrative_qa"])
    assert result.exit_code == 0, result.output
    assert "100.0000" in result.output


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        ({}, "no prediction for 8 of the 8 examples"),
        ({"sample-qa-4": 5}, "string"),
    ],
)
def test_bad_predictions_files_exit_2(tmp_path: Path, predictions: dict[str, object], message: str) -> None:
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    result = invoke(["eval", "--predictions", str(path), "--dataset", str(SAMPLE), "--task", "qasper"])
    assert result.exit_code == 2
    assert message in result.output


def test_eval_needs_a_target_or_predictions(tmp_path: Path) -> None:
    write_jsonl(load_sample()[:1], tmp_path / "one.jsonl")
    result = invoke(["eval", "--dataset", str(tmp_path / "one.jsonl"), "--task", "qasper"])
    assert result.exit_code == 2
    assert "give a TARGET" in result.output


def test_an_unknown_task_is_refused_before_the_model_runs(tmp_path: Path) -> None:
    result = invoke(["eval", str(tmp_path / "no-model"), "--dataset", str(SAMPLE), "--task", "squad"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown task 'squad'; choose one of: gov_report, summ_screen_fd, qmsum, qasper, "
        "narrative_qa, quality, contract_nli, synthetic_codes."
    )
