"""One Engine for every format: load, warm up, run a padded batch, report stage timings.

The engine owns padding (each batch to what its longest row needs, as the encoder's layout says;
buckets only name the length class a request is reported under), the request modes and timing;
the format-specific work is the runner's (:mod:`profiler.engines.graphs`,
:mod:`profiler.engines.eager`), and decoding is the shared loop (:mod:`profiler.engines.decoding`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from profiler.artifact import MANIFEST_NAME, ArtifactError, DecoderSpec, Manifest, Precision
from profiler.buckets import bucket_for
from profiler.decoding_config import DecodingConfig
from profiler.engines.decoding import decode
from profiler.engines.graphs import Seq2SeqGraphs, open_graphs
from profiler.modes import Mode

EngineKind = Literal["eager", "onnx", "torchscript"]
#: Receives each generated token as the decoding loop makes it: (row of the batch, index in that
#: row's output, token id). Called on the engine's thread.
TokenSink = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Job:
    """One request as the engine sees it: token ids (special tokens included) and what to do."""

    input_ids: list[int]
    mode: Mode = "generate"
    max_new_tokens: int = 32
    #: ``forward`` mode: decoder positions fed with the target (teacher forcing).
    target_length: int = 64
    #: Leading tokens with global attention (LED; 0: none).
    global_tokens: int = 0


@dataclass(frozen=True)
class Outcome:
    """What one job produced, and the timings of the batch it ran in."""

    output_ids: list[int]
    bucket: int
    #: Tokens the batch was padded to: what the encoder computed per row.
    padded_length: int
    batch_size: int
    encode_ms: float
    #: The whole decoding loop, first step included.
    decode_ms: float
    #: From the encoder's end until the first token was chosen (the decoder's first step, which
    #: also builds the cross-attention caches); part of ``decode_ms``, 0 in encode mode.
    first_step_ms: float = 0.0


class Engine:
    """A loaded model (eager, ONNX Runtime or TorchScript) behind one interface.

    Not thread-safe: one batch runs at a time (the server's batcher calls it from one thread).
    """

    def __init__(
        self,
        graphs: Seq2SeqGraphs,
        kind: EngineKind,
        source: Path,
        model_type: str,
        manifest: Manifest | None = None,
        new_weights: list[str] | None = None,
        decoding: DecodingConfig | None = None,
    ) -> None:
        self.graphs = graphs
        self.kind = kind
        #: The directory served: an artifact, or for eager the checkpoint itself.
        self.source = source
        self.model_type = model_type
        #: The artifact's manifest; None for an eager checkpoint.
        self.manifest = manifest
        #: The graphs' numeric precision; fp32 for an eager checkpoint.
        self.precision: Precision = manifest.precision if manifest else "fp32"
        #: Parameters that do not come from the checkpoint's weights file (allowed by the user).
        self.new_weights: list[str] = new_weights or (manifest.new_weights if manifest else [])
        #: How outputs are decoded: the checkpoint's generation settings, with the run's overrides.
        self.decoding = decoding or (manifest.decoding if manifest else DecodingConfig())
        self.buckets = sorted(graphs.buckets)
        self.decoder: DecoderSpec = graphs.decoder
        #: Where the model really runs ("cpu" or "cuda"), whatever was asked for.
        self.device: str = graphs.device_type
        #: ONNX Runtime's execution providers as its sessions chose them; empty for PyTorch.
        self.providers: list[str] = list(graphs.providers)

    @property
    def max_length(self) -> int:
        return self.buckets[-1]

    def run(self, jobs: list[Job], on_token: TokenSink | None = None) -> list[Outcome]:
        """Run jobs of one mode together, padded to the bucket of the longest; in generate mode
        ``on_token`` gets each row's tokens as they are made (those its output will hold)."""
        longest = max(len(job.input_ids) for job in jobs)
        bucket = bucket_for(self.buckets, longest)
        if bucket is None:
            raise ArtifactError(f"input of {longest} tokens is over the largest bucket ({self.max_length}).")
        if not self.graphs.layout.global_attention and any(job.global_tokens for job in jobs):
            raise ArtifactError(f"{self.model_type} has no global attention.")
        mode = jobs[0].mode
        batch = self.graphs.layout.batch(
            [job.input_ids for job in jobs], self.decoder.pad_token_id, [job.global_tokens for job in jobs]
        )
        mask = batch.attention_mask
        started = time.perf_counter()
        hidden = self.graphs.encode(batch.input_ids, mask, batch.extra)
        encoded = time.perf_counter()
        steps = _Steps(jobs, self.decoder.eos_token_id, on_token if mode == "generate" else None)
        if mode == "encode":
            outputs: list[list[int]] = [[] for _ in jobs]
        else:
            if mode == "forward":
                targets = _teacher_targets(jobs, self.decoder.pad_token_id)
                tokens = decode(self.graphs, hidden, mask, self.decoding, 0, forced=targets, on_step=steps)
            else:
                limits = np.array([job.max_new_tokens for job in jobs])
                tokens = decode(self.graphs, hidden, mask, self.decoding, limits, on_step=steps)
            outputs = [_trim(row[1:], self.decoder, job) for row, job in zip(tokens, jobs, strict=True)]
        finished = time.perf_counter()
        return [
            Outcome(
                output_ids=output,
                bucket=bucket,
                padded_length=mask.shape[1],
                batch_size=len(jobs),
                encode_ms=(encoded - started) * 1000,
                decode_ms=(finished - encoded) * 1000,
                first_step_ms=(steps.first - encoded) * 1000 if steps.first is not None else 0.0,
            )
            for output in outputs
        ]

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run every bucket once per batch size so first requests pay no one-off costs (shapes
        between buckets are planned on first use)."""
        global_tokens = 1 if self.graphs.layout.global_attention else 0
        for bucket in self.buckets:
            for size in batch_sizes:
                job = Job(
                    input_ids=[self.decoder.pad_token_id + 1] * bucket,
                    max_new_tokens=2,
                    global_tokens=global_tokens,
                )
                self.run([job] * size)


class _Steps:
    """The decoding loop's step hook for one batch: notes when the first token was chosen, and
    passes each row's tokens to the sink, exactly those :func:`_trim` keeps (up to the row's own
    limit, ``eos`` included)."""

    def __init__(self, jobs: list[Job], eos: int, sink: TokenSink | None) -> None:
        self.limits = [job.max_new_tokens for job in jobs]
        self.eos = eos
        self.sink = sink
        self.ended = [False] * len(jobs)
        #: When the first step's tokens were chosen (``time.perf_counter``); None before.
        self.first: float | None = None

    def __call__(self, step: int, chosen: np.ndarray | None) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        if self.sink is None or chosen is None:
            return
        for row, limit in enumerate(self.limits):
            if self.ended[row] or step >= limit:
                continue
            token = int(chosen[row])
            self.ended[row] = token == self.eos
            self.sink(row, step, token)


def _teacher_targets(jobs: list[Job], pad: int) -> np.ndarray:
    """Targets for ``forward`` mode: each job's first tokens, as a stand-in for a reference."""
    width = max(job.target_length for job in jobs)
    targets = np.full((len(jobs), width), pad, dtype=np.int64)
    for row, job in enumerate(jobs):
        source = np.resize(np.asarray(job.input_ids, dtype=np.int64), job.target_length)
        targets[row, : job.target_length] = source
    return targets


