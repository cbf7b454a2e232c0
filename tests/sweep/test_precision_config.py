"""``precisions`` in a sweep config: checked when the config is read, one line naming the field
and what works; each (model, format, precision) one run of cells named by its variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from profiler.errors import ConfigError
from profiler.sweep.config import parse_config
from profiler.sweep.dryrun import describe
from profiler.sweep.runner import Sweep, new_run_dir


def _config(checkpoint: Path, **model: Any) -> dict[str, object]:
    return {
        "run_id": "r1",
        "output_dir": "reports",
        "models": [{"name": "led", "checkpoint": str(checkpoint), **model}],
        "load": {"input_lengths": [1024], "concurrency": [1]},
    }


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"precisions": ["fp32", "int9"]},
            """models[0].precisions[1] = "int9": expected one of 'fp32', 'fp16', 'bf16' or 'int8'.""",
        ),
        (
            {"formats": ["onnx"], "precisions": ["bf16"]},
            """models[0]: precisions = ["bf16"]: precision bf16 is not available for format onnx; """
            "it exports to torchscript.",
        ),
        (
            {"min_token_agreement": 0.5},
            "models[0]: min_token_agreement applies to reduced precisions (fp16, bf16, int8); fp32 must "
            "match transformers' tokens exactly. Drop it, or add a reduced precision to precisions.",
        ),
        ({"precisions": []}, "models[0].precisions = []: expected at least 1 item(s)."),
    ],
)
def test_bad_precisions_are_refused_in_one_line(
    model: dict[str, Any], message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tiny_checkpoints["led"], **model), tmp_path)
    assert str(info.value) == message


def test_each_exported_format_runs_in_each_precision_and_eager_once(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = parse_config(
        _config(
            tiny_checkpoints["led"], formats=["eager", "onnx", "torchscript"], precisions=["fp32", "int8"]
        ),
        tmp_path,
    )
    runs = Sweep(config, tmp_path / "reports" / "r1", Console()).pending()
    assert [run.cell(1024) for run in runs] == [
        "led|eager|closed:1|repeat 1|1024",
        "led|onnx|closed:1|repeat 1|1024",
        "led|onnx int8|closed:1|repeat 1|1024",
        "led|torchscript|closed:1|repeat 1|1024",
        "led|torchscript int8|closed:1|repeat 1|1024",
    ]
    lines = describe(config, runs, "reports/r1")
    assert (
        f"  led: eager, onnx, onnx int8, torchscript, torchscript int8 ({tiny_checkpoints['led']})" in lines
    )
    assert any(line.startswith("matrix: 5 model x format x precision pair(s)") for line in lines)
    assert any("(5 locust run(s), 5 server(s))" in line for line in lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_half_precision_sweeps_are_refused_without_cuda_before_anything_is_written(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    config = parse_config(_config(tiny_checkpoints["led"], formats=["onnx"], precisions=["fp16"]), tmp_path)
    path = tmp_path / "sweep.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"^precisions fp16 need CUDA, which this machine does not have; "):
        new_run_dir(config, path)
    assert not (tmp_path / "reports").exists()
