"""The project's own long-context task, whose score depends on how much of the document is read.

SCROLLS' real tasks need a model trained for weeks; the demo's models are trained here in minutes.
So the demo scores them on a task of its own, in SCROLLS' row format (``id``, ``pid``, ``input``,
``output``): a document of filler prose (:mod:`profiler.textgen`, with no digits in it) holds
:data:`CODES` sentences "Code N is on record.", each at a uniformly random place in the whole
document, and the answer is the document's codes in increasing order, e.g. ``"7 31 55 90"``.

Each code comes from its own range (:data:`CODE_RANGES`), so the answer's i-th code is the one of
the i-th range: a small model finds it by what it is, without counting positions. A model that
reads the first quarter of a document sees a quarter of its codes on average, and scores about a
quarter in token F1 (:data:`TASK`'s metric, see :mod:`profiler.accuracy`); one that reads none
can only guess one number of each range, about ``1 / 24`` of the time right (:func:`chance_f1`).
The same seed always gives the same rows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from profiler.textgen import TextGenerator

#: The task's name for ``profiler eval --task``; scored with SQuAD token F1 (profiler.accuracy).
TASK = "synthetic_codes"
#: Codes per document.
CODES = 4
#: Where the i-th code of a document is drawn from: every number of these ranges is one token in
#: both demo tokenizers (0 and 96-99 are two).
CODE_RANGES: tuple[range, ...] = (range(1, 25), range(25, 49), range(49, 73), range(73, 96))
#: Filler sentences of an evaluation document: about 3,900 tokens of either demo tokenizer, so the
#: whole document fits in 4,096 and a cut to 1,024 keeps about a quarter of it.
EVAL_SENTENCES = 250


@dataclass(frozen=True)
class Example:
    """One document and its answer."""

    input: str
    output: str


def _filler(gen: TextGenerator) -> str:
    """A sentence of the generated prose without digits, so that a number is always a code."""
    while True:
        sentence = gen.sentence()
        if not any(ch.isdigit() for ch in sentence):
            return sentence


def make_example(rng: random.Random, sentences: int, drop: float = 0.0) -> Example:
    """A document of ``sentences`` filler sentences with the codes planted uniformly among them.

    ``drop``: the chance that a code is left out of the document yet kept in the answer, as a
    code beyond an input cut to fewer tokens is (for training: the model learns to guess it).
    """
    gen = TextGenerator(rng.getrandbits(64))
    codes = [rng.choice(span) for span in CODE_RANGES]
    shown = [code for code in codes if rng.random() >= drop] if drop else codes
    # Where each code goes: before the filler sentence of that index (== sentences: at the end).
    slots = sorted((rng.randint(0, sentences), rng.random(), code) for code in shown)
    parts: list[str] = []
    planted = iter(slots)
    upcoming = next(planted, None)
    for index in range(sentences + 1):
        while upcoming is not None and upcoming[0] == index:
            parts.append(f"Code {upcoming[2]} is on record.")
            upcoming = next(planted, None)
        if index < sentences:
            parts.append(_filler(gen))
    return Example(" ".join(parts), " ".join(str(code) for code in sorted(codes)))


def bare_example(rng: random.Random) -> Example:
    """The codes alone, in random order: where training starts, since a model learns to copy a
    code far sooner when there is nothing else to look at."""
    codes = [rng.choice(span) for span in CODE_RANGES]
    shown = rng.sample(codes, len(codes))
    return Example(" ".join(map(str, shown)), " ".join(str(code) for code in sorted(codes)))


def eval_rows(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` SCROLLS rows of full-length documents, the same for the same seed."""
    rows = []
    for index in range(count):
        example = make_example(random.Random(f"{TASK}:eval:{seed}:{index}"), EVAL_SENTENCES)
        row_id = f"{TASK}-{seed}-{index}"
        rows.append({"id": row_id, "pid": row_id, "input": example.input, "output": example.output})
    return rows


def write_eval_set(path: Path, count: int = 50, seed: int = 0) -> Path:
    """Write the task's evaluation set as SCROLLS JSONL (for ``profiler eval --task synthetic_codes``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(row, ensure_ascii=False) for row in eval_rows(count, seed))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chance_f1() -> float:
    """Expected token F1 (0 to 1) of an answer that guesses one code of each range uniformly."""
    return sum(1 / len(span) for span in CODE_RANGES) / CODES
