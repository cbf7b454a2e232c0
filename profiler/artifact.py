"""The artifact manifest: the one contract between exporters and engines.

An artifact directory holds ``manifest.json``, the tokenizer files and the graphs. Engines read
nothing else: the manifest names every graph file, the buckets, and the decoder's shapes and
special token ids, and records how the export was verified. The names the exporter gives the
graph files and the graphs' inputs and outputs are defined here too, so the side that writes a
graph and the side that feeds it cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, get_args

from pydantic import Field, ValidationError

from profiler.attention_layout import EncoderLayout
from profiler.decoding_config import DecodingConfig
from profiler.documents import Document
from profiler.errors import ProfilerError
from profiler.validation import pydantic_problems

#: 2: one dynamic-length encoder graph (``encoder``) and its ``layout``, instead of one graph per bucket.
#: 3: one copy of the weights: ONNX graphs share :data:`ONNX_WEIGHTS`; TorchScript is one module.
#: 4: ``decoding.max_length`` is null when unset; 20 is 20 tokens in all, as transformers 5.x reads it.
#: 5: ``precision``, ``min_token_agreement`` and each parity case's ``token_agreement``.
#: 6: each parity case's ``ties``.
SCHEMA_VERSION = 6
#: Schemas :meth:`Manifest.read` still reads: a version 4 or 5 manifest's fields are all still
#: defined (the newer ones take their defaults: fp32, no ties).
READABLE_SCHEMAS = (4, 5, SCHEMA_VERSION)
MANIFEST_NAME = "manifest.json"
Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: Whose names the graphs' inputs and outputs follow: the profiler's own graphs
#: (:mod:`exporters.modules`) or optimum-onnx's (:mod:`exporters.optimum_route`).
Convention = Literal["profiler", "optimum"]

#: The numeric precision of an artifact's graphs: fp32 as the checkpoint is; fp16 and bf16 the
#: model cast (CUDA only); int8 the linear layers' weights quantized dynamically (CPU).
Precision = Literal["fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: Precisions that need CUDA: on a CPU they are emulated, slow, and measure nothing worth serving.
CUDA_PRECISIONS: tuple[Precision, ...] = ("fp16", "bf16")
#: The formats each precision exports to. bf16 is not ONNX: numpy has no bfloat16, so ONNX
#: Runtime's Python API can neither be fed its inputs nor hand back its outputs.
PRECISION_FORMATS: dict[Precision, tuple[str, ...]] = {
    "fp32": ("onnx", "torchscript"),
    "fp16": ("onnx", "torchscript"),
    "bf16": ("torchscript",),
    "int8": ("onnx", "torchscript"),
}
#: Default least fraction of greedy tokens a reduced-precision export must share with fp32 eager
#: PyTorch (docs/exporting.md, "Reduced precision", says why this value).
MIN_TOKEN_AGREEMENT = 0.9


def variant(fmt: str, precision: str) -> str:
    """A format in a precision as commands, cell keys and reports name it: the format alone for
    fp32 (so fp32 runs read, and resume, as before), ``onnx int8`` and the like otherwise."""
    return fmt if precision == "fp32" else f"{fmt} {precision}"


def precision_refusal(precision: str, fmt: str) -> str | None:
    """Why ``fmt`` cannot be exported or served in ``precision`` (one line), or None when it can."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}"
    formats = PRECISION_FORMATS[precision]
    if fmt not in formats:
        return (
            f"precision {precision} is not available for format {fmt}; it exports to {' and '.join(formats)}"
        )
    return None


class ArtifactError(ProfilerError):
    """An artifact that cannot be made, opened or run as asked; the message says what to do."""


#: The profiler's ONNX graphs keep their weights here as external data, each tensor once, so the
#: weights the graphs share (decoder, embeddings) are stored once and loaded once.
ONNX_WEIGHTS = "weights.bin"
#: The profiler's TorchScript artifact: one module whose methods ``encoder``, ``decoder_init`` and
#: ``decoder_step`` (the manifest's field names) are the three graphs, sharing one set of weights.
TORCHSCRIPT_MODULE = "model.pt"
#: The files optimum-onnx writes for seq2seq generation with past: one dynamic encoder, the first
#: decoder step, every later step.
OPTIMUM_GRAPHS = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")


