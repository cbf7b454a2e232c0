"""LED and BigBird-Pegasus checkpoints built locally, no hub needed: small ones for the tests and
the demo, and the published models' shapes with random weights, to measure what those cost.

A checkpoint here is an ordinary Hugging Face directory (config, safetensors weights, generation
config, tokenizer) so every later stage treats it exactly like a user's fine-tuned model. Weights are
random but seeded, and the tokenizer is trained on text from :mod:`profiler.textgen`, so the same
arguments always write byte-identical files.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

from profiler.errors import ProfilerError, file_in_the_way, one_line
from profiler.textgen import corpus
from profiler.workload import save_tokenizer

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

# torch and transformers take seconds to import; they are imported where a model is built so
# that `profiler --help` and the other commands start at once.

logger = logging.getLogger(__name__)

Arch = Literal["led", "bigbird-pegasus"]
Size = Literal["tiny", "small", "base", "large"]
ARCHS: tuple[Arch, ...] = get_args(Arch)
SIZES: tuple[Size, ...] = get_args(Size)

#: Longest input, in tokens, that every checkpoint built here accepts (the study's largest length).
MAX_INPUT_TOKENS = 4096
#: Where `profiler demo` builds its checkpoints unless told otherwise; `profiler sweep --init`
#: points its example there.
DEMO_WORKDIR = Path("build/demo")
#: Standard deviation of the tiny and small shapes' random weights: wider than transformers'
#: default 0.02, with which greedy output repeats one token whatever the input, so that parity
#: has something to catch.
INIT_STD = 0.3
#: The published shapes' weights have a standard deviation of this over sqrt(d_model): 0.3 at
#: their widths makes a random model chaotic (a 1e-6 change to LED base's input embeddings reaches
#: 2.0 at its encoder's output, measured), so no two correct implementations, each rounding its
#: own way, agree. With this gain the same change stays below 1e-3 through every layer of LED base
#: and large and BigBird-Pegasus large (measured), as in a trained model.
PUBLISHED_INIT_GAIN = 2.2
#: Longest decoder sequence: covers ``forward`` mode targets and long generations.
MAX_TARGET_TOKENS = 1024


class CheckpointError(ProfilerError):
    """A checkpoint cannot be built or loaded as asked; the message says what to do."""


@dataclass(frozen=True)
class SlidingWindow:
    """LED's local attention: each token sees ``window / 2`` tokens on either side."""

    window: int


@dataclass(frozen=True)
class BlockSparse:
    """BigBird's attention; transformers runs full attention on inputs of at most
    ``(5 + 2 * random_blocks) * block_size`` tokens."""

    block_size: int
    random_blocks: int


@dataclass(frozen=True)
class ModelShape:
    """Dimensions of one architecture at one size; the attention kind decides the architecture."""

    d_model: int
    #: Each of the encoder and the decoder.
    layers: int
    heads: int
    ffn_dim: int
    #: Embedding and output rows, whatever the tokenizer trained here reaches.
    vocab_size: int
    #: Generated paragraphs the tokenizer is trained on: enough for it to reach ``vocab_size``.
    corpus_paragraphs: int
    attention: SlidingWindow | BlockSparse
    #: Rows of the encoder's position table: the longest input.
    max_input_tokens: int = MAX_INPUT_TOKENS
    #: Standard deviation of the random weights; None: :data:`PUBLISHED_INIT_GAIN` / sqrt(d_model).
    init_std: float | None = INIT_STD

    @property
    def weight_std(self) -> float:
        """The random weights' standard deviation (:attr:`init_std`, or width-scaled)."""
        return PUBLISHED_INIT_GAIN / self.d_model**0.5 if self.init_std is None else self.init_std


# tiny and small: the same dimensions for both architectures, so the two compare like for like.
# Builds in seconds: for tests.
_TINY = ModelShape(
    d_model=32,
    layers=1,
    heads=2,
    ffn_dim=64,
    vocab_size=1000,
    corpus_paragraphs=1500,
    attention=SlidingWindow(32),
)
# One 4096-token encoder pass in tens of milliseconds on a 2-core CPU: for the demo and benchmarks.
_SMALL = ModelShape(
    d_model=128,
    layers=2,
    heads=2,
    ffn_dim=512,
    vocab_size=8000,
    corpus_paragraphs=12000,
    attention=SlidingWindow(128),
)
# allenai/led-base-16384 (bart-base with its position table copied 16 times), config.json.
_LED_BASE = ModelShape(
    d_model=768,
    layers=6,
    heads=12,
    ffn_dim=3072,
    vocab_size=50265,
    corpus_paragraphs=16000,
    attention=SlidingWindow(1024),
    max_input_tokens=16384,
    init_std=None,
)

