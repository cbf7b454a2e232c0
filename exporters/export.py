"""``profiler export``: checkpoint -> artifact directory (graphs, tokenizer, manifest), verified.

The artifact is built in a temporary sibling directory and renamed into place only after every
graph is written and parity holds, so a failed or interrupted export leaves nothing half-written.
One killed with SIGKILL cannot clean up: the next export beside it removes its build directory.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.jit._trace import TracerWarning

from exporters.modules import (
    SUPPORTED_MODEL_TYPES,
    DecoderInitGraph,
    DecoderStepGraph,
    EncoderGraph,
    check_eval_random_blocks,
)
from exporters.optimum_route import INSTALL as OPTIMUM_INSTALL
from exporters.optimum_route import export_with_optimum, optimum_installed, optimum_supports
from exporters.parity import compare_with_references, eager_references, failed_parity_message, parity_cases
from exporters.progress import ExportProgress, Steps
from profiler.artifact import (
    CUDA_PRECISIONS,
    FORMATS,
    MIN_TOKEN_AGREEMENT,
    ONNX_WEIGHTS,
    OPTIMUM_GRAPHS,
    PRECISIONS,
    TORCHSCRIPT_MODULE,
    ArtifactError,
    Format,
    GraphIO,
    Manifest,
    Precision,
    decoder_graphs,
    encoder_graph,
    precision_refusal,
)
from profiler.attention_layout import (
    BLOCK_BIAS,
    BLOCK_INDEX,
    GLOBAL_ATTENTION_MASK,
    GLOBAL_INDEX,
    LAST_BLOCK,
    EncoderBatch,
    EncoderLayout,
)
from profiler.checkpoints import load_model
from profiler.decoding_config import DecodingConfig
from profiler.errors import file_in_the_way
from profiler.memory import peak_rss_bytes, reset_peak_rss
from profiler.modelinfo import DEFAULT_LENGTHS, decoder_spec, encoder_layout, max_input_length
from profiler.workload import load_tokenizer, save_tokenizer

ONNX_OPSET = 17

#: Lines transformers logs or warns while an export traces and checks the graphs that ask nothing
#: of the user (message beginnings); dropped for the export's duration. Loading warnings (weights
#: that would be random or unused) are never among them.
HARMLESS_LOG_LINES = (
    # BigBird pads each parity input to its block, as the layout does (docs/exporting.md).
    "Input ids are automatically padded",
    # BigBird's reference attends fully to parity inputs too short for sparse attention, as the
    # graphs do; the parity check includes them on purpose.
    "Attention type 'block_sparse' is not possible",
    # transformers 5.x, while tracing: seq2seq configs name no loss, and nothing is trained here.
    "`loss_type=None` was set in the config but it is unrecognized",
    "`is_gradient_checkpointing` is deprecated",
    # torch.onnx: slices it cannot fold into constants are computed at run time, as intended.
    "Constant folding",
)


class _HarmlessLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(HARMLESS_LOG_LINES)


@contextlib.contextmanager
def _without_harmless_lines() -> Iterator[None]:
    """Drop :data:`HARMLESS_LOG_LINES` from transformers' log handlers and from warnings."""
    handlers = logging.getLogger("transformers").handlers
    harmless = _HarmlessLines()
    for handler in handlers:
        handler.addFilter(harmless)
    try:
        with warnings.catch_warnings():
            for line in HARMLESS_LOG_LINES:
                warnings.filterwarnings("ignore", message=re.escape(line))
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(harmless)


class ExportError(ArtifactError):
    """The export cannot be done as asked; the message says what to fix.

    An ArtifactError, so every command that may export (sweep, demo) reports it as a user error.
    """


