"""`profiler eval` feeds each example as the server would: cut to the length, with LED's global
tokens counted as the server counts them; what a remote target cannot honour is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.accuracy import AccuracyError
from profiler.attention_layout import GlobalAttention
from profiler.decoding_config import DecodingConfig
from profiler.evaluate import EvalTarget, eval_input, remote_target
from profiler.workload import Record, load_tokenizer

QUESTION = "Where is the committee located?"
RECORD = Record(id="a", pid="a_0", input=f"{QUESTION}\n\nThe committee met in March. " * 3, output="x")


def _target(tiny_checkpoints: dict[str, Path], mode: GlobalAttention) -> EvalTarget:
    tokenizer = load_tokenizer(tiny_checkpoints["led"])
    return EvalTarget("led", "onnx", lambda inputs: [], tokenizer, mode, DecodingConfig())


def test_global_tokens_are_counted_as_the_server_counts_them(tiny_checkpoints: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(tiny_checkpoints["led"])
    query = len(tokenizer(QUESTION, add_special_tokens=False)["input_ids"])
    counts = {
        mode: eval_input(_target(tiny_checkpoints, mode), RECORD, 16) for mode in ("first", "query", "none")
    }
    assert {mode: item.global_tokens for mode, item in counts.items()} == {
        "first": 1,
        "query": 1 + query,
        "none": 0,
    }
    assert all(len(item.ids) == 16 for item in counts.values())  # cut as the server cuts
    short = eval_input(_target(tiny_checkpoints, "query"), RECORD, 4)
    assert short.global_tokens == 4  # a query longer than the cut is all global, no more


def test_a_record_without_a_query_is_refused_in_query_mode(tiny_checkpoints: dict[str, Path]) -> None:
    plain = Record(id="b", pid="b_0", input="One paragraph and nothing else.", output="x")
    with pytest.raises(AccuracyError, match=r"^record 'b' has no query \(no blank line"):
        eval_input(_target(tiny_checkpoints, "query"), plain, 64)


@pytest.mark.parametrize(
    ("mode", "overridden", "message"),
    [("query", False, "--global-attention query needs the text"), (None, True, "--decoding applies to")],
)
def test_a_remote_target_refuses_what_it_cannot_honour(
    mode: GlobalAttention | None, overridden: bool, message: str
) -> None:
    with pytest.raises(AccuracyError, match=message):
        remote_target("http://127.0.0.1:9", 8, None, mode, overridden)