#: The shape of each (architecture, size) that exists. base and large are the published models'
#: shapes with random weights, to measure what those models cost without downloading them; Google
#: published BigBird-Pegasus only as large (google/bigbird-pegasus-large-*), so it has no base.
SHAPES: dict[tuple[Arch, Size], ModelShape] = {
    ("led", "tiny"): _TINY,
    ("bigbird-pegasus", "tiny"): replace(_TINY, attention=BlockSparse(block_size=16, random_blocks=2)),
    ("led", "small"): _SMALL,
    ("bigbird-pegasus", "small"): replace(_SMALL, attention=BlockSparse(block_size=64, random_blocks=3)),
    ("led", "base"): _LED_BASE,
    # allenai/led-large-16384 (from bart-large), config.json.
    ("led", "large"): replace(_LED_BASE, d_model=1024, layers=12, heads=16, ffn_dim=4096),
    # google/bigbird-pegasus-large-arxiv, config.json (also its -pubmed and -bigpatent siblings).
    ("bigbird-pegasus", "large"): ModelShape(
        d_model=1024,
        layers=16,
        heads=16,
        ffn_dim=4096,
        vocab_size=96103,
        corpus_paragraphs=32000,
        attention=BlockSparse(block_size=64, random_blocks=3),
        max_input_tokens=4096,
        init_std=None,
    ),
}


@dataclass(frozen=True)
class SpecialTokens:
    """Special tokens of one architecture's tokenizer, in vocabulary order (ids 0, 1, ...)."""

    tokens: tuple[str, ...]
    pad: str
    eos: str
    unk: str
    bos: str | None
    mask: str
    #: Template that wraps one sequence, as the original tokenizer does.
    template: str