def checkpoint_sha256(directory: Path) -> str:
    """Content hash of every file in a checkpoint directory (names and bytes, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_model_type(checkpoint: Path, format_: Format) -> str:
    """The checkpoint's ``model_type``, refused in one line that says what to do when ``format_``
    cannot export it."""
    if not checkpoint.is_dir():
        raise ExportError(f"{checkpoint}: no such directory; pass a Hugging Face checkpoint directory.")
    config_path = checkpoint / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(f"{checkpoint}: no config.json; this is not a Hugging Face checkpoint.") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{config_path}: unreadable ({exc}).") from exc
    model_type = str(config.get("model_type", ""))
    if model_type in SUPPORTED_MODEL_TYPES:
        return model_type
    named = f"{checkpoint}: model type {model_type or 'unknown'!r}"
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    if format_ == "torchscript":
        raise ExportError(
            f"{named}: TorchScript export supports {supported}; "
            "export other seq2seq models with --format onnx (through optimum-onnx)."
        )
    others = "seq2seq models optimum-onnx exports (e.g. bart, t5, pegasus, marian)"
    if not optimum_installed():
        raise ExportError(
            f"{named} is not supported without optimum-onnx, which is not installed (supported now: "
            f"{supported}); for the other {others}: {OPTIMUM_INSTALL}."
        )
    if not optimum_supports(model_type):
        raise ExportError(
            f"{named} is not supported; supported: {supported} (ONNX and TorchScript), and for ONNX "
            f"the {others}."
        )
    return model_type


def validate_shapes(config: Any, lengths: Sequence[int], batch_sizes: Sequence[int]) -> None:
    """Reject buckets the model cannot take and batch sizes below one."""
    if not lengths:
        raise ExportError("give at least one bucket length, e.g. --lengths 1024,2048.")
    if any(size < 1 for size in batch_sizes) or not batch_sizes:
        raise ExportError(f"batch sizes must be 1 or more, got {list(batch_sizes)}.")
    if min(lengths) < 1:
        raise ExportError(f"bucket lengths must be 1 or more, got {list(lengths)}.")
    limit, layout = max_input_length(config), encoder_layout(config)
    padded = layout.row_length(max(lengths))
    if limit is not None and padded > limit:
        longest = limit // layout.multiple * layout.multiple
        raise ExportError(
            f"length {max(lengths)} is above what the model takes: padded to {padded} tokens "
            f"(a multiple of {layout.multiple}), over its {limit} positions; use lengths up to {longest}."
        )


def _check_output(checkpoint: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is a file; choose a directory path with -o.")
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise ExportError(f"{out}: {blocker} is a file, not a directory; choose another -o path.")
    if checkpoint.resolve().is_relative_to(out.resolve()):
        raise ExportError(
            f"{out} holds the checkpoint {checkpoint}, which the artifact would replace; "
            "choose another -o path."
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} is not empty; choose a new directory or pass --overwrite.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(parent: Path) -> list[Path]:
    """Remove build directories that exports killed with SIGKILL left in ``parent``.

    Only those whose process is gone: a live PID may be an export still running.
    """
    stale = [
        path
        for path in parent.glob(".*.partial-*")
        if path.is_dir()
        and (pid := path.name.rpartition("-")[2]).isdigit()
        and int(pid) != os.getpid()
        and not _pid_alive(int(pid))
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _prepare_output(out: Path, log: Callable[[str], None] | None) -> tuple[Path, list[Path]]:
    """The staging directory, and the parents of ``out`` created for it (removed on failure)."""
    created = [parent for parent in out.parents if not parent.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"{out}: cannot create {out.parent} ({exc.strerror}); choose another -o path."
        ) from exc
    stale = remove_stale_partials(out.parent)
    if stale and log is not None:
        names = ", ".join(path.name for path in stale)
        log(f"removed {names} from {out.parent}: left by an export that was killed.")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging, created


def _publish(staging: Path, out: Path) -> None:
    """Swap the finished artifact into place; the old one is removed only afterwards."""
    retired = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def _encoder_example(model: Any, batch: int, length: int) -> EncoderBatch:
    """A batch of seeded ids (LED: global attention on the first token) to trace the encoder with."""
    config = model.config
    generator = np.random.default_rng(length)
    rows = [generator.integers(3, config.vocab_size, size=length) for _ in range(batch)]
    layout = encoder_layout(config)
    return layout.batch(rows, config.pad_token_id, [1 if layout.global_attention else 0] * batch)


def _encoder_args(
    layout: EncoderLayout, example: EncoderBatch, model: Any = None
) -> tuple[torch.Tensor, ...]:
    arrays = [
        example.input_ids,
        example.attention_mask,
        *(example.extra[name] for name in layout.extra_inputs()),
    ]
    return tuple(_like_model(torch.from_numpy(array), model) for array in arrays)


def _like_model(tensor: torch.Tensor, model: Any) -> torch.Tensor:
    """``tensor`` on ``model``'s device, a float one in its dtype: an fp16 model on CUDA is traced
    with fp16 float inputs (BigBird's block bias), so its graph declares them fp16."""
    if model is None:
        return tensor
    weight = model.get_input_embeddings().weight
    tensor = tensor.to(weight.device)
    return tensor.to(weight.dtype) if tensor.is_floating_point() else tensor


def _decoder_examples(model: Any, batch: int, length: int) -> tuple[tuple[torch.Tensor, ...], ...]:
    """Example inputs for the two decoder graphs (encoder length ``length``)."""
    config = model.config
    example = _encoder_example(model, batch, length)
    mask = _like_model(torch.from_numpy(example.attention_mask), model)
    start = _like_model(torch.full((batch, 1), config.decoder_start_token_id, dtype=torch.long), model)
    with torch.inference_mode():
        hidden = EncoderGraph(model)(*_encoder_args(encoder_layout(config), example, model))
        outputs = DecoderInitGraph(model)(start, hidden, mask)
    caches = tuple(tensor.clone() for tensor in outputs[1:])
    init_args = (start, hidden.clone(), mask)
    step_args = (start, _like_model(torch.tensor([1], dtype=torch.long), model), mask, *caches)
    return init_args, step_args


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the system (glibc keeps it for reuse): what one
    graph's export freed would otherwise stay resident under the next stage, and parity, which
    holds the model and every session at once, comes last."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _WeightsFile:
    """One external-data file for an artifact's ONNX graphs, each distinct tensor stored once.

    Our graphs are exported without their weights (``export_params=False``: the weights are graph
    inputs named as in the module's state dict) and the weights are written here straight from the
    model's tensors, one at a time. torch.onnx would otherwise hold, at once, the model, every
    weight it folds (the ``Linear`` weights, transposed for ``MatMul``), the graph's protobuf and
    its serialized bytes: 4 GB above the model for BigBird-Pegasus large's 1.5 GB decoder graph.
    The transposes are folded here, and tensors are matched by content (the graphs name the same
    tensor differently), so each is written once and every graph points at the same bytes, which
    the ONNX runner maps once for all its sessions.
    """

    #: Tensors smaller than this stay in the graph (shape constants, scalars). Units: bytes.
    MIN_BYTES = 1024
    #: Offsets are multiples of this, so every tensor can be used in place. Units: bytes.
    ALIGN = 64

    def __init__(self, directory: Path) -> None:
        self.path = directory / ONNX_WEIGHTS
        self.path.touch()
        self.offsets: dict[tuple[bytes, str, tuple[int, ...]], int] = {}

    def export(
        self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], graph: Path, **options: Any
    ) -> None:
        """``torch.onnx.export`` ``module`` to ``graph`` without its weights, then :meth:`take` them."""
        torch.onnx.export(
            module,
            args,
            str(graph),
            opset_version=ONNX_OPSET,
            dynamo=False,
            do_constant_folding=False,  # take() folds what matters: the weights' transposes
            export_params=False,
            **options,
        )
        self.take(graph, module.state_dict(keep_vars=True))

    def take(self, graph: Path, params: Mapping[str, torch.Tensor] | None = None) -> None:
        """Move ``graph``'s weights into the shared file: the inputs named in ``params`` (a graph
        exported without its weights), its initializers (inline, or external files beside it) and
        large constants; ``Transpose`` nodes of a weight become the transposed weight."""
        import onnx
        from onnx import numpy_helper
        from onnx.external_data_helper import load_external_data_for_model

        model = onnx.load(str(graph), load_external_data=False)
        beside = {
            entry.value
            for tensor in model.graph.initializer
            for entry in tensor.external_data
            if entry.key == "location"
        } - {self.path.name}
        load_external_data_for_model(model, str(graph.parent))
        arrays = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
        del model.graph.initializer[:]
        for value in list(model.graph.input):
            if params is not None and value.name in params:
                arrays[value.name] = params[value.name].detach().cpu().numpy()
                model.graph.input.remove(value)
        for node in list(model.graph.node):
            # Large constants traced into a graph; as initializers they are stored once too.
            value = node.attribute[0].t if node.op_type == "Constant" else None
            if value is not None and len(value.raw_data) >= self.MIN_BYTES:
                arrays[node.output[0]] = numpy_helper.to_array(value)
                model.graph.node.remove(node)
        _fold_transposes(model, arrays)
        with self.path.open("r+b") as out:
            for name, array in arrays.items():
                model.graph.initializer.append(self._stored(out, name, np.ascontiguousarray(array)))
        arrays.clear()
        onnx.save(model, str(graph))
        for name in beside:
            (graph.parent / name).unlink()
        del model
        _release_freed_memory()

    def _stored(self, out: BinaryIO, name: str, array: np.ndarray) -> Any:
        """``array`` as an initializer: inline when small, else at its offset in the shared file,
        written there unless the same bytes already are."""
        import onnx
        from onnx import numpy_helper

        if array.nbytes < self.MIN_BYTES:
            return numpy_helper.from_array(array, name)
        data = array.reshape(-1).view(np.uint8).data
        key = (hashlib.sha256(data).digest(), array.dtype.str, array.shape)
        if key not in self.offsets:
            end = out.seek(0, os.SEEK_END)
            self.offsets[key] = end + -end % self.ALIGN
            out.seek(self.offsets[key])
            out.write(data)
        tensor = onnx.TensorProto(
            name=name, dims=array.shape, data_type=onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        )
        tensor.data_location = onnx.TensorProto.EXTERNAL
        where = {"location": self.path.name, "offset": self.offsets[key], "length": array.nbytes}
        for field, value in where.items():
            entry = tensor.external_data.add()
            entry.key, entry.value = field, str(value)
        return tensor


