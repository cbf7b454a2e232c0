"""Accuracy survives export: the trained demo models, exported to ONNX and TorchScript, give the
same predictions, string for string, and so the same score as eager PyTorch on the synthetic
task's examples at every length of the study."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.export import export
from profiler.checkpoints import ARCHS
from profiler.evaluate import local_target, predict, score
from profiler.modelinfo import DEFAULT_LENGTHS
from profiler.synthetic import TASK, write_eval_set
from profiler.training import write_trained_checkpoint
from profiler.workload import load_jsonl

pytestmark = pytest.mark.integration

EXAMPLES = 8
NEW_TOKENS = 12


@pytest.mark.parametrize("arch", ARCHS)
def test_exported_engines_score_exactly_what_eager_scores(arch: str, tmp_path: Path) -> None:
    checkpoint = write_trained_checkpoint(arch, tmp_path / arch)
    records = load_jsonl(write_eval_set(tmp_path / "eval.jsonl", EXAMPLES, seed=0))
    targets = {"eager": checkpoint}
    for fmt in ("onnx", "torchscript"):
        targets[fmt] = tmp_path / f"{arch}-{fmt}"
        export(checkpoint, fmt, targets[fmt], lengths=DEFAULT_LENGTHS, skip_parity=True)
    engines = {fmt: local_target(path, NEW_TOKENS, batch_size=4) for fmt, path in targets.items()}
    scores = []
    for length in DEFAULT_LENGTHS:
        predicted = {fmt: predict(engine, records, length) for fmt, engine in engines.items()}
        assert predicted["onnx"] == predicted["eager"], length
        assert predicted["torchscript"] == predicted["eager"], length
        results = {fmt: score(TASK, texts, records) for fmt, texts in predicted.items()}
        assert results["onnx"].metrics == results["torchscript"].metrics == results["eager"].metrics
        scores.append(results["eager"].score)
    # The comparison means something only if the model answers: above chance at full length.
    assert scores[-1] > 50, scores
