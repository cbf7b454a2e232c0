"""A run with two precisions: int8 is its own series beside fp32 in the tables, the seed-study
table matches scores by precision, and the accuracy-vs-J/query Pareto front spans both."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from profiler.report.aggregate import aggregate
from profiler.report.load import load_run
from profiler.report.plots import accuracy_vs_energy
from profiler.report.tables import latency_tables, seed_table
from profiler.results import AccuracyRecord, ResultRecord

from . import make_record, write_run


def _run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", *_records())


def _records() -> tuple[list[ResultRecord], list[AccuracyRecord]]:
    fp32 = make_record(length=1024, gross_j=2.0, latency_ms=(200.0, 210.0, 220.0))
    int8 = make_record(length=1024, gross_j=1.2, latency_ms=(120.0, 130.0, 140.0))
    int8 = int8.model_copy(update={"precision": "int8", "cell": "led-small|onnx int8|closed:1|repeat 1|1024"})
    scores = [
        AccuracyRecord(
            model="led-small",
            format="onnx",
            input_length=1024,
            task="qasper",
            score=30.0,
            metrics={},
            count=8,
        ),
        AccuracyRecord(
            model="led-small",
            format="onnx",
            precision="int8",
            input_length=1024,
            task="qasper",
            score=29.0,
            metrics={},
            count=8,
        ),
    ]
    return [fp32, int8], scores


def test_each_precision_is_its_own_row_and_is_scored_as_its_own(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    cells = aggregate(run.repeats)
    assert sorted(cell.key.series.format for cell in cells) == ["onnx", "onnx int8"]
    (table,) = latency_tables(cells)
    formats = [row[[c.header for c in table.columns].index("format")].text for row in table.rows]
    assert sorted(formats) == ["onnx", "onnx int8"]

    seed = seed_table(cells, run.accuracy)
    headers = [c.header for c in seed.columns]
    scored = {
        row[headers.index("format")].text: (
            row[headers.index("qasper")].text,
            row[headers.index("gross J/query")].text,
        )
        for row in seed.rows
    }
    assert scored["onnx"][0] == "30.00"
    assert scored["onnx int8"][0] == "29.00"


def test_the_pareto_plot_has_a_point_per_precision_and_a_front_across_them(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path))
    figure = accuracy_vs_energy(aggregate(run.repeats), run.accuracy)
    ax = figure.axes[0]
    # One colour per model and format: each precision is its own series, its own points.
    points = sorted(tuple(p) for c in ax.collections for p in np.asarray(c.get_offsets()).tolist())
    assert len(ax.collections) == 2
    assert len(points) == 2  # fp32 and int8 at 1,024 tokens
    # int8 is cheaper and scores lower: neither beats the other, so the front holds both.
    (front,) = [line for line in ax.get_lines() if line.get_color() == "tab:red"]
    xs, ys = np.asarray(front.get_xdata()), np.asarray(front.get_ydata())
    assert sorted(zip(xs.tolist(), ys.tolist(), strict=True)) == points
    labels = sorted(text.get_text() for text in ax.texts)
    assert labels == ["led-small onnx 1024", "led-small onnx int8 1024"]


def test_only_the_front_is_labelled_and_a_dominated_cell_keeps_its_colour(tmp_path: Path) -> None:
    """A third cell, dearer and no better than fp32: a point in its own colour, not labelled."""
    dearer = make_record(length=1024, gross_j=3.0, latency_ms=(300.0, 310.0, 320.0))
    dearer = dearer.model_copy(
        update={"format": "torchscript", "cell": "led-small|torchscript|closed:1|repeat 1|1024"}
    )
    score = AccuracyRecord(
        model="led-small",
        format="torchscript",
        input_length=1024,
        task="qasper",
        score=30.0,
        metrics={},
        count=8,
    )
    records, scores = _records()
    loaded = load_run(write_run(tmp_path / "three", [*records, dearer], [*scores, score]))
    ax = accuracy_vs_energy(aggregate(loaded.repeats), loaded.accuracy).axes[0]
    colours = {tuple(np.round(np.asarray(c.get_facecolor())[0], 3).tolist()) for c in ax.collections}
    assert len(ax.collections) == len(colours) == 3
    labels = sorted(text.get_text() for text in ax.texts)
    assert labels == ["led-small onnx 1024", "led-small onnx int8 1024"]
