"""The manifest is one strict document: what is written reads back equal, and anything else is
refused in one line that names the file, the field and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from transformers import AutoConfig

from profiler.artifact import (
    MANIFEST_NAME,
    PRECISIONS,
    SCHEMA_VERSION,
    ArtifactError,
    DecoderSpec,
    GraphIO,
    Manifest,
    decoder_graphs,
    encoder_graph,
    precision_refusal,
    variant,
)
from profiler.attention_layout import EncoderLayout
from profiler.modelinfo import decoder_spec, encoder_layout


def _manifest() -> Manifest:
    init, step = decoder_graphs("onnx")
    return Manifest(
        format="onnx",
        model_type="led",
        source_path="/models/led",
        source_sha256="0" * 64,
        buckets=[1024, 2048],
        batch_sizes=[1, 4],
        encoder=encoder_graph("onnx"),
        layout=EncoderLayout(attention="sliding_window", multiple=1024, global_attention=True),
        decoder_init=init,
        decoder_step=step,
        decoder=DecoderSpec(
            layers=2,
            heads=4,
            head_dim=16,
            vocab_size=512,
            decoder_start_token_id=2,
            eos_token_id=2,
            pad_token_id=1,
            max_target_positions=1024,
        ),
        versions={"torch": "2.0"},
        parity_skipped=True,
    )


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A directory with the manifest of :func:`_manifest` and (empty) graph files it names."""
    manifest = _manifest()
    for name in manifest.graph_files():
        (tmp_path / name).touch()
    manifest.write(tmp_path)
    return tmp_path


def _rewrite(directory: Path, **fields: Any) -> Path:
    """Set ``fields`` in the manifest on disk (a value of None deletes the field); its path."""
    path = directory / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw |= fields
    path.write_text(json.dumps({key: value for key, value in raw.items() if value is not None}))
    return path


def test_a_written_manifest_reads_back_equal(artifact: Path) -> None:
    assert Manifest.read(artifact) == _manifest()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"colour": "red"}, "colour: unknown field"),
        ({"buckets": ["1024"]}, "buckets[0]: input should be a valid integer"),
        ({"parity_skipped": 1}, "parity_skipped: input should be a valid boolean"),
        ({"graph_io": "tensorrt"}, "graph_io: input should be 'profiler' or 'optimum'"),
        ({"decoder_step": None}, "decoder_step: field required"),
        ({"decoder": {"layers": 2}}, "decoder.heads: field required"),
        ({"encoder": 5}, "encoder: input should be a valid string"),
    ],
)
def test_a_bad_field_is_named_on_one_line(artifact: Path, fields: dict[str, Any], problem: str) -> None:
    path = _rewrite(artifact, **fields)
    with pytest.raises(ArtifactError) as info:
        Manifest.read(artifact)
    message = str(info.value)
    assert message.startswith(f"{path}: not a manifest this profiler reads (")
    assert problem in message
    assert message.endswith("; export the artifact again.")
    assert "\n" not in message


def test_every_bad_field_is_named(artifact: Path) -> None:
    _rewrite(artifact, buckets=["1024"], parity_skipped=1)
    with pytest.raises(ArtifactError, match=r"buckets\[0\]: .*; parity_skipped: "):
        Manifest.read(artifact)


def test_an_unknown_schema_version_is_refused_before_the_fields(artifact: Path) -> None:
    path = _rewrite(artifact, schema_version=SCHEMA_VERSION + 1, colour="red")
    with pytest.raises(ArtifactError) as info:
        Manifest.read(artifact)
    assert str(info.value) == (
        f"{path}: schema version {SCHEMA_VERSION + 1}, this profiler reads 4, 5 and {SCHEMA_VERSION}; "
        "export the artifact again with this version."
    )


def test_a_version_4_manifest_reads_as_fp32(artifact: Path) -> None:
    raw = json.loads((artifact / MANIFEST_NAME).read_text())
    for field in ("precision", "min_token_agreement"):
        del raw[field]
    raw["schema_version"] = 4
    (artifact / MANIFEST_NAME).write_text(json.dumps(raw))
    manifest = Manifest.read(artifact)
    assert (manifest.schema_version, manifest.precision, manifest.min_token_agreement) == (4, "fp32", None)


