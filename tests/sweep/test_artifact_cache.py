"""The export cache shared across runs: a hit only for the same checkpoint bytes, format, buckets,
batch sizes and exporter, and never for an export that is damaged or did not pass parity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from profiler.artifact import MANIFEST_NAME, Manifest
from profiler.sweep.artifacts import ArtifactCache

pytestmark = pytest.mark.integration  # real exports


class Logged(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def _get(cache: ArtifactCache, checkpoint: Path, buckets: tuple[int, ...] = (1024,)) -> Path:
    return cache.get("led-tiny", checkpoint, "onnx", buckets, (1,), allow_new_weights=False)


def test_an_export_is_reused_only_for_the_same_inputs(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    checkpoint = Path(shutil.copytree(tiny_checkpoints["led"], tmp_path / "led"))
    log = Logged()
    cache = ArtifactCache(tmp_path / ".artifacts", log)

    first = _get(cache, checkpoint)
    assert log[-1].startswith("exporting led-tiny to onnx (buckets [1024], parity at batch 1) into ")
    assert log[-1].endswith(": not in the cache")
    written = (first / MANIFEST_NAME).stat().st_mtime_ns

    again = _get(cache, checkpoint)  # another run, same checkpoint bytes
    assert again == first
    assert log[-1].startswith(f"reusing the onnx export of led-tiny from {first} (same checkpoint sha256 ")
    assert (first / MANIFEST_NAME).stat().st_mtime_ns == written

    other_buckets = _get(cache, checkpoint, (1024, 2048))
    assert other_buckets != first
    assert Manifest.read(other_buckets).buckets == [1024, 2048]

    config = checkpoint / "generation_config.json"  # the same path, other bytes: a miss
    config.write_text(
        config.read_text(encoding="utf-8").replace("{", '{\n  "_edited": 1,', 1), encoding="utf-8"
    )
    changed = _get(cache, checkpoint)
    assert changed != first
    assert log[-1].endswith(": not in the cache")
    assert Manifest.read(changed).source_sha256 != Manifest.read(first).source_sha256


def test_a_damaged_or_unverified_export_is_made_again(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    log = Logged()
    cache = ArtifactCache(tmp_path / ".artifacts", log)
    out = _get(cache, tiny_checkpoints["led"])
    manifest = Manifest.read(out)

    weights = max(manifest.file_sizes, key=manifest.file_sizes.__getitem__)
    with (out / weights).open("r+b") as handle:  # cut short, as a full disk would
        handle.truncate(manifest.file_sizes[weights] // 2)
    assert _get(cache, tiny_checkpoints["led"]) == out
    assert log[-1].endswith(f": {weights} is missing or not the size the manifest records")
    assert (out / weights).stat().st_size == manifest.file_sizes[weights]

    Manifest.read(out).model_copy(update={"parity_skipped": True}).write(out)
    _get(cache, tiny_checkpoints["led"])
    assert log[-1].endswith(": its parity check was skipped or failed")
    assert not Manifest.read(out).parity_skipped

    (out / MANIFEST_NAME).unlink()  # what a copy cut short would leave
    _get(cache, tiny_checkpoints["led"])
    assert f"{out}: no {MANIFEST_NAME}" in log[-1]
    assert Manifest.read(out).source_sha256 == manifest.source_sha256
    assert "reusing" not in " ".join(log)