def _trim(row: np.ndarray, decoder: DecoderSpec, job: Job) -> list[int]:
    """Generated ids up to and including ``eos``, or the job's own limit."""
    limit = job.target_length if job.mode == "forward" else job.max_new_tokens
    ids = row[:limit].tolist()
    if job.mode == "generate" and decoder.eos_token_id in ids:
        ids = ids[: ids.index(decoder.eos_token_id) + 1]
    return [int(token) for token in ids]


def load_engine(
    path: str | Path,
    device: str = "cpu",
    threads: int = 0,
    allow_new_weights: bool = False,
    decoding_overrides: Mapping[str, object] | None = None,
) -> Engine:
    """An engine for an artifact directory (ONNX or TorchScript) or a raw checkpoint (eager),
    decoding with the checkpoint's generation settings and ``decoding_overrides`` (field -> value).

    Raises:
        ArtifactError: the path is neither, is unusable, or ``device`` is not available here;
            the message says what to do.
        CheckpointError: a checkpoint's weights do not load, or (without ``allow_new_weights``)
            do not cover the model.
        DecodingError: generation settings this profiler does not run, or a bad override.
    """
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such directory; pass an artifact or checkpoint directory.")
    if (path / MANIFEST_NAME).is_file():
        manifest = Manifest.read(path)
        decoding = manifest.decoding.override(decoding_overrides or {})
        graphs = open_graphs(path, manifest, device, threads)
        return Engine(graphs, manifest.format, path, manifest.model_type, manifest, decoding=decoding)
    if (path / "config.json").is_file():
        return _eager_engine(path, device, allow_new_weights, decoding_overrides or {})
    raise ArtifactError(
        f"{path}: neither an artifact (no {MANIFEST_NAME}) nor a checkpoint (no config.json); "
        "pass a directory written by `profiler export` or a Hugging Face checkpoint."
    )


def _eager_engine(
    path: Path, device: str, allow_new_weights: bool, decoding_overrides: Mapping[str, object]
) -> Engine:
    from transformers import AutoConfig

    from profiler.engines.eager import EagerGraphs
    from profiler.modelinfo import decoder_spec, default_buckets

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable config.json ({exc}).") from exc
    if not getattr(config, "is_encoder_decoder", False):
        raise ArtifactError(
            f"{path}: model type {config.model_type!r} is not an encoder-decoder model; this profiler "
            "serves seq2seq checkpoints (LED, BigBird-Pegasus, and others such as BART or T5)."
        )
    buckets = default_buckets(config)
    if not buckets:
        raise ArtifactError(f"{path}: the model takes none of the study's lengths; export it with --lengths.")
    spec = decoder_spec(config)
    decoding = DecodingConfig.from_checkpoint(path, decoding_overrides)
    graphs = EagerGraphs(path, buckets, spec, device, allow_new_weights)
    return Engine(graphs, "eager", path, config.model_type, new_weights=graphs.new_weights, decoding=decoding)
