"""SCROLLS-format records: load real JSONL files, cut documents to an exact token length, synthesize.

A record is one row of a tau/scrolls JSONL file: ``id`` (groups references of one example),
``pid`` (unique per row), ``input`` (for QA tasks the query, a blank line, then the document; for
summarization the document alone) and ``output`` (the reference; empty or null in test splits).
Load tests need inputs of exactly 1024, 2048, 3072 and 4096 tokens under the served model's
tokenizer, special tokens included, so that each lands in the intended bucket with no padding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from profiler.errors import ProfilerError, file_in_the_way, one_line
from profiler.textgen import TextGenerator

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Style = Literal["summarization", "qa"]
STYLES: tuple[Style, ...] = get_args(Style)
FIELDS = ("id", "pid", "input", "output")
SAMPLE_RESOURCE = "sample.jsonl"

#: Words, in order of preference, used to fill the last few tokens of a cut document.
_FILLER_WORDS = (" the", " and", " of", " to", " a", " in", " it", " by", ".")


class WorkloadError(ProfilerError):
    """A workload file or request that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Record:
    """One SCROLLS row."""

    id: str
    pid: str
    input: str
    output: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def _parse_line(line: str, where: str) -> Record:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from exc
    if not isinstance(row, dict):
        raise WorkloadError(f"{where}: expected a JSON object with {', '.join(FIELDS)}.")
    missing = [name for name in FIELDS if name not in row]
    if missing:
        raise WorkloadError(
            f"{where}: missing field(s) {', '.join(missing)}; SCROLLS rows have {', '.join(FIELDS)}."
        )
    for name in ("id", "pid", "input"):
        if not isinstance(row[name], str):
            got = type(row[name]).__name__
            raise WorkloadError(f"{where}: field {name!r} must be a string, got {got}.")
    if row["output"] is not None and not isinstance(row["output"], str):
        got = type(row["output"]).__name__
        raise WorkloadError(f"{where}: field 'output' must be a string or null, got {got}.")
    if not row["input"].strip():
        raise WorkloadError(f"{where}: field 'input' is empty; every row needs a document.")
    return Record(id=row["id"], pid=row["pid"], input=row["input"], output=row["output"])


