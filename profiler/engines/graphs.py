"""Run an artifact's graphs (ONNX Runtime or TorchScript) with numpy in, numpy out.

Both runners expose the same three calls that :func:`profiler.engines.decoding.decode`
drives, so the decoding loop is written once for every format.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from profiler.artifact import ArtifactError, DecoderSpec, GraphIO, Manifest
from profiler.attention_layout import EncoderLayout
from profiler.errors import one_line

if TYPE_CHECKING:
    import torch

#: Decoder caches are opaque to the loop: arrays for exported graphs, a transformers Cache for eager.
Caches = Any


class Seq2SeqGraphs(Protocol):
    """The encoder plus the two decoder steps: what the greedy loop drives."""

    decoder: DecoderSpec
    buckets: list[int]
    #: How inputs are padded and their sparse attention fed to the encoder.
    layout: EncoderLayout
    #: Where the model really runs: "cpu" or "cuda".
    device_type: str
    #: ONNX Runtime's execution providers as the sessions chose them; empty for PyTorch.
    providers: list[str]

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray, extra: dict[str, np.ndarray]) -> Any:
        """``[b, n]`` int64 ids and mask, padded as :attr:`layout` says, and the layout's extra
        inputs (:meth:`EncoderLayout.feeds`) -> ``[b, n, d_model]`` float32 (numpy, or a device
        array that :meth:`decoder_init` accepts)."""
        ...

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: Any, attention_mask: np.ndarray
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


class OnnxGraphs:
    """ONNX Runtime sessions for every graph of an artifact.

    With ``io_binding`` (the default on CUDA) the encoder output and the decoder caches stay on
    the device between calls as ``OrtValue``s; only the logits come back to the host each step.
    """

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        providers: list[str] | None = None,
        threads: int = 0,
        spin: bool = False,
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.decoder = manifest.decoder
        self.buckets = manifest.buckets
        self.io = GraphIO.of(manifest.graph_io, manifest.decoder.layers)
        chosen = providers or ["CPUExecutionProvider"]
        missing = [name for name in chosen if name not in ort.get_available_providers()]
        if missing:  # ONNX Runtime would warn and run on the CPU instead
            raise ArtifactError(
                f"{', '.join(missing)} is not available in this ONNX Runtime (it has "
                f"{', '.join(ort.get_available_providers())}); for --device cuda install its GPU "
                "build: pip uninstall -y onnxruntime && pip install -e '.[gpu]', or use --device cpu."
            )
        self.layout = manifest.layout
        #: The sessions run on its memory: it lives as long as they do.
        self.weights = _SharedWeights()
        self.encoder, self.init, self.step = (
            _onnx_session(directory / name, self.weights, threads, spin, chosen, prepack)
            for name, prepack in (
                (manifest.encoder, False),
                (manifest.decoder_init, False),
                (manifest.decoder_step, True),
            )
        )
        self.providers: list[str] = self.init.get_providers()
        #: Each graph's floating-point inputs and the dtype it declares for them: fp16 graphs take
        #: their host-side float inputs (BigBird's block bias) and caches in fp16.
        self.float_inputs: dict[int, dict[str, np.dtype[Any]]] = {
            id(session): {
                value.name: _ORT_FLOATS[value.type]
                for value in session.get_inputs()
                if value.type in _ORT_FLOATS
            }
            for session in (self.encoder, self.init, self.step)
        }
        on_cuda = "CUDAExecutionProvider" in self.providers
        self.device_type = "cuda" if on_cuda else "cpu"
        self.io_binding = on_cuda if io_binding is None else io_binding

    def _run(
        self, session: Any, feeds: dict[str, Any], host: list[str], device: list[str]
    ) -> tuple[list[np.ndarray], list[Any]]:
        """Outputs ``host`` as numpy and ``device`` as device arrays (numpy without IO binding)."""
        floats = self.float_inputs[id(session)]
        feeds = {
            name: value.astype(floats[name])
            if isinstance(value, np.ndarray) and name in floats and value.dtype != floats[name]
            else value
            for name, value in feeds.items()
        }
        if not self.io_binding:
            outputs = session.run([*host, *device], feeds)
            return outputs[: len(host)], outputs[len(host) :]
        binding = session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in host:
            binding.bind_output(name, "cpu")
        for name in device:
            binding.bind_output(name, self.device_type)
        session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return [value.numpy() for value in values[: len(host)]], list(values[len(host) :])

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray, extra: dict[str, np.ndarray]) -> Any:
        io = self.io
        feeds = {io.input_ids: input_ids, io.attention_mask: attention_mask, **extra}
        _, (hidden,) = self._run(self.encoder, feeds, [], [io.last_hidden_state])
        return hidden

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: Any, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Caches, Caches]:
        io = self.io
        feeds = {io.input_ids: input_ids, io.encoder_hidden: encoder_hidden, io.encoder_mask: attention_mask}
        (logits,), caches = self._run(self.init, feeds, [io.logits], [*io.presents, *io.cross_presents])
        layers = len(io.presents)
        return _last_position(logits), caches[:layers], caches[layers:]

    def decoder_step(
        self,
        input_ids: np.ndarray,
        position: int,
        attention_mask: np.ndarray,
        past: Caches,
        cross: Caches,
    ) -> tuple[np.ndarray, Caches]:
        io = self.io
        feeds = {
            io.input_ids: input_ids,
            io.encoder_mask: attention_mask,
            **dict(zip(io.self_cache, past, strict=True)),
            **dict(zip(io.cross_cache, cross, strict=True)),
        }
        if io.position is not None:
            feeds[io.position] = np.array([position], dtype=np.int64)
        (logits,), presents = self._run(self.step, feeds, [io.logits], list(io.presents))
        return _last_position(logits), presents


#: ONNX Runtime's names of the float types a graph's inputs may declare.
_ORT_FLOATS: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
}


class _SharedWeights:
    """The graphs' external data, each file mapped once and each tensor made an ``OrtValue`` once.

    Given to every session as its initializers, they are one copy of the weights for all three
    graphs: a session that loaded its own external data would hold its own copy of the weights it
    shares with the others (the decoder's and the embeddings, in both decoder graphs).
    """

    def __init__(self) -> None:
        self.files: dict[Path, np.ndarray] = {}
        self.values: dict[tuple[Path, int], Any] = {}

    def initializers(self, graph: Path) -> tuple[list[str], list[Any]]:
        """Names and values of ``graph``'s external initializers.

        Raises:
            ArtifactError: the graph or the file holding its weights is damaged or missing.
        """
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

        try:
            model = onnx.load(str(graph), load_external_data=False)
        except (OSError, DecodeError) as exc:
            raise _damaged(graph, one_line(exc)) from exc
        names, values = [], []
        for tensor in model.graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            where = {entry.key: entry.value for entry in tensor.external_data}
            path = graph.parent / where["location"]
            key = (path, int(where.get("offset", 0)))
            if key not in self.values:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
                data = self._file(path)[key[1] : key[1] + int(where["length"])]
                try:
                    array = data.view(dtype).reshape(tuple(tensor.dims))
                except ValueError as exc:  # the file is shorter than the graph says
                    raise _damaged(path, f"{tensor.name}: {exc}") from exc
                self.values[key] = ort.OrtValue.ortvalue_from_numpy(array)
            names.append(tensor.name)
            values.append(self.values[key])
        return names, values

    def _file(self, path: Path) -> np.ndarray:
        """``path`` mapped read-only: pages come from the page cache, shared with other processes
        serving the same artifact."""
        if path not in self.files:
            try:
                self.files[path] = np.memmap(path, dtype=np.uint8, mode="r")
            except (OSError, ValueError) as exc:
                raise _damaged(path, one_line(exc)) from exc
        return self.files[path]


def _damaged(path: Path, why: str, kind: str = "ONNX") -> ArtifactError:
    return ArtifactError(
        f"{path}: damaged {kind} graph ({why}); export the artifact again (profiler export ... --overwrite)."
    )


def _onnx_session(
    path: Path, weights: _SharedWeights, threads: int, spin: bool, providers: list[str], prepack: bool
) -> Any:
    """A session on ``providers[0]`` using the shared ``weights``, or an error naming the graph
    file that does not load. ``prepack``: let ONNX Runtime pack the weights for its matmuls, a
    copy of them owned by this session.

    Raises:
        ArtifactError: the file is damaged, or ONNX Runtime fell back from the provider asked
            for (e.g. CUDA libraries it could not load).
    """
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        InvalidGraph,
        InvalidProtobuf,
        NoSuchFile,
    )

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # Idle ORT threads spin for a while by default, burning CPU (and joules) that the next
    # piece of work on the machine would use; a profiler must not distort what it measures.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    # One copy of each weight for every session: add_initializer uses the shared OrtValue where
    # add_external_initializers would copy it. Packed weights are a second copy, worth it only
    # where a matmul reads every weight for one token: the decoder step (docs/exporting.md).
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    for name, value in zip(*weights.initializers(path), strict=True):
        options.add_initializer(name, value)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile) as exc:
        # ONNX Runtime says "[ONNXRuntimeError] : 7 : ... Load model from PATH failed:WHY".
        raise _damaged(path, one_line(exc).rpartition("failed:")[2]) from exc
    if providers[0] not in session.get_providers():
        raise ArtifactError(
            f"{path}: ONNX Runtime could not start {providers[0]} and would run on "
            f"{', '.join(session.get_providers())}; check the CUDA and cuDNN libraries "
            "onnxruntime-gpu needs, or use --device cpu."
        )
    return session


def _last_position(logits: np.ndarray) -> np.ndarray:
    """``[b, vocab]`` float32 logits of the newest position (optimum's graphs return
    ``[b, 1, vocab]``; an fp16 graph's are widened, as the decoding loop's arithmetic expects)."""
    return (logits[:, -1] if logits.ndim == 3 else logits).astype(np.float32, copy=False)


class TorchScriptGraphs:
    """An artifact's TorchScript module, its three methods the graphs, run under ``inference_mode``."""

    def __init__(self, directory: Path, manifest: Manifest, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.manifest = manifest
        self.decoder = manifest.decoder
        self.buckets = manifest.buckets
        self.device = torch_device(device)
        self.device_type = self.device.type
        self.providers: list[str] = []

        path = directory / manifest.encoder  # the one module, whose methods are the three graphs
        with warnings.catch_warnings():  # TorchScript is deprecated upstream, still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                module = torch.jit.load(str(path), map_location=self.device).eval()
            except RuntimeError as exc:
                raise _damaged(path, one_line(exc), "TorchScript") from exc
        self.layout = manifest.layout
        self.encoder, self.init, self.step = module.encoder, module.decoder_init, module.decoder_step
        #: The dtype of the module's float inputs; int8 modules compute in fp32 between their
        #: quantized matmuls.
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(manifest.precision, torch.float32)

    def _tensor(self, array: np.ndarray) -> object:
        tensor = self.torch.from_numpy(array).to(self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    @staticmethod
    def _host(tensor: torch.Tensor) -> np.ndarray:
        """As numpy, floats as float32: numpy has no bfloat16, and fp16 and bf16 widen exactly, so
        the caches go back into the module unchanged."""
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        return tensor.cpu().numpy()

    def encode(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, extra: dict[str, np.ndarray]
    ) -> np.ndarray:
        inputs = [input_ids, attention_mask, *(extra[name] for name in self.layout.extra_inputs())]
        with self.torch.inference_mode():
            hidden = self.encoder(*(self._tensor(array) for array in inputs))
        return self._host(hidden)

    def decoder_init(
        self, input_ids: np.ndarray, encoder_hidden: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, Caches, Caches]:
        with self.torch.inference_mode():
            outputs = self.init(
                self._tensor(input_ids), self._tensor(encoder_hidden), self._tensor(attention_mask)
            )
        arrays = [self._host(tensor) for tensor in outputs]
        layers = self.decoder.layers
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
        arrays = [self._host(tensor) for tensor in outputs]
        return arrays[0], arrays[1:]


def torch_device(device: str) -> torch.device:
    """``device`` for PyTorch, refused up front when it has no CUDA: torch fails deep in a load.

    Raises:
        ArtifactError: ``cuda`` asked for and not available.
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
        raise ArtifactError(
            f"--device {device}: CUDA is not available ({why}); use --device cpu, or install a "
            "CUDA build of torch on a machine with an NVIDIA GPU."
        )
    return torch.device(device)


def open_graphs(directory: Path, manifest: Manifest, device: str = "cpu", threads: int = 0) -> Seq2SeqGraphs:
    """The runner the manifest's format calls for (ONNX Runtime's CUDA provider on ``cuda``)."""
    if manifest.format == "onnx":
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else None
        return OnnxGraphs(directory, manifest, providers, threads)
    return TorchScriptGraphs(directory, manifest, device)


def load_graphs(directory: str | Path, device: str = "cpu", threads: int = 0) -> Seq2SeqGraphs:
    """Open an artifact directory: read its manifest, then :func:`open_graphs`."""
    directory = Path(directory)
    return open_graphs(directory, Manifest.read(directory), device, threads)