def _fold_transposes(model: Any, arrays: dict[str, np.ndarray]) -> None:
    """Replace each ``Transpose`` of a weight in ``arrays`` by the transposed weight (a view, made
    contiguous only when written); a weight nothing else reads is dropped."""
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    outputs = {value.name for value in model.graph.output}
    for node in list(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] not in arrays:
            continue
        source = node.input[0]
        perm = next((list(attr.ints) for attr in node.attribute if attr.name == "perm"), None)
        arrays[node.output[0]] = np.transpose(arrays[source], perm)
        model.graph.node.remove(node)
        uses[source] -= 1
        if uses[source] == 0 and source not in outputs:
            del arrays[source]


#: The steps writing a format's graphs take: ONNX exports them one by one, TorchScript traces them
#: into one module.
OPTIMUM_STEP = "graphs (optimum)"
GRAPH_STEPS = {
    "onnx": ("graph encoder", "graph decoder_init", "graph decoder_step"),
    "torchscript": ("graphs encoder, decoder_init and decoder_step (one TorchScript module)",),
}


def _export_onnx(model: Any, length: int, batch: int, staging: Path, steps: Steps) -> dict[str, Any]:
    io = GraphIO.of("profiler", model.config.decoder_layers)
    weights = _WeightsFile(staging)
    layout = encoder_layout(model.config)
    encoder_name = encoder_graph("onnx")
    sequence = {0: "batch", 1: "length"}
    axes = {
        io.input_ids: sequence,
        io.attention_mask: sequence,
        io.last_hidden_state: sequence,
        GLOBAL_ATTENTION_MASK: sequence,
        GLOBAL_INDEX: {0: "batch", 1: "global_tokens"},
        BLOCK_INDEX: {0: "batch", 1: "middle_blocks", 2: "slots"},
        BLOCK_BIAS: {0: "batch", 1: "middle_blocks", 2: "slots"},
        LAST_BLOCK: {0: "batch"},
    }
    inputs = GraphIO.encoder_inputs(layout)
    encoder_step, init_step, step_step = GRAPH_STEPS["onnx"]
    steps.start(encoder_step)
    weights.export(
        EncoderGraph(model).eval(),
        _encoder_args(layout, _encoder_example(model, batch, length), model),
        staging / encoder_name,
        input_names=inputs,
        output_names=[io.last_hidden_state],
        dynamic_axes={name: axes[name] for name in [*inputs, io.last_hidden_state]},
    )
    init_args, step_args = _decoder_examples(model, batch, length)
    init_name, step_name = decoder_graphs("onnx")
    encoder_axes = {0: "batch", 1: "encoder_length"}
    cache_axes = {0: "batch", 2: "past_length"}
    steps.start(init_step)
    weights.export(
        DecoderInitGraph(model).eval(),
        init_args,
        staging / init_name,
        input_names=io.init_inputs(),
        output_names=io.init_outputs(),
        dynamic_axes={
            io.input_ids: {0: "batch"},
            io.encoder_hidden: encoder_axes,
            io.encoder_mask: encoder_axes,
            io.logits: {0: "batch"},
            **{name: {0: "batch"} for name in io.presents},
            **{name: {0: "batch", 2: "encoder_length"} for name in io.cross_presents},
        },
    )
    steps.start(step_step)
    weights.export(
        DecoderStepGraph(model).eval(),
        step_args,
        staging / step_name,
        input_names=io.step_inputs(),
        output_names=io.step_outputs(),
        dynamic_axes={
            io.input_ids: {0: "batch"},
            io.encoder_mask: encoder_axes,
            io.logits: {0: "batch"},
            **dict.fromkeys(io.self_cache, cache_axes),
            **{name: {0: "batch", 2: "total_length"} for name in io.presents},
            **{name: {0: "batch", 2: "encoder_length"} for name in io.cross_cache},
        },
    )
    return {"encoder": encoder_name, "decoder_init": init_name, "decoder_step": step_name}


