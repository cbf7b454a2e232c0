"""Precision as a dimension: ``profiler export --precision``, reduced-precision parity, serving an
int8 artifact, and the refusals (fp16/bf16 without CUDA, a precision a format cannot hold, a bound
outside 0..1), each one line with exit status 2."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporters.export import ExportError, export
from exporters.parity import parity_cases, token_agreement
from profiler.artifact import ONNX_WEIGHTS, TORCHSCRIPT_MODULE, Manifest
from profiler.cli import app
from profiler.client import ServerClient
from profiler.server.launch import start_server

NO_CUDA = not torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(
    NO_CUDA, reason="fp16 and bf16 export and run only on CUDA; this machine has none"
)


def _export_cli(tmp_path: Path, checkpoint: Path, *args: str) -> tuple[int, str]:
    """Exit status and output, stripped of the blank line the (transient) progress display leaves."""
    result = CliRunner().invoke(app, ["export", str(checkpoint), "-o", str(tmp_path / "out"), *args])
    return result.exit_code, result.output.strip()


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize(
    "args", [["--precision", "fp16"], ["--precision", "bf16", "--format", "torchscript"]]
)
def test_half_precision_without_cuda_is_refused_in_one_line(
    args: list[str], tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    code, output = _export_cli(tmp_path, tiny_checkpoints["led"], *args)
    assert code == 2
    assert output.startswith(f"error: --precision {args[1]} needs CUDA, which this machine does not have (")
    assert output.endswith(
        "); export --precision fp32 or int8 here, or on a machine with an NVIDIA GPU and a CUDA build "
        "of torch."
    )
    assert "\n" not in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--precision", "bf16", "--format", "onnx"],
            "error: --precision bf16: precision bf16 is not available for format onnx; it exports to "
            "torchscript.",
        ),
        (
            ["--min-token-agreement", "0.5"],
            "error: --min-token-agreement applies to --precision fp16, bf16 or int8; fp32 must match "
            "transformers' tokens exactly. Drop it, or choose a reduced precision.",
        ),
        (
            ["--precision", "int8", "--min-token-agreement", "1.5"],
            "error: --min-token-agreement 1.5: give a fraction from 0 to 1, e.g. 0.9.",
        ),
    ],
)
def test_bad_precision_arguments_are_refused_in_one_line(
    args: list[str], message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    code, output = _export_cli(tmp_path, tiny_checkpoints["led"], *args)
    assert (code, output) == (2, message)
    assert not (tmp_path / "out").exists()


def test_a_misspelled_precision_is_refused_by_the_cli(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    code, output = _export_cli(tmp_path, tiny_checkpoints["led"], "--precision", "int4")
    assert code == 2
    assert "'int4' is not one of 'fp32', 'fp16', 'bf16', 'int8'" in " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("expected", "produced", "same"),
    [
        ([2, 5, 6, 7], [2, 5, 6, 7], (4, 4)),
        ([2, 5, 6, 7], [2, 5, 9, 7], (3, 4)),
        ([2, 5, 6, 7], [2, 5], (2, 4)),
    ],
)
def test_token_agreement_counts_positions(
    expected: list[int], produced: list[int], same: tuple[int, int]
) -> None:
    assert token_agreement(np.array(expected), np.array(produced)) == same


@pytest.fixture(scope="module")
def int8_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]) -> Path:
    """The tiny LED in int8 ONNX at 1024 and 2048 tokens, every parity case recorded (bound 0)."""
    out = tmp_path_factory.mktemp("int8") / "led-onnx-int8"
    export(
        tiny_checkpoints["led"],
        "onnx",
        out,
        lengths=[1024, 2048],
        batch_sizes=[1, 2],
        precision="int8",
        min_token_agreement=0.0,
    )
    return out


@pytest.mark.integration
def test_int8_onnx_exports_records_parity_and_shrinks_the_linear_weights(int8_onnx: Path) -> None:
    manifest = Manifest.read(int8_onnx)
    assert (manifest.precision, manifest.min_token_agreement) == ("int8", 0.0)
    cases = [(case.lengths, case.global_tokens) for case in manifest.parity]
    assert cases == parity_cases([1024, 2048], [1, 2], manifest.layout)
    for case in manifest.parity:
        assert 0.0 <= case.token_agreement <= 1.0
        assert case.passed
        assert case.max_abs_diff > 0  # quantized: not the fp32 graphs
        assert case.tokens_match == (case.token_agreement == 1.0)
    # The MatMul weights at a byte each, the embedding (Gather and the tied logits) still fp32:
    # below the fp32 parameters' bytes, each weight once.
    assert manifest.file_sizes[ONNX_WEIGHTS] < manifest.weight_bytes
    assert not (int8_onnx / "fp32").exists()
    assert sorted(path.name for path in int8_onnx.glob("*.data")) == []  # all in the one weights file


@pytest.mark.integration
def test_reduced_precision_is_refused_below_the_bound(
    int8_onnx: Path, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    lowest = min(case.token_agreement for case in Manifest.read(int8_onnx).parity)
    if lowest == 1.0:
        pytest.skip("int8 gave fp32's tokens in every case on this CPU: no bound to fall below")
    out = tmp_path / "refused"
    with pytest.raises(ExportError) as info:
        export(
            tiny_checkpoints["led"],
            "onnx",
            out,
            lengths=[1024, 2048],
            batch_sizes=[1, 2],
            precision="int8",
            min_token_agreement=min(1.0, lowest + 1e-6),
        )
    assert "parity failed at length(s)" in str(info.value)
    assert "FAIL (token agreement >= " in str(info.value)
    assert "Lower --min-token-agreement" in str(info.value)
    assert not out.exists()


@pytest.mark.integration
def test_an_int8_onnx_artifact_serves_and_says_so(int8_onnx: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = start_server(int8_onnx, log=log)
    try:
        with ServerClient(server.url) as client:
            info = client.info()
            answer = client.generate([5] * 300, 8)
        assert info.precision == "int8"
        assert info.manifest is not None
        assert info.manifest.precision == "int8"
        assert answer.text is not None
    finally:
        server.stop()
    (ready,) = [line for line in log.read_text().splitlines() if line.startswith("ready: ")]
    assert "(format onnx int8, engine ONNX Runtime" in ready


@pytest.mark.integration
def test_int8_torchscript_exports_with_quantized_linear_layers(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    out = tmp_path / "ts-int8"
    manifest = export(
        tiny_checkpoints["led"], "torchscript", out, lengths=[1024], precision="int8", min_token_agreement=0.0
    )
    assert manifest.precision == "int8"
    assert all(0.0 <= case.token_agreement <= 1.0 for case in manifest.parity)
    with warnings.catch_warnings():  # TorchScript is deprecated upstream, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(out / TORCHSCRIPT_MODULE))
    assert "quantized" in str(module.encoder.graph)


@NEEDS_CUDA
@pytest.mark.integration
@pytest.mark.parametrize(
    ("fmt", "precision"), [("onnx", "fp16"), ("torchscript", "fp16"), ("torchscript", "bf16")]
)
def test_half_precision_exports_and_runs_on_cuda(
    fmt: str, precision: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    out = tmp_path / f"{fmt}-{precision}"
    manifest = export(
        tiny_checkpoints["led"], fmt, out, lengths=[1024], precision=precision, min_token_agreement=0.0
    )
    assert manifest.precision == precision
    assert all(0.0 <= case.token_agreement <= 1.0 for case in manifest.parity)