SPECIAL_TOKENS: dict[Arch, SpecialTokens] = {
    # BART / LED: byte-level BPE, ``<s> text </s>``, pad id 1.
    "led": SpecialTokens(
        tokens=("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
        pad="<pad>",
        eos="</s>",
        unk="<unk>",
        bos="<s>",
        mask="<mask>",
        template="<s> $A </s>",
    ),
    # Pegasus: sentencepiece-style pieces, ``text </s>``, pad id 0 (also the decoder start).
    "bigbird-pegasus": SpecialTokens(
        tokens=("<pad>", "</s>", "<unk>", "<mask_1>"),
        pad="<pad>",
        eos="</s>",
        unk="<unk>",
        bos=None,
        mask="<mask_1>",
        template="$A </s>",
    ),
}


@dataclass(frozen=True)
class BuiltCheckpoint:
    """What :func:`build_checkpoint` wrote."""

    path: Path
    arch: Arch
    size: Size
    parameters: int
    #: Embedding and output rows.
    vocab_size: int
    #: Tokens the tokenizer learned: at most ``vocab_size``; it never encodes the ids above, and
    #: decodes them to nothing.
    tokens: int
    seconds: float


def train_tokenizer(arch: Arch, shape: ModelShape, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train the architecture's style of tokenizer on generated text.

    LED gets BART's byte-level BPE; BigBird-Pegasus gets sentencepiece-style pieces (``▁`` word
    marker, whitespace collapsed) as Pegasus does, trained here as BPE.
    """
    from transformers import PreTrainedTokenizerFast

    special = SPECIAL_TOKENS[arch]
    if arch == "led":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=special.unk))
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
        )
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        alphabet = []
    trainer = BpeTrainer(
        vocab_size=shape.vocab_size,
        special_tokens=list(special.tokens),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(f"tokenizer:{seed}", shape.corpus_paragraphs), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=special.template,
        special_tokens=[(tok, tokenizer.token_to_id(tok)) for tok in (special.bos, special.eos) if tok],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=shape.max_input_tokens,
        # Seq2seq models take no token_type_ids; leaving them in breaks generate().
        model_input_names=["input_ids", "attention_mask"],
        pad_token=special.pad,
        eos_token=special.eos,
        unk_token=special.unk,
        bos_token=special.bos,
        mask_token=special.mask,
    )


def model_config(shape: ModelShape, tokenizer: PreTrainedTokenizerFast) -> PretrainedConfig:
    """The transformers config for one shape, wired to the tokenizer's special token ids.

    ``vocab_size`` is the shape's, not the tokenizer's length: a published model's embedding and
    output rows cost the same whether or not the tokenizer trained here reaches them.
    """
    from transformers import BigBirdPegasusConfig, LEDConfig

    common = {
        "vocab_size": shape.vocab_size,
        "d_model": shape.d_model,
        "encoder_layers": shape.layers,
        "decoder_layers": shape.layers,
        "encoder_attention_heads": shape.heads,
        "decoder_attention_heads": shape.heads,
        "encoder_ffn_dim": shape.ffn_dim,
        "decoder_ffn_dim": shape.ffn_dim,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "init_std": shape.weight_std,
    }
    attention = shape.attention
    if isinstance(attention, SlidingWindow):
        return LEDConfig(
            **common,
            bos_token_id=tokenizer.bos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            attention_window=[attention.window] * shape.layers,  # per layer, as published
            max_encoder_position_embeddings=shape.max_input_tokens,
            max_decoder_position_embeddings=MAX_TARGET_TOKENS,
        )
    return BigBirdPegasusConfig(
        **common,
        decoder_start_token_id=tokenizer.pad_token_id,
        attention_type="block_sparse",
        block_size=attention.block_size,
        num_random_blocks=attention.random_blocks,
        max_position_embeddings=shape.max_input_tokens,
        # As google/bigbird-pegasus-large-arxiv sets them (and transformers' defaults).
        activation_function="gelu_new",
        scale_embedding=True,
        use_bias=False,
    )


def _make_model(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """Randomly initialised weights, reproducible from ``seed``, leaving the global RNG alone."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, GenerationConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: PreTrainedModel = AutoModelForSeq2SeqLM.from_config(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        num_beams=1,
        do_sample=False,
    )
    return model


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """transformers' progress bars off for one load or save, its warnings left as they are.

    transformers 5.x draws a bar for every model it loads or saves ("Loading weights", "Writing
    model shards"): noise in the CLI's output and in server logs, for a local file read in moments.
    """
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model and the parameters that do not come from its weights file (allowed, recorded)."""

    model: PreTrainedModel
    new_weights: list[str]


def load_model(directory: Path, allow_new_weights: bool = False) -> LoadedModel:
    """A local checkpoint's seq2seq model in eval mode, with every weight from its files.

    transformers fills a parameter the weights file lacks with random values and drops one the
    model does not use, with only a log line; served, that is a different model than the one
    fine-tuned. So such a checkpoint is refused unless ``allow_new_weights``, and then the
    parameters concerned are returned, to be recorded with every figure measured on it. The
    encoder is put back in its configured attention mode before every pass (see
    :func:`restore_attention_type`), whoever calls it.

    Raises:
        CheckpointError: the weights are missing, corrupt or do not fit config.json, or (without
            ``allow_new_weights``) some parameters would be random or unused; the message names
            the file and what to do.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForSeq2SeqLM

    try:
        with quiet_progress_bars():
            model, info = AutoModelForSeq2SeqLM.from_pretrained(
                directory, local_files_only=True, output_loading_info=True
            )
    except SafetensorError as exc:
        names = sorted(path.name for path in directory.glob("*.safetensors"))
        where = directory / names[0] if len(names) == 1 else directory
        raise CheckpointError(
            f"{where}: corrupt or truncated weights ({exc}); copy the checkpoint again or rebuild it."
        ) from exc
    except (OSError, ValueError, RuntimeError) as exc:
        # OSError: no weights file; ValueError: not a seq2seq model; RuntimeError: the weights'
        # shapes do not match config.json.
        raise CheckpointError(
            f"{directory}: the model does not load ({one_line(exc)}); pass a complete LED, "
            "BigBird-Pegasus or other seq2seq checkpoint, or copy it again."
        ) from exc
    new = sorted(
        [f"{name} (random)" for name in info.get("missing_keys", [])]
        + [f"{name} (unused)" for name in info.get("unexpected_keys", [])]
        + [f"{entry[0]} (shape)" for entry in info.get("mismatched_keys", [])]
    )
    if new and not allow_new_weights:
        shown = ", ".join(new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
        raise CheckpointError(
            f"{directory}: {len(new)} parameter(s) do not come from the weights file: {shown}. Served, "
            "this is not the model that was trained; save the checkpoint again with all its weights, "
            "or pass --allow-new-weights to measure it anyway (recorded with every result)."
        )
    if new:
        logger.warning("%s: %d parameter(s) do not come from the weights file: %s", directory, len(new), new)
    model.eval()
    model.get_encoder().register_forward_pre_hook(lambda *_: restore_attention_type(model))
    return LoadedModel(model, new)


def restore_attention_type(model: Any) -> None:
    """Put a BigBird encoder back in the attention mode its config asks for.

    transformers' BigBird encoder switches itself to full attention for an input too short for
    block-sparse attention and never switches back, so every later, longer input would run full
    attention too. :func:`load_model` runs this before every encoder pass of the models it loads.
    """
    configured = getattr(model.config, "attention_type", None)
    encoder = model.get_encoder()
    if configured is not None and hasattr(encoder, "set_attention_type"):
        encoder.set_attention_type(configured)


def check_checkpoint_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an output path that is a file, lies under one, or is a non-empty directory."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir} exists and is a file; choose a directory path with -o.")
    blocker = file_in_the_way(out_dir)
    if blocker is not None:
        raise CheckpointError(f"{out_dir}: {blocker} is a file, not a directory; choose another -o path.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise CheckpointError(
            f"{out_dir} is not empty; choose an empty or new directory, or pass --overwrite."
        )