def test_a_misspelled_precision_in_a_manifest_is_named(artifact: Path) -> None:
    _rewrite(artifact, precision="int4")
    with pytest.raises(ArtifactError, match=r"precision: .*'fp32', 'fp16', 'bf16' or 'int8'"):
        Manifest.read(artifact)


@pytest.mark.parametrize(
    ("precision", "fmt", "refusal"),
    [
        ("fp32", "torchscript", None),
        ("int8", "onnx", None),
        ("int8", "torchscript", None),
        ("fp16", "onnx", None),
        ("bf16", "torchscript", None),
        ("bf16", "onnx", "precision bf16 is not available for format onnx; it exports to torchscript"),
        ("int4", "onnx", "unknown precision 'int4'; choose one of: fp32, fp16, bf16, int8"),
    ],
)
def test_precision_refusal_is_one_line_naming_what_works(
    precision: str, fmt: str, refusal: str | None
) -> None:
    assert precision_refusal(precision, fmt) == refusal


def test_a_variant_names_the_precision_beside_the_format_unless_fp32() -> None:
    assert [variant("onnx", p) for p in PRECISIONS] == ["onnx", "onnx fp16", "onnx bf16", "onnx int8"]


@pytest.mark.parametrize(
    ("text", "message"), [("{", "unreadable"), ("[]", "not a JSON object"), ("\xff", "unreadable")]
)
def test_a_manifest_that_is_not_a_json_object_is_refused(artifact: Path, text: str, message: str) -> None:
    (artifact / MANIFEST_NAME).write_bytes(text.encode("latin-1"))
    with pytest.raises(ArtifactError, match=f"{message}.*export the artifact again"):
        Manifest.read(artifact)


def test_a_missing_graph_file_is_named(artifact: Path) -> None:
    (artifact / "decoder_step.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"graph file\(s\) missing: decoder_step\.onnx\.$"):
        Manifest.read(artifact)


@pytest.mark.integration
def test_real_exports_read_back_equal_and_name_their_graphs_as_the_contract_says(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    for key, directory in artifacts.items():
        manifest = Manifest.read(directory)
        copy = tmp_path / key
        copy.mkdir()
        for name in manifest.graph_files():
            (copy / name).touch()
        manifest.write(copy)
        assert Manifest.read(copy) == manifest
        assert (copy / MANIFEST_NAME).read_text() == (directory / MANIFEST_NAME).read_text()
        fmt = manifest.format
        assert manifest.encoder == encoder_graph(fmt)
        assert manifest.layout == encoder_layout(AutoConfig.from_pretrained(manifest.source_path))
        assert (manifest.decoder_init, manifest.decoder_step) == decoder_graphs(fmt)
        if fmt == "onnx":
            _check_onnx_names(directory, manifest)


def _check_onnx_names(directory: Path, manifest: Manifest) -> None:
    io = GraphIO.of(manifest.graph_io, manifest.decoder.layers)

    def names(file: str) -> tuple[list[str], list[str]]:
        graph = onnx.load(str(directory / file), load_external_data=False).graph
        return [value.name for value in graph.input], [value.name for value in graph.output]

    assert names(manifest.encoder) == (GraphIO.encoder_inputs(manifest.layout), [io.last_hidden_state])
    assert names(manifest.decoder_init) == (io.init_inputs(), io.init_outputs())
    assert names(manifest.decoder_step) == (io.step_inputs(), io.step_outputs())
    assert io.step_inputs()[:5] == ["input_ids", "position", "encoder_mask", "past_key_0", "past_value_0"]


def test_a_config_without_a_pad_token_id_is_one_line_naming_it() -> None:
    from transformers import LEDConfig

    config = LEDConfig(pad_token_id=None)
    with pytest.raises(
        ArtifactError, match=r"^the checkpoint's config\.json has no usable pad_token_id \("
    ) as caught:
        decoder_spec(config)
    assert "\n" not in str(caught.value)
