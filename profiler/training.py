"""Fine-tune the demo's small LED or BigBird-Pegasus on the synthetic codes task, reproducibly.

The demo's random checkpoints score 0 on every task, so its accuracy figures never showed a
trade-off. This trains the ``small`` shape of :mod:`profiler.checkpoints` on
:mod:`profiler.synthetic` documents, short ones first and longer ones last (a curriculum: the
model learns to find a code among 100 tokens before it must among thousands), with fixed seeds,
one torch thread and a fixed data order, so the same recipe writes the same weights on any
machine with the same torch build.

LED's learned position table of the encoder is zeroed and frozen: the task needs no positions
(each code is found by its range), and rows that training at short lengths never reached would
otherwise stay random and garble every longer input. BigBird-Pegasus' positions are sinusoidal.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from profiler.checkpoints import (
    Arch,
    CheckpointError,
    Size,
    _make_model,
    check_checkpoint_dir,
    model_config,
    model_shape,
    parse_arch,
    train_tokenizer,
    write_checkpoint_dir,
)
from profiler.documents import Document
from profiler.errors import one_line
from profiler.synthetic import TASK, bare_example, make_example

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

#: The shape trained: the demo's.
TRAINED_SIZE: Size = "small"
#: Standard deviation of the starting weights: transformers' usual, which trains (the shapes'
#: INIT_STD 0.3 makes a chaotic model, on purpose, for the parity tests).
TRAIN_INIT_STD = 0.02
#: Torch threads while training: fixed, since the sums' order (and so the weights' last bits)
#: depends on how many threads share a matrix product.
TRAIN_THREADS = 1
#: Where the shipped weights and their recipe live (package data).
TRAINED_DIR = Path(__file__).parent / "data" / "trained"


@dataclass(frozen=True)
class Stage:
    """A curriculum stage: ``steps`` batches of documents of ``sentences`` filler sentences each
    (about 15 tokens a sentence), or of the codes alone (None)."""

    steps: int
    sentences: int | None
    batch: int
    #: Chance that a code is missing from a document but not from its answer (see make_example).
    drop: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights."""

    arch: Arch
    seed: int = 0
    stages: tuple[Stage, ...] = (
        Stage(steps=200, sentences=None, batch=16),
        Stage(steps=100, sentences=0, batch=16),
        Stage(steps=100, sentences=2, batch=16),
        Stage(steps=100, sentences=8, batch=16, drop=0.25),
        Stage(steps=100, sentences=24, batch=8, drop=0.25),
        Stage(steps=100, sentences=64, batch=4, drop=0.25),
        Stage(steps=50, sentences=160, batch=2, drop=0.25),
    )
    lr: float = 1e-3
    warmup_steps: int = 30
    tokenizer_seed: int = 0

    @property
    def steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Steps of the recipe that the test suite re-runs to check the shipped recipe still makes the
#: same weights (the whole recipe takes too long for a test).
PREFIX_STEPS = 10


@dataclass(frozen=True)
class TrainedWeights:
    """What :func:`train` produced."""

    recipe: Recipe
    state: dict[str, torch.Tensor]
    seconds: float
    final_loss: float
    #: :func:`weights_sha256` after :data:`PREFIX_STEPS` steps (None if it stopped before).
    prefix_sha256: str | None


def stage_of(recipe: Recipe, step: int) -> Stage:
    """The curriculum stage that step ``step`` (from 0) belongs to."""
    for stage in recipe.stages:
        if step < stage.steps:
            return stage
        step -= stage.steps
    raise ValueError(f"step {step} is past the recipe's {recipe.steps} steps")


def _describe(stage: Stage) -> str:
    shown = "codes alone" if stage.sentences is None else f"{stage.sentences} sentences"
    return f"{shown} x {stage.batch}"