def parse_arch(arch: str) -> Arch:
    """Validate an architecture name from the command line or a config."""
    for known in ARCHS:
        if arch == known:
            return known
    raise CheckpointError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}.")


def parse_size(size: str) -> Size:
    """Validate a size name from the command line or a config."""
    for known in SIZES:
        if size == known:
            return known
    raise CheckpointError(f"unknown size {size!r}; choose one of: {', '.join(SIZES)}.")


def model_shape(arch: Arch, size: Size) -> ModelShape:
    """The shape of ``arch`` at ``size``, refused for a size of which no such model was published."""
    shape = SHAPES.get((arch, size))
    if shape is None:  # bigbird-pegasus base, the one combination not in SHAPES
        sizes = ", ".join(known for (of, known) in SHAPES if of == arch)
        raise CheckpointError(
            f"there is no {size} {arch}: Google published BigBird-Pegasus only as large; "
            f"pass --size large for its published shape (sizes of {arch}: {sizes})."
        )
    return shape


def write_checkpoint_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """Save ``model`` (safetensors) and ``tokenizer`` as a Hugging Face directory at ``out_dir``.

    Raises:
        CheckpointError: ``out_dir`` cannot be created.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(
            f"{out_dir}: cannot create it ({exc.strerror}); choose another -o path."
        ) from exc
    with quiet_progress_bars():
        model.save_pretrained(out_dir, safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)


def build_checkpoint(
    arch: str, size: str, out_dir: Path, seed: int = 0, overwrite: bool = False
) -> BuiltCheckpoint:
    """Write a complete Hugging Face checkpoint directory for ``arch`` at ``size``.

    Args:
        arch: ``led`` or ``bigbird-pegasus``.
        size: ``tiny`` (tests), ``small`` (demo and benchmarks), or ``base`` or ``large``: the
            published models' shapes (see :data:`SHAPES`; no ``base`` BigBird-Pegasus).
        out_dir: directory to create (with missing parents); must be new or empty unless
            ``overwrite``.
        seed: seeds both the weights and the tokenizer's training text.
        overwrite: replace files in a non-empty directory.

    Raises:
        CheckpointError: unknown arch or size, one not published, or an unusable output directory.
    """
    valid_arch, valid_size = parse_arch(arch), parse_size(size)
    shape = model_shape(valid_arch, valid_size)
    check_checkpoint_dir(out_dir, overwrite)
    started = time.perf_counter()
    tokenizer = train_tokenizer(valid_arch, shape, seed)
    model = _make_model(model_config(shape, tokenizer), seed)
    write_checkpoint_dir(model, tokenizer, out_dir)
    return BuiltCheckpoint(
        path=out_dir,
        arch=valid_arch,
        size=valid_size,
        parameters=model.num_parameters(),
        vocab_size=model.config.vocab_size,
        tokens=len(tokenizer),
        seconds=time.perf_counter() - started,
    )
