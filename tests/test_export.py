from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from typer.testing import CliRunner

import exporters.modules
from exporters.attention import sliding_window_bias
from exporters.export import GRAPH_STEPS, ExportError, checkpoint_sha256, export
from exporters.parity import check_parity, eager_generate, global_mask, parity_cases
from exporters.progress import ExportStep, case_label
from profiler.artifact import FORMATS, ONNX_WEIGHTS, SCHEMA_VERSION, TORCHSCRIPT_MODULE, Manifest
from profiler.checkpoints import ARCHS
from profiler.cli import app
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import generate
from profiler.engines.graphs import OnnxGraphs, TorchScriptGraphs, load_graphs
from profiler.modelinfo import DEFAULT_LENGTHS

BUCKETS = list(DEFAULT_LENGTHS)  # those of the `artifacts` fixture


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_passes_parity_at_every_bucket(
    arch: str, fmt: str, artifacts: dict[str, Path], tiny_checkpoints: dict[str, Path]
) -> None:
    directory = artifacts[f"{arch}-{fmt}"]
    manifest = Manifest.read(directory)
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.format == fmt
    assert manifest.buckets == BUCKETS
    assert manifest.source_sha256 == checkpoint_sha256(tiny_checkpoints[arch])
    cases = [(row.lengths, row.global_tokens) for row in manifest.parity]
    assert cases == parity_cases(BUCKETS, [1, 2], manifest.layout)
    assert {1000, 1537, 3048, 4072} <= {length for lengths, _ in cases for length in lengths}  # off the edges
    for row in manifest.parity:
        assert row.passed, row
        assert row.tokens_match
        assert row.max_abs_diff <= 1e-3
    assert not manifest.parity_skipped
    graph_files = {
        "onnx": ["decoder_init.onnx", "decoder_step.onnx", "encoder.onnx"],
        "torchscript": ["model.pt"],
    }
    assert manifest.graph_files() == graph_files[fmt]
    for name, size in manifest.file_sizes.items():
        assert (directory / name).stat().st_size == size
    assert manifest.weight_bytes == sum(
        p.numel() * 4 for p in AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoints[arch]).parameters()
    )
    assert manifest.export_peak_rss_bytes is not None
    assert manifest.weight_bytes < manifest.export_peak_rss_bytes
    assert "torch" in manifest.versions
    assert ("opset" in manifest.versions) == (fmt == "onnx")
    assert AutoTokenizer.from_pretrained(directory)("a test").input_ids


def _external_offsets(directory: Path, manifest: Manifest) -> dict[int, set[str]]:
    """Offset in the weights file of every tensor the ONNX graphs keep there -> the graphs using it."""
    users: dict[int, set[str]] = {}
    for name in manifest.graph_files():
        for tensor in onnx.load(str(directory / name), load_external_data=False).graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                where = {entry.key: entry.value for entry in tensor.external_data}
                assert where["location"] == ONNX_WEIGHTS
                users.setdefault(int(where["offset"]), set()).add(name)
    return users


def _constant_storages(method: Any) -> dict[int, int]:
    """The tensors a frozen TorchScript method holds: storage address -> bytes."""
    found = {}
    for node in method.graph.findAllNodes("prim::Constant"):
        if node.output().type().kind() == "TensorType":
            storage = node.output().toIValue().untyped_storage()
            found[storage.data_ptr()] = storage.nbytes()
    return found


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_artifact_stores_and_loads_one_copy_of_the_weights(
    arch: str, fmt: str, artifacts: dict[str, Path]
) -> None:
    """The weights the graphs share (the decoder's in both decoder graphs, the tied embedding that
    also makes the logits) are written once and loaded once; a second copy of any of them, such as
    a transposed lm_head, would be over 5% of these models' weights."""
    directory = artifacts[f"{arch}-{fmt}"]
    manifest = Manifest.read(directory)
    graphs = load_graphs(directory)
    if fmt == "onnx":
        assert isinstance(graphs, OnnxGraphs)
        users = _external_offsets(directory, manifest)
        assert max(len(names) for names in users.values()) == 3  # the embedding: every graph uses it
        assert len(graphs.weights.values) == len(users)  # one OrtValue per tensor, for every session
        stored = manifest.file_sizes[ONNX_WEIGHTS]
    else:
        assert isinstance(graphs, TorchScriptGraphs)
        methods = [graphs.encoder, graphs.init, graphs.step]
        loaded: dict[int, int] = {}
        for method in methods:
            loaded |= _constant_storages(method)
        assert sum(loaded.values()) <= 1.05 * manifest.weight_bytes
        stored = manifest.file_sizes[TORCHSCRIPT_MODULE]
    assert stored <= 1.05 * manifest.weight_bytes


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_loaded_artifact_generates_like_eager_on_real_text(
    arch: str, fmt: str, artifacts: dict[str, Path], tiny_checkpoints: dict[str, Path]
) -> None:
    directory = artifacts[f"{arch}-{fmt}"]
    tokenizer = AutoTokenizer.from_pretrained(directory)
    text = "Where is the committee located?\n\nThe committee reviewed the annual budget. " * 12
    ids = np.asarray(tokenizer(text).input_ids, dtype=np.int64)
    assert 100 < len(ids) < 1024  # between buckets
    graphs = load_graphs(directory)
    globals_ = [1] if graphs.layout.global_attention else None
    batch = graphs.layout.batch([ids], graphs.decoder.pad_token_id, globals_)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoints[arch]).eval()
    produced = generate(graphs, batch, DecodingConfig(min_new_tokens=24), 24)
    mask = np.ones((1, len(ids)), dtype=np.int64)
    globals_mask = global_mask(len(ids), 1)[None] if globals_ else None
    assert produced.tolist() == eager_generate(model, ids[None], mask, 24, globals_mask).tolist()


