"""The artifact manifest: the one contract between exporters and engines.

An artifact directory holds ``manifest.json``, the tokenizer files and the graphs. Engines read
nothing else: the manifest names every graph file, the buckets, and the decoder's shapes and
special token ids, and records how the export was verified.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from profiler.errors import ProfilerError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = get_args(Format)


class ArtifactError(ProfilerError):
    """An artifact that cannot be made, opened or run as asked; the message says what to do."""


@dataclass(frozen=True)
class DecoderSpec:
    """What a greedy loop needs to drive the decoder graphs."""

    layers: int
    heads: int
    head_dim: int
    vocab_size: int
    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    max_target_positions: int


@dataclass(frozen=True)
class BucketParity:
    """Exported graphs against eager PyTorch at one bucket and batch size."""

    length: int
    batch_size: int
    max_abs_diff: float
    max_rel_diff: float
    new_tokens: int
    tokens_match: bool
    passed: bool


@dataclass
class Manifest:
    """Everything an engine needs to know about an artifact."""

    format: Format
    model_type: str
    source_path: str
    source_sha256: str
    buckets: list[int]
    batch_sizes: list[int]
    encoders: dict[str, str]
    decoder_init: str
    decoder_step: str
    decoder: DecoderSpec
    versions: dict[str, str]
    #: Input/output naming of the graphs: "profiler" (exporters.modules) or "optimum".
    graph_io: str = "profiler"
    parity: list[BucketParity] = field(default_factory=list)
    parity_skipped: bool = False
    parity_tolerance: float = 1e-3
    export_seconds: float = 0.0
    file_sizes: dict[str, int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def encoder_file(self, length: int) -> str:
        """Graph file of the encoder for the bucket ``length``."""
        return self.encoders[str(length)]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_NAME).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        """Load and check ``directory/manifest.json``.

        Raises:
            ArtifactError: missing or unreadable manifest, unknown schema, or a graph file it
                names is missing.
        """
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(
                f"{directory}: no {MANIFEST_NAME}; pass a directory written by `profiler export`."
            )
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: unreadable ({exc}); export the artifact again.") from exc
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise ArtifactError(
                f"{path}: schema version {raw.get('schema_version')!r}, this profiler reads "
                f"{SCHEMA_VERSION}; export the artifact again with this version."
            )
        try:
            manifest = cls(
                **{
                    **raw,
                    "decoder": DecoderSpec(**raw["decoder"]),
                    "parity": [BucketParity(**row) for row in raw.get("parity", [])],
                }
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: malformed manifest ({exc}); export it again.") from exc
        missing = [name for name in manifest.graph_files() if not (directory / name).is_file()]
        if missing:
            raise ArtifactError(f"{directory}: graph file(s) missing: {', '.join(missing)}.")
        return manifest

    def graph_files(self) -> list[str]:
        """Every graph file the manifest names, once each."""
        return sorted({*self.encoders.values(), self.decoder_init, self.decoder_step})