def encoder_graph(fmt: Format) -> str:
    """File of the profiler's encoder: one graph for every input length."""
    return TORCHSCRIPT_MODULE if fmt == "torchscript" else "encoder.onnx"


def decoder_graphs(fmt: Format) -> tuple[str, str]:
    """Files of the profiler's decoder graphs: the first step, and every later step."""
    if fmt == "torchscript":
        return TORCHSCRIPT_MODULE, TORCHSCRIPT_MODULE
    return "decoder_init.onnx", "decoder_step.onnx"


@dataclass(frozen=True)
class GraphIO:
    """Input and output names of an artifact's graphs under one convention.

    The ONNX exporter names the profiler's graphs with these and the ONNX runner feeds and
    fetches every graph by them; TorchScript graphs take and return the same tensors by position.
    Caches are listed layer by layer, key then value. Not a document: it is derived from the
    manifest's ``graph_io`` and layer count, never written.
    """

    #: The same under both conventions: the encoder's inputs and output, the decoders' token ids
    #: and logits.
    input_ids: ClassVar[str] = "input_ids"
    attention_mask: ClassVar[str] = "attention_mask"
    last_hidden_state: ClassVar[str] = "last_hidden_state"
    logits: ClassVar[str] = "logits"

    encoder_hidden: str
    encoder_mask: str
    #: The later-step decoder's position input; optimum's graphs have none (they count the past).
    position: str | None
    self_cache: tuple[str, ...]  # inputs of the later-step graph
    cross_cache: tuple[str, ...]
    presents: tuple[str, ...]  # outputs of both decoder graphs
    cross_presents: tuple[str, ...]  # outputs of the first-step graph

    @classmethod
    def of(cls, convention: Convention, layers: int) -> GraphIO:
        """The names for a decoder of ``layers`` layers."""
        pairs = [(i, kind) for i in range(layers) for kind in ("key", "value")]
        if convention == "optimum":
            return cls(
                "encoder_hidden_states",
                "encoder_attention_mask",
                None,
                tuple(f"past_key_values.{i}.decoder.{kind}" for i, kind in pairs),
                tuple(f"past_key_values.{i}.encoder.{kind}" for i, kind in pairs),
                tuple(f"present.{i}.decoder.{kind}" for i, kind in pairs),
                tuple(f"present.{i}.encoder.{kind}" for i, kind in pairs),
            )
        # The cross-attention caches keep their names: the first step makes them, later ones take them.
        cross = tuple(f"cross_{kind}_{i}" for i, kind in pairs)
        return cls(
            "encoder_hidden",
            "encoder_mask",
            "position",
            tuple(f"past_{kind}_{i}" for i, kind in pairs),
            cross,
            tuple(f"present_{kind}_{i}" for i, kind in pairs),
            cross,
        )

    # In the order the profiler's graphs take their arguments and return their results
    # (exporters.modules), which torch.onnx.export needs; ONNX Runtime feeds by name.

    @classmethod
    def encoder_inputs(cls, layout: EncoderLayout) -> list[str]:
        return [cls.input_ids, cls.attention_mask, *layout.extra_inputs()]

    def init_inputs(self) -> list[str]:
        return [self.input_ids, self.encoder_hidden, self.encoder_mask]

    def init_outputs(self) -> list[str]:
        return [self.logits, *self.presents, *self.cross_presents]

    def step_inputs(self) -> list[str]:
        position = [] if self.position is None else [self.position]
        return [self.input_ids, *position, self.encoder_mask, *self.self_cache, *self.cross_cache]

    def step_outputs(self) -> list[str]:
        return [self.logits, *self.presents]


class DecoderSpec(Document):
    """What a greedy loop needs to drive the decoder graphs."""

    layers: int
    heads: int
    head_dim: int
    vocab_size: int
    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    max_target_positions: int


class ParityCase(Document):
    """Exported graphs against transformers on one batch: each row against transformers' own encoder
    and greedy ``generate`` on that row alone, unpadded.

    Attributes:
        lengths: real tokens of each row. Units: tokens.
        global_tokens: leading tokens of each row with global attention (LED; 0 for none).
    """

    lengths: list[int]
    global_tokens: list[int]
    max_abs_diff: float
    max_rel_diff: float
    new_tokens: int
    tokens_match: bool
    #: The greedy step at which each row that first differs from transformers there does so at a
    #: near-tie: transformers' own scores for its token and the exported one within the parity
    #: tolerance, so fp32 rounding picks between them (the row is compared up to that step).
    ties: list[int] = Field(default_factory=list)
    #: Fraction of the greedy tokens, over every row, identical to transformers' at the same
    #: position: 1.0 when ``tokens_match``; what reduced precision is judged by.
    token_agreement: float = 1.0
    passed: bool