def _lr_factor(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def target_text(arch: Arch, output: str) -> str:
    """The answer as the decoder learns it: LED's byte-level tokenizer marks a word start by the
    space before it, so the first code gets one too (``" 7 31"`` is 2 tokens, ``"7 31"`` 3)."""
    return f" {output}" if arch == "led" else output


@contextlib.contextmanager
def _training_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "padded to a multiple of the window" or "changing attention type" line per batch."""
    from transformers.utils import logging as transformers_logging

    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(before)


def _batch(
    arch: Arch, tokenizer: PreTrainedTokenizerFast, rng: random.Random, stage: Stage
) -> dict[str, torch.Tensor]:
    import torch

    examples = [
        bare_example(rng) if stage.sentences is None else make_example(rng, stage.sentences, stage.drop)
        for _ in range(stage.batch)
    ]
    inputs = tokenizer([ex.input for ex in examples], padding=True, return_tensors="pt")
    labels = tokenizer([target_text(arch, ex.output) for ex in examples], padding=True, return_tensors="pt")
    label_ids = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
    batch = {
        "input_ids": inputs["input_ids"],
        "attention_mask": inputs["attention_mask"],
        "labels": label_ids,
    }
    if arch == "led":  # global attention on the first token, as the server runs LED by default
        global_mask = torch.zeros_like(inputs["input_ids"])
        global_mask[:, 0] = 1
        batch["global_attention_mask"] = global_mask
    return batch


def new_model(arch: Arch, tokenizer: PreTrainedTokenizerFast, seed: int) -> PreTrainedModel:
    """The small shape with fresh weights, LED's encoder position table zeroed and frozen."""
    shape = replace(model_shape(arch, TRAINED_SIZE), init_std=TRAIN_INIT_STD)
    config = model_config(shape, tokenizer)
    # Every batch is new text, so nothing to overfit: dropout would only slow learning down.
    config.dropout = 0.0
    model = _make_model(config, seed)
    if arch == "led":
        positions = model.get_encoder().embed_positions.weight
        positions.data.zero_()
        positions.requires_grad_(False)
    return model


def train(
    recipe: Recipe, steps: int | None = None, progress: Callable[[str], None] | None = None
) -> TrainedWeights:
    """Run the recipe's first ``steps`` steps (all by default) and return the weights.

    Args:
        recipe: what to train, and how.
        steps: stop early, after this many steps (the hash test re-runs a prefix).
        progress: called with a line every 25 steps and at the end.
    """
    import torch

    total = recipe.steps if steps is None else steps
    if not 0 < total <= recipe.steps:
        raise CheckpointError(f"--steps {total}: choose 1 to {recipe.steps}, the recipe's length.")
    tokenizer = train_tokenizer(recipe.arch, model_shape(recipe.arch, TRAINED_SIZE), recipe.tokenizer_seed)
    started = time.perf_counter()
    with _training_threads(), _quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = new_model(recipe.arch, tokenizer, recipe.seed)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(recipe, step))
        rng = random.Random(f"{TASK}:train:{recipe.seed}")
        loss_value = float("nan")
        prefix_sha256: str | None = None
        for step in range(total):
            stage = stage_of(recipe, step)
            loss = model(**_batch(recipe.arch, tokenizer, rng, stage)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            loss_value = loss.item()
            if step + 1 == PREFIX_STEPS:
                prefix_sha256 = weights_sha256(distinct_weights(model))
            if progress is not None and ((step + 1) % 25 == 0 or step + 1 == total):
                progress(
                    f"step {step + 1}/{total}  {_describe(stage)}  "
                    f"loss {loss_value:.4f}  {time.perf_counter() - started:.0f} s"
                )
        model.eval()
    return TrainedWeights(
        recipe, distinct_weights(model), time.perf_counter() - started, loss_value, prefix_sha256
    )


def distinct_weights(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The state dict with each tied tensor once (the embeddings, shared by encoder, decoder and
    output layer), under its first name."""
    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            state[name] = tensor.detach().clone()
    return state


def weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The weights as shipped: fp16 safetensors (half the size; the model is served in fp32)."""
    import torch
    from safetensors.torch import save

    half = {name: tensor.to(torch.float16).contiguous() for name, tensor in sorted(state.items())}
    return bytes(save(half))


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the weights as shipped (:func:`weights_bytes`)."""
    return hashlib.sha256(weights_bytes(state)).hexdigest()


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """The :class:`Recipe` a shipped record describes."""
    stages = tuple(Stage(**stage) for stage in data["stages"])
    return Recipe(**{**data, "arch": parse_arch(data["arch"]), "stages": stages})


class TrainedRecord(Document):
    """``<arch>.json`` beside the shipped ``<arch>.safetensors``: how the weights were made."""

    #: :meth:`Recipe.to_dict`; :func:`recipe_from_dict` reads it back.
    recipe: dict[str, Any]
    #: SHA-256 of the safetensors file (fp16).
    sha256: str
    seconds: float
    final_loss: float
    #: :func:`weights_sha256` after the recipe's first ``prefix_steps`` steps.
    prefix_steps: int
    prefix_sha256: str


@dataclass(frozen=True)
class ShippedWeights:
    """The trained weights of one architecture as the package ships them, and their record."""

    weights: Path
    record: TrainedRecord


def shipped(arch: Arch, directory: Path = TRAINED_DIR) -> ShippedWeights:
    """The shipped weights' file and record (``<arch>.json`` beside ``<arch>.safetensors``)."""
    record_path = directory / f"{arch}.json"
    try:
        record = TrainedRecord.model_validate_json(record_path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise CheckpointError(
            f"{record_path}: the trained {arch} weights' record is missing or damaged "
            f"({one_line(exc)}); reinstall the package or run `profiler checkpoints train --ship`."
        ) from exc
    return ShippedWeights(directory / f"{arch}.safetensors", record)


def compare_with_shipped(recipe: Recipe, steps: int, digest: str) -> str:
    """Whether weights of SHA-256 ``digest``, trained ``steps`` steps of ``recipe``, are the shipped
    ones (the whole recipe) or the recorded prefix (its first :data:`PREFIX_STEPS` steps)."""
    record = shipped(recipe.arch).record
    if recipe_from_dict(record.recipe) != recipe:
        return "not the shipped recipe, nothing to compare with"
    if steps == recipe.steps:
        expected, what = record.sha256, "the shipped weights"
    elif steps == record.prefix_steps:
        expected, what = record.prefix_sha256, f"the shipped recipe's first {steps} steps"
    else:
        return f"{steps} of the recipe's {recipe.steps} steps, nothing recorded to compare with"
    if digest == expected:
        return f"{what}, reproduced"
    return f"NOT {what} (another torch build or CPU kind rounds differently)"


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """fp16 weights from ``path``, as fp32 (the precision the model is built, exported and served in)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return {name: tensor.to(torch.float32) for name, tensor in load_file(path).items()}
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(
            f"{path}: trained weights missing or corrupt ({exc}); reinstall the package."
        ) from exc


def write_trained_checkpoint(
    arch: str, out_dir: Path, overwrite: bool = False, directory: Path = TRAINED_DIR
) -> Path:
    """A complete Hugging Face checkpoint of the shipped trained ``arch``: config, its weights in
    fp32, generation config, and the tokenizer (rebuilt: :func:`train_tokenizer` is deterministic)."""
    valid = parse_arch(arch)
    check_checkpoint_dir(out_dir, overwrite)
    meta = shipped(valid, directory)
    return write_checkpoint(
        recipe_from_dict(meta.record.recipe), load_weights(meta.weights), out_dir, str(meta.weights)
    )


def write_checkpoint(recipe: Recipe, state: dict[str, torch.Tensor], out_dir: Path, source: str) -> Path:
    """Write ``state`` (rounded to fp16, as shipped, and served in fp32) as a checkpoint of the
    recipe's architecture; ``source`` names the weights in an error."""
    import torch

    tokenizer = train_tokenizer(recipe.arch, model_shape(recipe.arch, TRAINED_SIZE), recipe.tokenizer_seed)
    model = new_model(recipe.arch, tokenizer, recipe.seed)
    rounded = {name: tensor.to(torch.float16).to(torch.float32) for name, tensor in state.items()}
    result = model.load_state_dict(rounded, strict=False)
    # The tied embeddings are stored once (distinct_weights); loading one fills them all.
    loaded = {tensor.data_ptr() for name, tensor in model.state_dict().items() if name in rounded}
    untied = [name for name in result.missing_keys if model.state_dict()[name].data_ptr() not in loaded]
    if untied or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: the weights do not fit the {recipe.arch} {TRAINED_SIZE} shape (missing "
            f"{untied[:3]}, unexpected {result.unexpected_keys[:3]}); reinstall the package."
        )
    write_checkpoint_dir(model, tokenizer, out_dir)
    return out_dir


def save_trained(weights: TrainedWeights, directory: Path = TRAINED_DIR) -> Path:
    """Write ``<arch>.safetensors`` (fp16) and ``<arch>.json`` (recipe, hashes, time) to ``directory``."""
    if weights.prefix_sha256 is None:
        raise CheckpointError("only the whole recipe can be shipped; leave --steps out.")
    data = weights_bytes(weights.state)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{weights.recipe.arch}.safetensors"
    path.write_bytes(data)
    record = TrainedRecord(
        recipe=weights.recipe.to_dict(),
        sha256=hashlib.sha256(data).hexdigest(),
        seconds=round(weights.seconds, 1),
        final_loss=round(weights.final_loss, 4),
        prefix_steps=PREFIX_STEPS,
        prefix_sha256=weights.prefix_sha256,
    )
    (directory / f"{weights.recipe.arch}.json").write_text(
        record.model_dump_json(indent=1) + "\n", encoding="utf-8"
    )
    return path
