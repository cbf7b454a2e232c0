"""Request bodies at exact token lengths, from the shipped sample, a dataset, or as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.errors import ConfigError
from profiler.loadgen.config import LoadConfig
from profiler.loadgen.payloads import build_payloads, request_body
from profiler.workload import Record, write_jsonl


def test_bodies_fit_each_mode() -> None:
    assert json.loads(request_body(LoadConfig(max_new_tokens=7), input_ids=[0, 5, 2])) == {
        "input_ids": [0, 5, 2],
        "mode": "generate",
        "max_new_tokens": 7,
    }
    assert json.loads(request_body(LoadConfig(mode="forward", target_length=9), text="doc")) == {
        "text": "doc",
        "mode": "forward",
        "target_length": 9,
    }
    assert json.loads(request_body(LoadConfig(mode="encode"), text="doc")) == {
        "text": "doc",
        "mode": "encode",
    }
    streamed = json.loads(request_body(LoadConfig(stream=True), text="doc"))
    assert streamed["stream"] is True
    assert "stream" not in json.loads(request_body(LoadConfig(), text="doc"))


def test_a_global_attention_asked_for_goes_in_every_body_and_none_leaves_the_servers() -> None:
    asked = LoadConfig(global_attention="query")
    assert json.loads(request_body(asked, text="q\n\ndoc"))["global_attention"] == "query"
    assert "global_attention" not in json.loads(request_body(LoadConfig(), text="doc"))


def test_sample_cut_to_exact_lengths(tiny_checkpoints: dict[str, Path]) -> None:
    config = LoadConfig(input_lengths=(1024, 2048), tokenizer=tiny_checkpoints["led"], records=3)
    payloads = build_payloads(config)
    for length, payload in payloads.items():
        assert payload.source == "sample"
        assert len(payload.bodies) == 3
        assert {len(json.loads(body)["input_ids"]) for body in payload.bodies} == {length}


def test_dataset_records_too_short_are_skipped(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 400)
    dataset = tmp_path / "gov.jsonl"
    write_jsonl([Record("a", "a_0", "too short", None), Record("b", "b_0", long_text, "ref")], dataset)
    config = LoadConfig(input_lengths=(1024,), tokenizer=tiny_checkpoints["led"], dataset=dataset)
    payload = build_payloads(config)[1024]
    assert (payload.source, payload.record_ids, payload.skipped) == ("dataset", ("b_0",), 1)
    with pytest.raises(ConfigError, match="no record has 100000 tokens"):
        build_payloads(
            LoadConfig(input_lengths=(100000,), tokenizer=tiny_checkpoints["led"], dataset=dataset)
        )


def test_dataset_without_tokenizer_goes_as_text(tmp_path: Path) -> None:
    dataset = tmp_path / "qmsum.jsonl"
    write_jsonl([Record("a", "a_0", "Where?\n\nIn Varn.", None)], dataset)
    payloads = build_payloads(LoadConfig(input_lengths=(1024, 2048), dataset=dataset))
    assert {payload.source for payload in payloads.values()} == {"dataset-text"}
    assert json.loads(payloads[2048].bodies[0])["text"] == "Where?\n\nIn Varn."