class Manifest(Document):
    """Everything an engine needs to know about an artifact; written once by the exporter, read
    back strictly by every engine."""

    schema_version: int = SCHEMA_VERSION
    format: Format
    model_type: str
    source_path: str
    source_sha256: str
    #: Input lengths requests are grouped and reported by; the largest is the longest input served.
    buckets: list[int]
    batch_sizes: list[int]
    #: The encoder's graph file: it takes every input length its layout pads to.
    encoder: str
    #: How inputs are padded and their sparse attention described (:mod:`profiler.attention_layout`).
    layout: EncoderLayout
    decoder_init: str
    decoder_step: str
    decoder: DecoderSpec
    #: The checkpoint's generation settings (``generation_config.json``): what serving decodes with.
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    versions: dict[str, str]
    graph_io: Convention = "profiler"
    #: The graphs' numeric precision (:data:`Precision`); parity is against fp32 transformers.
    precision: Precision = "fp32"
    parity: list[ParityCase] = Field(default_factory=list)
    parity_skipped: bool = False
    #: Max abs encoder difference allowed, times max(1, the reference's largest magnitude).
    parity_tolerance: float = 1e-3
    #: Reduced precision only: the least ``token_agreement`` a parity case passes with (the
    #: encoder difference is recorded, not judged); None for fp32, held to identical tokens.
    min_token_agreement: float | None = None
    #: Wall time of the export, parity included. Units: s.
    export_seconds: float = 0.0
    #: The export's resident-memory high-water mark (VmHWM), parity included; None where the
    #: system does not report it. Units: bytes.
    export_peak_rss_bytes: int | None = None
    #: The model's parameters times their dtype's size, each counted once (tied weights once): what
    #: the artifact's files should not much exceed. Units: bytes.
    weight_bytes: int = 0
    #: Every file of the artifact but the manifest, by name. Units: bytes.
    file_sizes: dict[str, int] = Field(default_factory=dict)
    #: Parameters that did not come from the checkpoint's weights file (random or unused), exported
    #: only because ``--allow-new-weights`` said so; empty for a complete checkpoint.
    new_weights: list[str] = Field(default_factory=list)

    def graph_files(self) -> list[str]:
        """Every graph file the manifest names."""
        return sorted({self.encoder, self.decoder_init, self.decoder_step})

    def write(self, directory: Path) -> None:
        """``directory/manifest.json``, the fields in the order above: what :meth:`read` checks."""
        (directory / MANIFEST_NAME).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        """Load and check ``directory/manifest.json``.

        Raises:
            ArtifactError: missing or unreadable manifest, unknown schema, a field missing, unknown
                or of the wrong type, or a graph file it names is missing.
        """
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(
                f"{directory}: no {MANIFEST_NAME}; pass a directory written by `profiler export`."
            )
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text)
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON
            raise ArtifactError(f"{path}: unreadable ({exc}); export the artifact again.") from exc
        if not isinstance(raw, dict):
            raise ArtifactError(f"{path}: not a JSON object; export the artifact again.")
        if raw.get("schema_version") not in READABLE_SCHEMAS:
            readable = f"{', '.join(map(str, READABLE_SCHEMAS[:-1]))} and {READABLE_SCHEMAS[-1]}"
            raise ArtifactError(
                f"{path}: schema version {raw.get('schema_version')!r}, this profiler reads "
                f"{readable}; export the artifact again with this version."
            )
        try:
            manifest = cls.model_validate_json(text)
        except ValidationError as exc:
            raise ArtifactError(
                f"{path}: not a manifest this profiler reads ({pydantic_problems(exc)}); "
                "export the artifact again."
            ) from exc
        missing = [name for name in manifest.graph_files() if not (directory / name).is_file()]
        if missing:
            raise ArtifactError(f"{directory}: graph file(s) missing: {', '.join(missing)}.")
        return manifest