class _TorchScriptModule(torch.nn.Module):
    """The three graphs as methods of one module: TorchScript then stores and loads the weights
    they share once, where three modules would each carry their own copy."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.encoder_graph = EncoderGraph(model)
        self.init_graph = DecoderInitGraph(model)
        self.step_graph = DecoderStepGraph(model)

    def encoder(self, *args: torch.Tensor) -> torch.Tensor:
        return self.encoder_graph(*args)  # type: ignore[no-any-return]

    def decoder_init(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.init_graph(*args)  # type: ignore[no-any-return]

    def decoder_step(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.step_graph(*args)  # type: ignore[no-any-return]


def _export_torchscript(model: Any, length: int, batch: int, staging: Path, steps: Steps) -> dict[str, Any]:
    steps.start(GRAPH_STEPS["torchscript"][0])
    layout = encoder_layout(model.config)
    init_args, step_args = _decoder_examples(model, batch, length)
    examples = {
        "encoder": _encoder_args(layout, _encoder_example(model, batch, length), model),
        "decoder_init": init_args,
        "decoder_step": step_args,
    }
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace_module(_TorchScriptModule(model).eval(), examples, check_trace=False)
        # Freezing inlines the weights into each method; the methods' constants are the same
        # tensors, which torch.jit.save still stores once.
        torch.jit.save(
            torch.jit.freeze(traced, preserved_attrs=list(examples)), str(staging / TORCHSCRIPT_MODULE)
        )
    return dict.fromkeys(examples, TORCHSCRIPT_MODULE)


def check_precision(precision: str, format_: Format, model_type: str) -> Precision:
    """``precision`` if this machine can export ``format_`` of ``model_type`` in it.

    Raises:
        ExportError: an unknown precision, one ``format_`` cannot hold, reduced precision of a model
            exported through optimum, or fp16/bf16 without CUDA.
    """
    why = precision_refusal(precision, format_)
    if why is not None:
        raise ExportError(f"--precision {precision}: {why}.")
    chosen: Precision = next(name for name in PRECISIONS if name == precision)
    if chosen != "fp32" and model_type not in SUPPORTED_MODEL_TYPES:
        raise ExportError(
            f"--precision {chosen}: reduced precision exports {', '.join(SUPPORTED_MODEL_TYPES)} only; "
            f"export this {model_type} model with --precision fp32."
        )
    if chosen in CUDA_PRECISIONS and not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
        raise ExportError(
            f"--precision {chosen} needs CUDA, which this machine does not have ({why}); export "
            "--precision fp32 or int8 here, or on a machine with an NVIDIA GPU and a CUDA build of torch."
        )
    return chosen


def check_min_token_agreement(value: float | None, precision: Precision) -> float | None:
    """The bound a ``precision`` export's parity holds it to: None (identical tokens) for fp32,
    ``value`` or :data:`MIN_TOKEN_AGREEMENT` otherwise.

    Raises:
        ExportError: a bound outside 0..1, or one given for fp32.
    """
    if precision == "fp32":
        if value is not None:
            raise ExportError(
                "--min-token-agreement applies to --precision fp16, bf16 or int8; fp32 must match "
                "transformers' tokens exactly. Drop it, or choose a reduced precision."
            )
        return None
    if value is None:
        return MIN_TOKEN_AGREEMENT
    if not 0.0 <= value <= 1.0:
        raise ExportError(f"--min-token-agreement {value:g}: give a fraction from 0 to 1, e.g. 0.9.")
    return value


def _graph_model(model: Any, precision: Precision, format_: Format) -> Any:
    """The model the graphs are made from: ``model`` itself (fp32, and int8 ONNX, quantized once
    exported), a copy cast to fp16 or bf16 on CUDA, or a copy with its ``nn.Linear`` layers
    dynamically quantized to int8 (TorchScript). ``model`` stays fp32 for parity's reference."""
    if precision in CUDA_PRECISIONS:
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return copy.deepcopy(model).to("cuda", dtype)
    if precision == "int8" and format_ == "torchscript":
        # lm_head is read as a weight (the logits' linear on the last position), not called.
        head = model.get_output_embeddings()
        linear = {
            name
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
        # torch says its eager-mode quantization and quantized tensors are deprecated in favour of
        # torchao, whose modules TorchScript cannot trace; these still work, and the user can do
        # nothing about the notes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize: Callable[..., Any] = torch.ao.quantization.quantize_dynamic
            return quantize(model, qconfig_spec=linear, dtype=torch.qint8)
    return model


#: What onnxruntime.quantization logs on every graph and asks nothing of the user: our graphs'
#: shapes are dynamic, so its shape-inference pre-processing has nothing to add.
_QUANTIZE_NOTE = "Please consider to run pre-processing before quantization"


class _QuantizeNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_QUANTIZE_NOTE)


