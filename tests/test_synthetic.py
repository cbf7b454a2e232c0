"""The synthetic codes task: deterministic rows, codes spread over the whole document, each code one
token of both demo tokenizers, and a score that a partial reading bounds."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from profiler.accuracy import SCROLLS_TASKS, TASKS, score_task
from profiler.checkpoints import ARCHS, model_shape, train_tokenizer
from profiler.synthetic import (
    CODE_RANGES,
    CODES,
    TASK,
    bare_example,
    chance_f1,
    eval_rows,
    make_example,
    write_eval_set,
)
from profiler.workload import load_jsonl

CODE = re.compile(r"Code (\d+) is on record\.")


def test_the_eval_set_is_scrolls_jsonl_and_the_same_for_the_same_seed(tmp_path: Path) -> None:
    first = write_eval_set(tmp_path / "a" / "eval.jsonl", 6, seed=3)
    again = write_eval_set(tmp_path / "b.jsonl", 6, seed=3)
    other = write_eval_set(tmp_path / "c.jsonl", 6, seed=4)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()
    records = load_jsonl(first)
    assert [record.id for record in records] == [f"{TASK}-3-{index}" for index in range(6)]
    assert len({record.input for record in records}) == 6


def test_the_answer_is_the_documents_codes_in_increasing_order_one_per_range() -> None:
    for row in eval_rows(20, seed=0):
        planted = [int(code) for code in CODE.findall(row["input"])]
        assert len(planted) == CODES
        answer = [int(code) for code in row["output"].split()]
        assert answer == sorted(planted)
        assert all(code in span for code, span in zip(answer, CODE_RANGES, strict=True))
        # No other digit in the document: a number is always a code.
        assert not re.search(r"\d", CODE.sub("", row["input"]))


def test_codes_lie_uniformly_over_the_whole_document() -> None:
    """About a quarter of the codes in each quarter of the document, so that a cut to a quarter of
    it keeps about a quarter of the evidence."""
    quarters = [0, 0, 0, 0]
    rows = eval_rows(100, seed=1)
    for row in rows:
        text = row["input"]
        for match in CODE.finditer(text):
            quarters[min(3, 4 * match.start() // len(text))] += 1
    total = CODES * len(rows)
    assert all(abs(count / total - 0.25) < 0.06 for count in quarters), quarters


@pytest.mark.parametrize("arch", ARCHS)
def test_every_code_is_one_token_and_a_document_fits_4096(arch: str) -> None:
    tokenizer = train_tokenizer(arch, model_shape(arch, "small"))  # type: ignore[arg-type]
    numbers = [code for span in CODE_RANGES for code in span]
    text = " ".join(f"Code {code} is on record." for code in numbers)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
    for code in numbers:
        assert f"Ġ{code}" in tokens or f"▁{code}" in tokens, code
    lengths = [len(tokenizer(row["input"])["input_ids"]) for row in eval_rows(10, seed=0)]
    assert max(lengths) <= 4096
    assert min(lengths) > 3000  # so that a cut to 1024 tokens leaves most codes out


def test_the_task_is_scored_with_token_f1_and_is_not_a_scrolls_task() -> None:
    assert TASK in TASKS
    assert TASK not in SCROLLS_TASKS
    rows = eval_rows(2, seed=0)
    references = {row["id"]: [row["output"]] for row in rows}
    perfect = score_task(TASK, {row["id"]: row["output"] for row in rows}, references)
    assert perfect.metrics == {"f1": 100.0}
    # Half the codes found (in any order), the others wrong: F1 0.5 for each example.
    half = {row["id"]: " ".join([*row["output"].split()[:2][::-1], "0", "0"]) for row in rows}
    assert score_task(TASK, half, references).score == 50.0


def test_chance_is_one_guess_per_range() -> None:
    rng = random.Random(0)
    rows = eval_rows(400, seed=2)
    guesses = {row["id"]: " ".join(str(rng.choice(span)) for span in CODE_RANGES) for row in rows}
    score = score_task(TASK, guesses, {row["id"]: [row["output"]] for row in rows}).score
    assert chance_f1() == pytest.approx(sum(1 / len(span) for span in CODE_RANGES) / 4)
    assert abs(score / 100 - chance_f1()) < 0.02


def test_training_documents_are_drawn_from_the_rng_at_the_length_asked() -> None:
    short = make_example(random.Random(0), 10)
    assert short == make_example(random.Random(0), 10) != make_example(random.Random(1), 10)
    assert short.input.count(".") == 10 + CODES  # ten filler sentences and the codes' sentences


def test_training_starts_from_the_codes_alone() -> None:
    example = bare_example(random.Random(0))
    assert sorted(example.input.split(), key=int) == example.output.split()


def test_a_dropped_code_stays_in_the_answer() -> None:
    """Training documents may lack codes their answer holds, as a document cut short does."""
    examples = [make_example(random.Random(seed), 4, drop=0.5) for seed in range(40)]
    shown = [len(CODE.findall(example.input)) for example in examples]
    assert all(len(example.output.split()) == CODES for example in examples)
    assert min(shown) < CODES
    assert 0.3 < sum(shown) / (CODES * len(examples)) < 0.7