def load_jsonl(path: str | Path) -> list[Record]:
    """Load and validate a SCROLLS JSONL file (blank lines are skipped).

    Raises:
        WorkloadError: the file is missing, unreadable, empty, or a line is not a valid row; the
            message names the file and line.
    """
    path = Path(path)
    if path.is_dir():
        raise WorkloadError(f"{path} is a directory; pass a SCROLLS JSONL file in it.")
    if not path.is_file():
        raise WorkloadError(
            f"{path}: no such file. Pass a SCROLLS JSONL file (one JSON object per line with "
            f"{', '.join(FIELDS)}), e.g. one of the tau/scrolls validation files."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    records = [
        _parse_line(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not records:
        raise WorkloadError(f"{path}: no records; the file is empty.")
    return records


def write_jsonl(records: Iterable[Record], path: str | Path) -> None:
    """Write records as SCROLLS JSONL, one object per line; missing parent directories are created.

    Raises:
        WorkloadError: ``path`` is a directory or cannot be created.
    """
    path = Path(path)
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise WorkloadError(f"{path}: {blocker} is a file, not a directory; choose another path.")
    if path.is_dir():
        raise WorkloadError(f"{path} is a directory; give a file path, e.g. {path / 'records.jsonl'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(record.to_json() + "\n" for record in records), encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot write it ({exc.strerror}); choose another path.") from exc


#: A tokenizer needs one of these (fast tokenizer, or a slow one's vocabulary); without them
#: transformers fails with a TypeError or AttributeError instead of saying so.
TOKENIZER_FILES = ("tokenizer.json", "vocab.*", "*.model", "*.spm")
#: Read as JSON by transformers; a damaged one fails inside ``tokenizers`` with a bare Exception.
TOKENIZER_JSON = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: The class name transformers 5.x writes for a tokenizer built from a ``tokenizers`` object, and
#: the alias of it that 4.57 (which the ``[optimum]`` extra installs) loads too.
_BACKEND_CLASS, _PORTABLE_CLASS = "TokenizersBackend", "PreTrainedTokenizerFast"


def has_tokenizer_files(directory: Path) -> bool:
    """Whether ``directory`` holds one of :data:`TOKENIZER_FILES`."""
    return any(file.is_file() for pattern in TOKENIZER_FILES for file in directory.glob(pattern))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a local checkpoint or artifact directory, never from a hub.

    A tokenizer saved as the generic fast class (:func:`save_tokenizer` names it so, as every
    checkpoint and export of this project has it) loads through that class itself: ``AutoTokenizer``
    would resolve to the same class, but only after importing torch (3 s of every load test's start
    on a 2-core CPU). Any other class goes through ``AutoTokenizer``.

    Raises:
        WorkloadError: the directory is missing, holds no tokenizer files, or one is damaged.
    """
    path = Path(path)
    if not path.is_dir():
        raise WorkloadError(f"{path}: no such directory; pass a checkpoint or artifact directory.")
    if not has_tokenizer_files(path):
        raise WorkloadError(
            f"{path}: no tokenizer files (tokenizer.json, or a vocabulary such as vocab.json or "
            "spiece.model); pass a checkpoint or artifact directory that has its tokenizer, e.g. "
            "one written by `profiler checkpoints build` or `profiler export`."
        )
    read: dict[str, Any] = {}
    for name in TOKENIZER_JSON:
        if (path / name).is_file():
            try:
                read[name] = json.loads((path / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError
                raise WorkloadError(
                    f"{path / name}: damaged ({one_line(exc)}); copy the tokenizer files again "
                    "from the checkpoint."
                ) from exc
    settings = read.get("tokenizer_config.json")
    named = settings.get("tokenizer_class") if isinstance(settings, dict) else None
    generic = "tokenizer.json" in read and named in (_BACKEND_CLASS, _PORTABLE_CLASS)
    # Seconds to import either: only once a tokenizer is needed.
    if generic:
        from transformers import PreTrainedTokenizerFast as loader
    else:
        from transformers import AutoTokenizer as loader  # type: ignore[assignment]
    try:
        tokenizer: PreTrainedTokenizerBase = loader.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WorkloadError(
            f"{path}: no usable tokenizer there ({one_line(exc)}); pass a directory with tokenizer.json "
            "and tokenizer_config.json, e.g. one written by `profiler checkpoints build`."
        ) from exc
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """``save_pretrained``, naming the class so that every transformers this project supports loads it.

    transformers 5.x saves a fast tokenizer as ``TokenizersBackend``, a class 4.57 does not know.
    """
    tokenizer.save_pretrained(directory)
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == _BACKEND_CLASS:
        config["tokenizer_class"] = _PORTABLE_CLASS
        text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        config_path.write_text(text, encoding="utf-8")


def token_count(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Tokens the model sees for ``text``, special tokens included."""
    return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])


def _filler_word(tokenizer: PreTrainedTokenizerBase) -> str:
    for word in _FILLER_WORDS:
        if len(tokenizer(word, add_special_tokens=False, verbose=False)["input_ids"]) == 1:
            return word
    raise WorkloadError("the tokenizer has no single-token filler word; cannot hit exact lengths.")


def fit_to_length(record: Record, tokenizer: PreTrainedTokenizerBase, length: int) -> Record:
    """Cut the end of ``record.input`` so it is exactly ``length`` tokens, special tokens included.

    The query at the start of the input is kept; only the document's tail is dropped, as the
    server's truncation does. A cut inside a word that re-tokenizes differently is moved back to
    the word boundary and the last few tokens are made up with single-token filler words.

    Raises:
        WorkloadError: the input is shorter than ``length`` tokens, or ``length`` is too small to
            hold the special tokens.
    """
    specials = tokenizer.num_special_tokens_to_add()
    target = length - specials
    if target < 1:
        raise WorkloadError(f"length {length} leaves no room for text after {specials} specials.")
    encoding = tokenizer(record.input, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoding["offset_mapping"]
    if len(offsets) < target:
        raise WorkloadError(
            f"record {record.pid!r} has {len(offsets) + specials} tokens, fewer than {length}; "
            "use a longer document or a smaller length."
        )
    text = record.input[: offsets[target - 1][1]]
    count = token_count(tokenizer, text) - specials
    if count != target:
        boundary = text.rstrip().rfind(" ")
        text = text[:boundary] if boundary > 0 else text
        count = token_count(tokenizer, text) - specials
        filler = _filler_word(tokenizer)
        while count < target:
            text += filler
            count += 1
    if token_count(tokenizer, text) != length:
        raise WorkloadError(
            f"could not cut record {record.pid!r} to exactly {length} tokens with this tokenizer."
        )
    return Record(id=record.id, pid=record.pid, input=text, output=record.output)


def _document(gen: TextGenerator, words: int, planted: str | None) -> str:
    """Paragraphs totalling at least ``words`` words; ``planted`` goes into the second paragraph."""
    paragraphs: list[str] = []
    total = 0
    while total < words:
        paragraph = gen.paragraph()
        if planted is not None and len(paragraphs) == 1:
            paragraph = f"{paragraph} {planted}"
        paragraphs.append(paragraph)
        total += len(paragraph.split())
    return "\n\n".join(paragraphs)


def make_record(style: Style, words: int, seed: int | str, record_id: str) -> Record:
    """A tokenizer-independent record of at least ``words`` words in the given style.

    Summarization records take the first sentence of each of the first three paragraphs as the
    reference, so a lead baseline scores above zero; QA records ask about a fact planted early
    in the document and answer it with a short span, as Qasper and NarrativeQA do.
    """
    if style not in STYLES:
        raise WorkloadError(f"unknown style {style!r}; choose one of: {', '.join(STYLES)}.")
    gen = TextGenerator(seed)
    if style == "qa":
        fact = gen.fact()
        document = _document(gen, words, planted=fact.sentence)
        return Record(record_id, f"{record_id}_0", f"{fact.question}\n\n{document}", fact.answer)
    document = _document(gen, words, planted=None)
    lead = [paragraph.split(". ")[0].rstrip(".") + "." for paragraph in document.split("\n\n")[:3]]
    return Record(record_id, f"{record_id}_0", document, " ".join(lead))


def synthesize(
    tokenizer: PreTrainedTokenizerBase,
    lengths: Sequence[int],
    count: int = 1,
    styles: Sequence[Style] = STYLES,
    seed: int = 0,
) -> list[Record]:
    """``count`` records per style for each length, each exactly that many tokens long.

    Deterministic: the same tokenizer, lengths, count, styles and seed give the same records.
    """
    records = []
    for length in lengths:
        for style in styles:
            for index in range(count):
                record_id = f"synth-{style}-{length}-{seed}-{index}"
                words = length
                while True:
                    record = make_record(style, words, f"{record_id}", record_id)
                    if token_count(tokenizer, record.input) >= length:
                        break
                    words *= 2
                records.append(fit_to_length(record, tokenizer, length))
    return records


#: (style, words) of the shipped sample: long enough to cut to 4096 tokens under any subword tokenizer.
SAMPLE_LAYOUT: tuple[tuple[Style, int], ...] = (
    ("summarization", 3600),
    ("summarization", 4200),
    ("summarization", 4800),
    ("summarization", 5400),
    ("qa", 3600),
    ("qa", 4200),
    ("qa", 4800),
    ("qa", 5400),
)


def sample_set() -> list[Record]:
    """Generate the sample set that ships in the package (see :func:`load_sample`)."""
    return [
        make_record(style, words, f"sample:{index}", f"sample-{style}-{index}")
        for index, (style, words) in enumerate(SAMPLE_LAYOUT)
    ]


def load_sample() -> list[Record]:
    """The shipped sample set: eight SCROLLS-format records written by this project's generator."""
    resource = resources.files("profiler.data").joinpath(SAMPLE_RESOURCE)
    with resources.as_file(resource) as path:
        return load_jsonl(path)
