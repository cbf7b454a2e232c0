"""Deterministic English-like text, written by this project, for tokenizers and workloads.

The demo must run with no network and ship no third-party text, yet its tokenizer and its documents
should look like the reports and papers of SCROLLS: sentences with a grammar, recurring entities,
numbers and names. This module builds such text from a small hand-written lexicon and a seeded
random generator, so the same seed always yields the same text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

NOUNS = (
    "agency committee program report budget office council survey district region market network "
    "system project policy study review audit panel board station archive library harbor bridge "
    "factory village river valley county province ministry court hospital school university "
    "laboratory museum company bank railway airport highway reservoir forest garden farm mine port "
    "fleet union league assembly commission department bureau institute center fund grant contract "
    "license permit standard measure method model sample dataset record figure table chapter section "
    "appendix summary finding result outcome estimate forecast trend rate share cost price revenue "
    "deficit surplus payment salary pension benefit tax tariff subsidy loan debt reserve asset "
    "liability risk threat hazard incident accident failure delay backlog shortage demand supply "
    "capacity output yield harvest season winter summer spring autumn decade century morning evening "
    "journey voyage mission campaign election debate hearing vote ballot witness judge lawyer officer "
    "inspector director manager engineer analyst scientist teacher student farmer sailor captain "
    "doctor nurse pilot writer reader editor speaker member partner rival neighbor stranger family "
    "crowd team"
).split()

VERBS = (
    "reviewed examined approved rejected delayed funded expanded reduced measured reported "
    "recommended proposed required allowed prevented improved replaced repaired designed built opened "
    "closed merged divided tested observed recorded estimated predicted compared identified described "
    "explained announced published released collected analyzed increased decreased doubled halved "
    "stabilized monitored inspected audited questioned supported opposed challenged defended adopted "
    "amended extended suspended restored launched completed finished started planned organized "
    "managed directed guided visited crossed reached found lost kept sold bought shipped stored "
    "delivered received requested granted denied"
).split()

ADJECTIVES = (
    "new old large small annual quarterly regional national local federal public private early late "
    "recent final initial formal informal major minor central northern southern eastern western rural "
    "urban coastal inland remote nearby costly cheap modest significant steady rapid slow sudden "
    "gradual careful detailed brief lengthy complex simple clear uncertain reliable accurate partial "
    "complete independent joint temporary permanent seasonal critical routine unusual familiar strong "
    "weak quiet busy open closed green"
).split()

ADVERBS = (
    "quickly slowly carefully briefly formally jointly partly largely mostly rarely often recently "
    "finally initially steadily sharply gradually clearly openly quietly"
).split()

COLORS = ("red blue green yellow white black silver golden gray orange purple brown").split()
MONTHS = ("January February March April May June July August September October November December").split()

_ONSETS = ("b c d f g h k l m n p r s t v w z br cr dr fr gr pr tr st sk sl sp th ch sh").split()
_VOWELS = "a e i o u ai ea ie io ou".split()
_CODAS = ["", "", "n", "r", "l", "s", "t", "m", "nd", "rk", "st", "th", "ck"]


def make_name(rng: random.Random, syllables: int | None = None) -> str:
    """Return a pronounceable invented proper name, e.g. ``Travostin``."""
    count = syllables if syllables is not None else rng.randint(2, 3)
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(count)]
    return "".join(parts).capitalize()


@dataclass(frozen=True)
class Fact:
    """One question-answerable statement planted in a QA-style document."""

    sentence: str
    question: str
    answer: str


class TextGenerator:
    """Seeded source of sentences, paragraphs, facts and documents.

    Args:
        seed: any int or str; the same seed gives the same text on every machine and Python 3.11+.
    """

    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(seed)
        self.entities = [make_name(self.rng) for _ in range(24)]
        self.places = [make_name(self.rng) for _ in range(12)]

    def _noun_phrase(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            return f"the {rng.choice(self.entities)} {rng.choice(NOUNS)}"
        if roll < 0.6:
            return f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
        if roll < 0.8:
            return f"the {rng.choice(NOUNS)} of {rng.choice(self.places)}"
        adjective = rng.choice(ADJECTIVES)
        article = "an" if adjective[0] in "aeiou" else "a"
        return f"{article} {adjective} {rng.choice(NOUNS)}"

    def sentence(self) -> str:
        """One declarative sentence, capitalised and ending in a full stop."""
        rng = self.rng
        subject, obj = self._noun_phrase(), self._noun_phrase()
        verb = rng.choice(VERBS)
        roll = rng.random()
        if roll < 0.3:
            body = f"{subject} {rng.choice(ADVERBS)} {verb} {obj}"
        elif roll < 0.5:
            year = rng.randint(1950, 2024)
            body = f"in {rng.choice(MONTHS)} {year} {subject} {verb} {obj}"
        elif roll < 0.7:
            pct = rng.randint(2, 95)
            body = f"{subject} {verb} {obj} by {pct} percent"
        elif roll < 0.85:
            body = f"{subject} {verb} {obj}, and {self._noun_phrase()} {rng.choice(VERBS)} it"
        else:
            body = f"according to {subject}, {obj} was {verb} in {rng.choice(self.places)}"
        return body[0].upper() + body[1:] + "."

    def paragraph(self, sentences: int | None = None) -> str:
        """Several sentences joined by spaces."""
        count = sentences if sentences is not None else self.rng.randint(3, 7)
        return " ".join(self.sentence() for _ in range(count))

    def sentences(self) -> Iterator[str]:
        """An endless stream of sentences."""
        while True:
            yield self.sentence()

    def fact(self) -> Fact:
        """A statement with a question it answers, for QA-style records."""
        rng = self.rng
        entity = rng.choice(self.entities)
        noun = rng.choice(NOUNS)
        kind = rng.randrange(3)
        if kind == 0:
            year = str(rng.randint(1900, 2024))
            return Fact(
                f"The {entity} {noun} was founded in {year}.",
                f"In which year was the {entity} {noun} founded?",
                year,
            )
        if kind == 1:
            place = rng.choice(self.places)
            return Fact(
                f"The {entity} {noun} is located in {place}.",
                f"Where is the {entity} {noun} located?",
                place,
            )
        color = rng.choice(COLORS)
        return Fact(
            f"The {entity} {noun} painted its main building {color}.",
            f"What color is the main building of the {entity} {noun}?",
            color,
        )


def corpus(seed: int | str, paragraphs: int) -> Iterator[str]:
    """Paragraphs for tokenizer training: prose, facts and numbered headings.

    A fresh cast of invented names every 20 paragraphs gives the tokenizer enough distinct words
    to learn real subword merges, as it would on a large natural corpus.
    """
    gen = TextGenerator(f"{seed}:0")
    for index in range(paragraphs):
        if index % 20 == 0:
            gen = TextGenerator(f"{seed}:{index}")
            yield f"Section {index // 20 + 1}: {gen.rng.choice(ADJECTIVES).capitalize()} review"
        if index % 4 == 0:
            fact = gen.fact()
            yield f"{fact.question}\n\n{fact.sentence} {gen.paragraph()}"
        else:
            yield gen.paragraph()
