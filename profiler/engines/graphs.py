"""Run an artifact's graphs (ONNX Runtime or TorchScript) with numpy in, numpy out.

Both runners expose the same three calls that :func:`profiler.engines.greedy.greedy_generate`
drives, so the decoding loop is written once for every format.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from profiler.artifact import ArtifactError, Manifest

Caches = list[np.ndarray]


class Seq2SeqGraphs(Protocol):
    """Encoder per bucket plus the two decoder graphs of one artifact."""

    manifest: Manifest

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``[b, bucket]`` int64 ids and mask -> ``[b, bucket, d_model]`` float32."""
        ...

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Caches, Caches]:
        """First step -> (logits ``[b, vocab]``, self caches, cross caches)."""
        ...

    def decoder_step(
        self,
        input_ids: np.ndarray,
        position: int,
        attention_mask: np.ndarray,
        past: Caches,
        cross: Caches,
    ) -> tuple[np.ndarray, Caches]:
        """Later step -> (logits, self caches one longer)."""
        ...


def bucket_of(manifest: Manifest, input_ids: np.ndarray) -> int:
    """The bucket an input was padded to; each encoder graph is exact at its own length only."""
    length = int(input_ids.shape[1])
    if length not in manifest.buckets:
        raise ArtifactError(
            f"input of {length} tokens: pad it to one of the artifact's buckets "
            f"({', '.join(map(str, manifest.buckets))}) first."
        )
    return length


class OnnxGraphs:
    """ONNX Runtime sessions for every graph of an artifact."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        providers: list[str] | None = None,
        threads: int = 0,
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # Idle ORT threads spin for a while by default, burning CPU (and joules) that the next
        # piece of work on the machine would use; a profiler must not distort what it measures.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        chosen = providers or ["CPUExecutionProvider"]

        def session(name: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(directory / name), options, providers=chosen)

        self.encoders = {int(length): session(name) for length, name in manifest.encoders.items()}
        self.init = session(manifest.decoder_init)
        self.step = session(manifest.decoder_step)
        self.step_inputs = [node.name for node in self.step.get_inputs()]

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        session = self.encoders[bucket_of(self.manifest, input_ids)]
        hidden: np.ndarray = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        return hidden

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Caches, Caches]:
        outputs = self.init.run(
            None,
            {"input_ids": input_ids, "encoder_hidden": encoder_hidden, "encoder_mask": attention_mask},
        )
        layers = self.manifest.decoder.layers
        return outputs[0], outputs[1 : 1 + 2 * layers], outputs[1 + 2 * layers :]

    def decoder_step(
        self,
        input_ids: np.ndarray,
        position: int,
        attention_mask: np.ndarray,
        past: Caches,
        cross: Caches,
    ) -> tuple[np.ndarray, Caches]:
        values = [input_ids, np.array([position], dtype=np.int64), attention_mask, *past, *cross]
        outputs = self.step.run(None, dict(zip(self.step_inputs, values, strict=True)))
        return outputs[0], outputs[1:]


class TorchScriptGraphs:
    """TorchScript modules for every graph of an artifact, run under ``inference_mode``."""

    def __init__(self, directory: Path, manifest: Manifest, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.manifest = manifest
        self.device = torch.device(device)

        def load(name: str) -> torch.jit.ScriptModule:
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, still supported
                warnings.simplefilter("ignore", DeprecationWarning)
                module: torch.jit.ScriptModule = torch.jit.load(
                    str(directory / name), map_location=self.device
                )
            return module.eval()

        self.encoders = {int(length): load(name) for length, name in manifest.encoders.items()}
        self.init = load(manifest.decoder_init)
        self.step = load(manifest.decoder_step)

    def _tensor(self, array: np.ndarray) -> object:
        return self.torch.from_numpy(array).to(self.device)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            encoder = self.encoders[bucket_of(self.manifest, input_ids)]
            hidden = encoder(self._tensor(input_ids), self._tensor(attention_mask))
        return hidden.cpu().numpy()  # type: ignore[no-any-return]

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Caches, Caches]:
        with self.torch.inference_mode():
            outputs = self.init(
                self._tensor(input_ids), self._tensor(encoder_hidden), self._tensor(attention_mask)
            )
        arrays = [tensor.cpu().numpy() for tensor in outputs]
        layers = self.manifest.decoder.layers
        return arrays[0], arrays[1 : 1 + 2 * layers], arrays[1 + 2 * layers :]

    def decoder_step(
        self,
        input_ids: np.ndarray,
        position: int,
        attention_mask: np.ndarray,
        past: Caches,
        cross: Caches,
    ) -> tuple[np.ndarray, Caches]:
        torch = self.torch
        with torch.inference_mode():
            outputs = self.step(
                self._tensor(input_ids),
                torch.tensor([position], dtype=torch.long, device=self.device),
                self._tensor(attention_mask),
                *(self._tensor(array) for array in [*past, *cross]),
            )
        arrays = [tensor.cpu().numpy() for tensor in outputs]
        return arrays[0], arrays[1:]


def load_graphs(directory: str | Path, threads: int = 0) -> Seq2SeqGraphs:
    """Open an artifact directory with the runner its manifest's format calls for."""
    directory = Path(directory)
    manifest = Manifest.read(directory)
    if manifest.format == "onnx":
        return OnnxGraphs(directory, manifest, threads=threads)
    return TorchScriptGraphs(directory, manifest)
