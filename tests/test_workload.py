from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from profiler.checkpoints import ARCHS
from profiler.workload import (
    Record,
    WorkloadError,
    fit_to_length,
    load_jsonl,
    load_sample,
    load_tokenizer,
    make_record,
    sample_set,
    synthesize,
    token_count,
    write_jsonl,
)

STUDY_LENGTHS = [1024, 2048, 3072, 4096]
# Odd lengths too: every N must be hit, not only round ones.
SPREAD = [64, 65, 97, 333, 1023, 1025, 2047, 2999, 4095]


@pytest.fixture(scope="module", params=ARCHS)
def tokenizer(request: pytest.FixtureRequest, tiny_checkpoints: dict[str, Path]) -> PreTrainedTokenizerBase:
    loaded: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(tiny_checkpoints[request.param])
    return loaded


def test_synthetic_records_have_exact_token_lengths(tokenizer: PreTrainedTokenizerBase) -> None:
    lengths = STUDY_LENGTHS + SPREAD
    records = synthesize(tokenizer, lengths, count=2)
    assert len(records) == len(lengths) * 2 * 2
    expected = [length for length in lengths for _ in range(4)]
    assert [token_count(tokenizer, record.input) for record in records] == expected
    encoded = tokenizer(records[0].input)["input_ids"]
    assert tokenizer.eos_token_id == encoded[-1]  # special tokens are part of the count


def test_exact_lengths_under_small_tokenizers(small_checkpoints: dict[str, Path]) -> None:
    for path in small_checkpoints.values():
        tokenizer = AutoTokenizer.from_pretrained(path)
        records = synthesize(tokenizer, STUDY_LENGTHS, styles=["qa"])
        assert [token_count(tokenizer, record.input) for record in records] == STUDY_LENGTHS


def test_synthesis_is_deterministic_by_seed(tokenizer: PreTrainedTokenizerBase) -> None:
    first = synthesize(tokenizer, [512], seed=3)
    assert first == synthesize(tokenizer, [512], seed=3)
    assert [r.input for r in first] != [r.input for r in synthesize(tokenizer, [512], seed=4)]


def test_qa_record_is_query_blank_line_document_with_answer_inside(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    (record,) = synthesize(tokenizer, [1024], styles=["qa"])
    query, document = record.input.split("\n\n", 1)
    assert query.endswith("?")
    assert record.output
    assert record.output in document
    assert record.pid == f"{record.id}_0"


def test_summarization_reference_is_the_lead_sentences() -> None:
    record = make_record("summarization", 400, seed=1, record_id="doc")
    paragraphs = record.input.split("\n\n")
    assert record.output is not None
    assert record.output.split(". ")[0] in paragraphs[0]
    assert len(record.output.split(". ")) >= 3


def test_fit_keeps_the_query_and_rejects_short_records(tokenizer: PreTrainedTokenizerBase) -> None:
    record = make_record("qa", 3000, seed=0, record_id="q")
    cut = fit_to_length(record, tokenizer, 200)
    assert token_count(tokenizer, cut.input) == 200
    assert cut.input.split("\n\n")[0] == record.input.split("\n\n")[0]
    assert record.input.startswith(cut.input.rstrip(" the"))
    short = Record("s", "s_0", "A very short document.", None)
    with pytest.raises(WorkloadError, match="fewer than 4096"):
        fit_to_length(short, tokenizer, 4096)
    with pytest.raises(WorkloadError, match="no room"):
        fit_to_length(record, tokenizer, 1)


def test_shipped_sample_is_what_the_generator_writes() -> None:
    shipped = load_sample()
    assert shipped == sample_set()
    assert {r.id.split("-")[1] for r in shipped} == {"summarization", "qa"}


def test_shipped_sample_reaches_the_longest_bucket(small_checkpoints: dict[str, Path]) -> None:
    for path in small_checkpoints.values():
        tokenizer = AutoTokenizer.from_pretrained(path)
        for record in load_sample():
            assert token_count(tokenizer, record.input) > 4096


def test_jsonl_round_trip(tmp_path: Path) -> None:
    records = [Record("a", "a_0", "q\n\ndoc", "x"), Record("a", "a_1", "q\n\ndoc", None)]
    path = tmp_path / "rows.jsonl"
    write_jsonl(records, path)
    path.write_text(path.read_text() + "\n\n")  # trailing blank lines are allowed
    assert load_jsonl(path) == records


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "1", "pid": "1_0", "input": "doc", "output": "ref"})


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "2", "pid": "2_0", "input": "doc"', r"bad\.jsonl:2: not valid JSON"),
        ('["id", "pid"]', r"bad\.jsonl:2: expected a JSON object"),
        ('{"id": "2", "pid": "2_0", "output": "x"}', r"bad\.jsonl:2: missing field\(s\) input"),
        (
            '{"id": 2, "pid": "2_0", "input": "doc", "output": "x"}',
            r":2: field 'id' must be a string, got int",
        ),
        (
            '{"id": "2", "pid": "2_0", "input": "doc", "output": 5}',
            r":2: field 'output' must be a string or null",
        ),
        ('{"id": "2", "pid": "2_0", "input": "  ", "output": "x"}', r":2: field 'input' is empty"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, bad_line: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        load_jsonl(_write(tmp_path, GOOD, bad_line, GOOD))


def test_jsonl_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no such file"):
        load_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(WorkloadError, match="no records"):
        load_jsonl(_write(tmp_path, ""))
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(b'{"id": "\xe9"}\n')
    with pytest.raises(WorkloadError, match="not UTF-8"):
        load_jsonl(binary)


def test_load_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no such directory"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(WorkloadError, match="no tokenizer files"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_projects_tokenizers_load_as_autotokenizer_loads_them_without_torch(
    arch: str, tiny_checkpoints: dict[str, Path]
) -> None:
    # A load test's start pays for the imports: AutoTokenizer imports torch, the class it resolves
    # this tokenizer to does not.
    probe = (
        "import sys; from profiler.workload import load_tokenizer; "
        f"t = load_tokenizer({str(tiny_checkpoints[arch])!r}); "
        "print(type(t).__name__, 'torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    expected = AutoTokenizer.from_pretrained(tiny_checkpoints[arch])
    assert shown.stdout.split() == [type(expected).__name__, "False"]
    loaded = load_tokenizer(tiny_checkpoints[arch])
    for record in load_sample():
        assert loaded(record.input)["input_ids"] == expected(record.input)["input_ids"]
    assert loaded.all_special_ids == expected.all_special_ids


def test_a_tokenizer_of_another_class_loads_through_autotokenizer(
    tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_checkpoints["led"] / name).read_bytes())
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(settings | {"tokenizer_class": "LEDTokenizer"})
    )
    assert type(load_tokenizer(tmp_path)).__name__ == type(AutoTokenizer.from_pretrained(tmp_path)).__name__
    assert type(load_tokenizer(tmp_path)).__name__ != type(load_tokenizer(tiny_checkpoints["led"])).__name__