def _quantize_onnx(staging: Path, graphs: Mapping[str, str]) -> None:
    """Replace the fp32 ONNX graphs in ``staging`` by int8 ones: ONNX Runtime's dynamic
    quantization of every ``MatMul`` whose weight is a constant (the linear layers; the logits'
    ``Gemm`` on the tied embedding stays fp32), its weights in a new shared ``weights.bin``, each
    quantized tensor once (the same weight quantizes to the same bytes in every graph)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = staging / "fp32"
    fp32.mkdir()
    for name in [*sorted(set(graphs.values())), ONNX_WEIGHTS]:
        (staging / name).rename(fp32 / name)
    weights = _WeightsFile(staging)
    root = logging.getLogger()
    quiet, note = logging.NullHandler(), _QuantizeNote()
    root.addHandler(quiet)  # logging.warning would otherwise install a stderr handler for good
    root.addFilter(note)
    try:
        for name in sorted(set(graphs.values())):
            quantize_dynamic(
                fp32 / name,
                staging / name,
                op_types_to_quantize=["MatMul"],
                weight_type=QuantType.QInt8,
                use_external_data_format=True,
            )
            weights.take(staging / name)
    finally:
        root.removeFilter(note)
        root.removeHandler(quiet)
    shutil.rmtree(fp32)
    _release_freed_memory()


def _versions(fmt: str, decoder_graph: Path) -> dict[str, str]:
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        graph = onnx.load(str(decoder_graph), load_external_data=False)
        opset = next(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx"))
        versions |= {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": str(opset)}
    return versions


def _write_graphs(
    model: Any,
    checkpoint: Path,
    format_: Format,
    lengths: list[int],
    batch_sizes: list[int],
    staging: Path,
    steps: Steps,
) -> dict[str, Any]:
    """Every graph of the artifact into ``staging``; the manifest's graph fields."""
    # no_grad: a trace with autograd on keeps every activation of its example pass for a
    # backward that never comes (measured: 1.1 GB for LED base's encoder at 1,024 tokens).
    with warnings.catch_warnings(), torch.no_grad(), _without_harmless_lines():
        # Expected while tracing static-shape graphs: branches on constant buffer shapes, and
        # the exporters' notes on deprecated entry points.
        warnings.simplefilter("ignore", TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if model.config.model_type in SUPPORTED_MODEL_TYPES:
            check_eval_random_blocks(model, lengths)
            export_graphs = _export_onnx if format_ == "onnx" else _export_torchscript
            return export_graphs(model, min(lengths), max(batch_sizes), staging, steps)
        steps.start(OPTIMUM_STEP)
        graphs = export_with_optimum(checkpoint, staging)
        weights = _WeightsFile(staging)
        for name in OPTIMUM_GRAPHS:
            weights.take(staging / name)
        return graphs


def _make_graphs(
    model: Any,
    checkpoint: Path,
    format_: Format,
    precision: Precision,
    lengths: list[int],
    batch_sizes: list[int],
    staging: Path,
    steps: Steps,
) -> tuple[dict[str, Any], int]:
    """Every graph of the artifact into ``staging`` in ``precision``; the manifest's graph fields and
    its ``weight_bytes`` (fp16/bf16: the cast model's; int8: the fp32 model's, whose linear layers
    the artifact holds at a quarter: ``file_sizes`` says what that saved)."""
    graph_model = _graph_model(model, precision, format_)
    graphs = _write_graphs(graph_model, checkpoint, format_, lengths, batch_sizes, staging, steps)
    counted = graph_model if precision in CUDA_PRECISIONS else model
    weight_bytes = sum(p.numel() * p.element_size() for p in counted.parameters())
    del graph_model, counted
    if precision == "int8" and format_ == "onnx":
        _quantize_onnx(staging, graphs)
    return graphs, weight_bytes


def export(
    checkpoint: Path,
    fmt: str,
    out: Path,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    batch_sizes: Sequence[int] = (1,),
    overwrite: bool = False,
    skip_parity: bool = False,
    new_tokens: int = 32,
    log: Callable[[str], None] | None = None,
    allow_new_weights: bool = False,
    progress: ExportProgress | None = None,
    precision: str = "fp32",
    min_token_agreement: float | None = None,
) -> Manifest:
    """Export ``checkpoint`` to ``out`` in ``fmt`` and ``precision``, then verify it at and off
    every bucket against fp32 transformers: fp32 to identical tokens, reduced precision to at
    least ``min_token_agreement`` of them (default :data:`MIN_TOKEN_AGREEMENT`).

    ``out``'s missing parents are created; build directories that killed exports left beside it
    are removed, and ``log`` is told. ``progress`` hears of each step (each graph, then transformers'
    reference and the parity check of each case: :mod:`exporters.progress`). A checkpoint some of
    whose parameters do not come from its weights file is refused unless ``allow_new_weights``
    (then the manifest names them).

    Raises:
        ExportError: bad arguments, an unsupported checkpoint, or failed parity (the message
            holds the table); nothing is left at ``out`` in that case.
        CheckpointError: the checkpoint's weights do not load, or do not cover the model.
        WorkloadError: the checkpoint has no usable tokenizer.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    format_: Format = "onnx" if fmt == "onnx" else "torchscript"
    model_type = read_model_type(checkpoint, format_)
    chosen = check_precision(precision, format_, model_type)
    agreement = check_min_token_agreement(min_token_agreement, chosen)
    _check_output(checkpoint, out, overwrite)
    started = time.perf_counter()
    reset_peak_rss()
    tokenizer = load_tokenizer(checkpoint)
    loaded = load_model(checkpoint, allow_new_weights)
    model = loaded.model
    lengths = sorted(set(lengths))
    batch_sizes = sorted(set(batch_sizes))
    validate_shapes(model.config, lengths, batch_sizes)
    native = model.config.model_type in SUPPORTED_MODEL_TYPES
    graph_steps = len(GRAPH_STEPS[format_]) if native else 1
    cases = 0 if skip_parity else len(parity_cases(lengths, batch_sizes, encoder_layout(model.config)))
    steps = Steps(graph_steps + 2 * cases, progress)
    staging, created = _prepare_output(out, log)
    try:
        graphs, weight_bytes = _make_graphs(
            model, checkpoint, format_, chosen, lengths, batch_sizes, staging, steps
        )
        save_tokenizer(tokenizer, staging)
        manifest = Manifest(
            format=format_,
            model_type=model.config.model_type,
            source_path=str(checkpoint.resolve()),
            source_sha256=checkpoint_sha256(checkpoint),
            buckets=lengths,
            batch_sizes=batch_sizes,
            layout=encoder_layout(model.config),
            decoder=decoder_spec(model.config),
            decoding=DecodingConfig.from_checkpoint(checkpoint),
            versions=_versions(format_, staging / graphs["decoder_init"]),
            parity_skipped=skip_parity,
            new_weights=loaded.new_weights,
            precision=chosen,
            min_token_agreement=agreement,
            **graphs,
        )
        references = []
        if not skip_parity:
            with _without_harmless_lines():
                references = eager_references(model, manifest, new_tokens, steps)
        # The model is done with: the graphs are opened without it beside them, so the export's
        # peak is the larger of the two, not their sum (BigBird-Pegasus large: 2.3 GB of weights).
        del model, loaded
        _release_freed_memory()
        parity = []
        if not skip_parity:
            with _without_harmless_lines():
                device = "cuda" if chosen in CUDA_PRECISIONS else "cpu"
                parity = compare_with_references(references, staging, manifest, new_tokens, steps, device)
            if not all(row.passed for row in parity):
                raise ExportError(failed_parity_message(parity, manifest.parity_tolerance, agreement))
        sizes = {path.name: path.stat().st_size for path in sorted(staging.iterdir()) if path.is_file()}
        seconds = round(time.perf_counter() - started, 3)
        manifest = manifest.model_copy(
            update={
                "parity": parity,
                "export_seconds": seconds,
                "export_peak_rss_bytes": peak_rss_bytes(),
                "weight_bytes": weight_bytes,
                "file_sizes": sizes,
            }
        )
        manifest.write(staging)
        _publish(staging, out)
        steps.start("written")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:  # nearest first
            with contextlib.suppress(OSError):  # something else was put there meanwhile
                parent.rmdir()
        raise
    return manifest


__all__ = ["DEFAULT_LENGTHS", "ArtifactError", "ExportError", "export"]