@pytest.mark.integration
def test_a_corrupted_graph_fails_parity(
    artifacts: dict[str, Path], tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    directory = shutil.copytree(artifacts["bigbird-pegasus-onnx"], tmp_path / "artifact")  # others share it
    manifest = Manifest.read(directory)
    graph_path = directory / manifest.encoder
    graph = onnx.load(str(graph_path))
    weight = next(init for init in graph.graph.initializer if numpy_helper.to_array(init).ndim == 2)
    array = numpy_helper.to_array(weight) * 1.05
    weight.CopyFrom(numpy_helper.from_array(array.astype(np.float32), weight.name))
    onnx.save(graph, str(graph_path))
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoints["bigbird-pegasus"]).eval()
    rows = check_parity(model, directory, manifest, new_tokens=8)
    assert not any(row.passed for row in rows)
    assert min(row.max_abs_diff for row in rows) > 1e-3


@pytest.mark.integration
def test_a_broken_attention_fails_the_export_and_writes_nothing(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def band_off_by_one(
        key_valid: torch.Tensor, one_sided: int, global_slots: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        return torch.roll(sliding_window_bias(key_valid, one_sided, global_slots, dtype), 1, dims=-1)

    monkeypatch.setattr(exporters.modules, "sliding_window_bias", band_off_by_one)
    out = tmp_path / "artifact"
    with pytest.raises(ExportError, match=r"parity failed at length\(s\) 513, 1000, 1024, 1537") as info:
        export(tiny_checkpoints["led"], "onnx", out, lengths=[1024, 2048], new_tokens=8)
    assert "max abs diff" in str(info.value)
    assert "FAIL" in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def test_skip_parity_is_recorded(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    manifest = export(
        tiny_checkpoints["led"], "torchscript", tmp_path / "a", lengths=[1024], skip_parity=True
    )
    assert manifest.parity_skipped
    assert manifest.parity == []
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["parity_skipped"] is True


def _config_dir(tmp_path: Path, model_type: str) -> Path:
    directory = tmp_path / model_type
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": model_type}))
    return directory


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such directory"),
        ("no-config", "no config.json"),
        ("bert", "model type 'bert' is not supported"),  # with or without the [optimum] extra
        ("too-long", "over its 4096 positions; use lengths up to 4096"),
        ("zero-length", "bucket lengths must be 1 or more"),
        ("batch-zero", "batch sizes must be 1 or more"),
        ("not-empty", "is not empty; choose a new directory or pass --overwrite"),
    ],
)
def test_bad_inputs_give_one_clear_error_and_leave_nothing(
    case: str, message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    checkpoint, lengths, batch_sizes = tiny_checkpoints["led"], [1024], [1]
    out = tmp_path / "out"
    if case == "missing":
        checkpoint = tmp_path / "nope"
    elif case == "no-config":
        checkpoint = tmp_path / "empty"
        checkpoint.mkdir()
    elif case == "bert":
        checkpoint = _config_dir(tmp_path, "bert")
    elif case == "too-long":
        lengths = [8192]
    elif case == "zero-length":
        lengths = [0, 1024]
    elif case == "batch-zero":
        batch_sizes = [0]
    elif case == "not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError, match=message):
        export(checkpoint, "onnx", out, lengths=lengths, batch_sizes=batch_sizes)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_overwrite_replaces_an_artifact(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "artifact"
    export(tiny_checkpoints["led"], "torchscript", out, lengths=[1024], skip_parity=True)
    export(tiny_checkpoints["led"], "onnx", out, lengths=[2048], skip_parity=True, overwrite=True)
    manifest = Manifest.read(out)
    assert (manifest.format, manifest.buckets) == ("onnx", [2048])
    assert not list(out.glob("*.pt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


@pytest.mark.integration
def test_cli_export_prints_the_parity_table(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "art"
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(tiny_checkpoints["bigbird-pegasus"]),
            "--format",
            "torchscript",
            "--lengths",
            "1024",
            "--batch-sizes",
            "1,2",
            "-o",
            str(out),
        ],
        prog_name="profiler",
    )
    assert result.exit_code == 0, result.output
    assert "max abs diff" in result.output
    cases = Manifest.read(out).parity
    assert len(cases) == 5  # 1024, 1000, 513, BigBird's shortest block-sparse 145, and a batch of 2
    assert result.output.count(" ok") == len(cases)
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lengths", "8192"], "above what the model takes"),
        (["--batch-sizes", "0"], '--batch-sizes: "0" is not a positive whole number'),
        (["--format", "tflite"], "tflite"),
    ],
)
def test_cli_export_errors_exit_non_zero(
    args: list[str], message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    result = CliRunner().invoke(
        app, ["export", str(tiny_checkpoints["led"]), "-o", str(tmp_path / "x"), *args], prog_name="profiler"
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


def _tiny_bart(tmp_path: Path, tokenizer_dir: Path) -> Path:
    """A BART checkpoint on disk: a model type that goes through optimum-onnx."""
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        init_std=0.3,
    )
    torch.manual_seed(0)
    path = tmp_path / "bart"
    BartForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.integration
@pytest.mark.optimum
def test_other_seq2seq_models_go_through_optimum(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    checkpoint = _tiny_bart(tmp_path, tiny_checkpoints["led"])
    manifest = export(
        checkpoint, "onnx", tmp_path / "art", lengths=[512, 2048], batch_sizes=[1, 2], new_tokens=12
    )
    assert manifest.graph_io == "optimum"
    assert manifest.encoder == "encoder_model.onnx"
    assert manifest.layout.attention == "full"
    assert all(row.passed for row in manifest.parity)
    assert len(manifest.parity) == len(parity_cases([512, 2048], [1, 2], manifest.layout))
    graphs = load_graphs(tmp_path / "art")
    batch = graphs.layout.batch([[7] * 500], graphs.decoder.pad_token_id)
    assert batch.input_ids.shape == (1, 500)  # full attention: no padding
    assert generate(graphs, batch, DecodingConfig(min_new_tokens=5), 5).shape == (1, 6)
    with pytest.raises(ExportError, match="over its 2048 positions"):
        export(checkpoint, "onnx", tmp_path / "too-long", lengths=[4096])
    with pytest.raises(ExportError, match="TorchScript export supports led, bigbird_pegasus"):
        export(checkpoint, "torchscript", tmp_path / "ts")


@pytest.mark.integration
@pytest.mark.parametrize("arch", ARCHS)
def test_io_binding_keeps_caches_on_the_device_and_changes_nothing(
    arch: str, artifacts: dict[str, Path]
) -> None:
    """The CUDA path binds inputs and outputs; on CPU the same code runs and must agree exactly."""
    directory = artifacts[f"{arch}-onnx"]
    manifest = Manifest.read(directory)
    plain, bound = OnnxGraphs(directory, manifest), OnnxGraphs(directory, manifest, io_binding=True)
    assert (plain.io_binding, bound.io_binding, bound.device_type) == (False, True, "cpu")
    rows = [np.arange(3, 3 + length) % 900 + 3 for length in (1024, 900)]
    batch = manifest.layout.batch(rows, manifest.decoder.pad_token_id, [1, 0] if arch == "led" else None)
    expected = generate(plain, batch, DecodingConfig(), 12)
    assert generate(bound, batch, DecodingConfig(), 12).tolist() == expected.tolist()
    hidden = bound.encode(batch.input_ids, batch.attention_mask, batch.extra)
    assert not isinstance(hidden, np.ndarray)  # an OrtValue, left where it was computed


@pytest.mark.integration
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_reports_every_graph_and_the_parity_of_every_bucket(
    fmt: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    steps: list[ExportStep] = []
    manifest = export(
        tiny_checkpoints["led"],
        fmt,
        tmp_path / fmt,
        lengths=[1024, 2048],
        new_tokens=4,
        progress=steps.append,
    )
    total = steps[0].total
    assert [step.done for step in steps] == list(range(total + 1))  # each step once, in order
    assert {step.total for step in steps} == {total}
    assert steps[-1].what == "written"
    graphs = [step.what for step in steps if step.what.startswith("graph")]
    assert graphs == list(GRAPH_STEPS[fmt])
    cases = [case_label(row.lengths, row.global_tokens) for row in manifest.parity]
    assert [step.what for step in steps if step.what.startswith("transformers")] == [
        f"transformers' reference at {case}" for case in cases
    ]
    assert [step.what for step in steps if step.what.startswith("parity")] == [
        f"parity at {case}" for case in cases
    ]
    for bucket in manifest.buckets:  # each bucket alone, checked
        assert f"parity at {bucket} tokens, global 1" in {step.what for step in steps}
    assert total == len(graphs) + 2 * len(cases)  # then one more announcement: written
