"""The plots as matplotlib Figures: one question each, units on every axis, legends off the data,
log axes with a few labels that do not collide, and sensible limits around a single point."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import combinations
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import NullFormatter
from matplotlib.transforms import Bbox

from profiler.report.aggregate import Cell, aggregate
from profiler.report.load import RunData, load_run
from profiler.report.plots import (
    accuracy_vs_energy,
    energy_vs_length,
    latency_vs_length,
    latency_vs_throughput,
    power_timeline,
    series_name,
)
from profiler.results import AccuracyRecord

from . import make_record, write_run
from .conftest import DATA

Run = tuple[RunData, list[Cell]]


def _run(directory: Path) -> Run:
    data = load_run(directory)
    return data, aggregate(data.repeats)


@pytest.fixture(scope="module")
def cpu() -> Run:
    return _run(DATA / "cpu-demo")


@pytest.fixture(scope="module")
def gpu() -> Run:
    return _run(DATA / "gpu-h100")


DRAWS: dict[str, Callable[[Run], Figure]] = {
    "latency_vs_length": lambda run: latency_vs_length(run[1]),
    "energy_vs_length": lambda run: energy_vs_length(run[1]),
    "latency_vs_throughput": lambda run: latency_vs_throughput(run[1]),
    "power_timeline": lambda run: power_timeline(run[0].repeats),
    "accuracy_vs_energy": lambda run: accuracy_vs_energy(run[1], run[0].accuracy),
}


def _panels(figure: Figure) -> list[Axes]:
    """The axes that show data (not hidden, not an empty panel's message)."""
    return [ax for ax in figure.axes if ax.get_visible() and ax.axison]


def _every_figure(cpu: Run, gpu: Run) -> Iterator[tuple[str, Figure]]:
    for run_name, run in (("cpu-demo", cpu), ("gpu-h100", gpu)):
        for name, draw in DRAWS.items():
            if name == "accuracy_vs_energy" and not run[0].accuracy:
                continue
            figure = draw(run)
            figure.canvas.draw()
            yield f"{run_name} {name}", figure


def _tick_labels(axis: Axis) -> list[Text]:
    """The major tick labels drawn inside the axis's view."""
    low, high = sorted(axis.get_view_interval())
    return [
        tick.label1
        for tick in axis.get_major_ticks()
        if low <= tick.get_loc() <= high and tick.label1.get_visible() and tick.label1.get_text()
    ]


def _legend_texts(figure: Figure) -> list[str]:
    (legend,) = figure.legends
    return [text.get_text() for text in legend.get_texts()]


def test_every_panel_has_both_axes_labelled_with_their_unit(cpu: Run, gpu: Run) -> None:
    for name, figure in _every_figure(cpu, gpu):
        assert figure.get_suptitle().strip(), name
        for ax in _panels(figure):
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert ("(" in label and label.endswith(")")) or "score" in label, (name, label)
            assert ax.get_title(), name


def test_one_legend_per_figure_and_it_covers_no_panel(cpu: Run, gpu: Run) -> None:
    for name, figure in _every_figure(cpu, gpu):
        assert all(ax.get_legend() is None for ax in figure.axes), name
        (legend,) = figure.legends
        box = legend.get_window_extent()
        for ax in _panels(figure):
            assert not box.overlaps(ax.get_window_extent()), name


def test_log_axes_label_a_few_round_values_that_do_not_overlap(cpu: Run, gpu: Run) -> None:
    logs = 0
    for name, figure in _every_figure(cpu, gpu):
        for ax in _panels(figure):
            for axis in (ax.xaxis, ax.yaxis):
                labels = _tick_labels(axis)
                boxes: list[Bbox] = [label.get_window_extent() for label in labels]
                assert all(not a.overlaps(b) for a, b in combinations(boxes, 2)), (name, axis.axis_name)
                if axis.get_scale() == "log":
                    logs += 1
                    assert isinstance(axis.get_minor_formatter(), NullFormatter), name
                    assert 2 <= len(labels) <= 6, (name, [t.get_text() for t in labels])
                    assert all("^" not in t.get_text() for t in labels)  # plain numbers, no powers
    assert logs >= 10  # latency, energy and throughput panels are log-scaled


def test_latency_vs_throughput_is_small_multiples_per_length(cpu: Run) -> None:
    _, cells = cpu
    figure = latency_vs_throughput(cells)
    lengths = sorted({c.key.length for c in cells})
    panels = _panels(figure)
    assert [ax.get_title() for ax in panels] == [f"{n} tokens" for n in lengths]
    names = sorted({series_name(c.key.series) for c in cells})
    assert _legend_texts(figure) == names  # one entry per model and format: 4, not 24
    for ax in panels:
        assert len(ax.get_lines()) == len(names)
        assert ax.get_xlabel() == "throughput (req/s)"
        assert ax.get_ylabel() == "p50 latency (ms)"
        marks = sorted({t.get_text() for t in ax.texts})
        assert marks == ["1u", "4u"]  # each point says its load level


def test_the_timeline_is_titled_by_what_it_plots_and_marks_each_stage(cpu: Run, gpu: Run) -> None:
    data, _ = cpu
    figure = power_timeline(data.repeats)
    assert "CPU use" in figure.get_suptitle()
    assert "no GPU power" in figure.get_suptitle()
    legend = figure.legends[0]
    assert legend.get_title().get_text() == "input length"
    lengths = sorted({r.length for r in data.repeats})
    assert _legend_texts(figure) == [f"{n} tokens" for n in lengths]
    for ax in _panels(figure):
        assert ax.get_ylabel() == "server CPU use (% of one core)"
        model, fmt = ax.get_title().split(" on ")[0].split()
        stages = [r for r in data.repeats if (r.model, r.format) == (model, fmt)]
        assert sorted(t.get_text() for t in ax.texts) == sorted(
            f"{r.load.level:g}u" for r in stages
        )  # one mark per stage
        assert len(ax.patches) == len(stages)  # one band per stage
    measured = power_timeline(gpu[0].repeats)
    assert "GPU power" in measured.get_suptitle()
    assert "CPU" not in measured.get_suptitle()
    assert {ax.get_ylabel() for ax in _panels(measured)} == {"GPU power (W, all GPUs)"}


def test_estimates_are_named_in_the_energy_title_and_legend(cpu: Run, gpu: Run) -> None:
    estimated = energy_vs_length(cpu[1])
    assert "(estimate)" in estimated.get_suptitle()
    assert all(text.endswith("(estimate)") for text in _legend_texts(estimated))
    measured = energy_vs_length(gpu[1])
    assert "estimate" not in measured.get_suptitle()
    assert not any("estimate" in text for text in _legend_texts(measured))


def test_a_single_point_gets_limits_around_it(tmp_path: Path) -> None:
    score = 24.5
    accuracy = [
        AccuracyRecord(
            model="led-small",
            format="onnx",
            input_length=1024,
            task="qasper",
            score=score,
            metrics={},
            count=8,
        )
    ]
    run = _run(write_run(tmp_path / "one", [make_record(gross_j=1.25, throughput_rps=7.5)], accuracy))
    (ax,) = _panels(accuracy_vs_energy(run[1], run[0].accuracy))
    low, high = ax.get_xlim()
    assert 0 < low < 1.25 < high
    assert high / low < 10
    low, high = ax.get_ylim()
    assert 0 < low < score < high
    assert high - low >= 0.1 * score
    (ax,) = _panels(latency_vs_throughput(run[1]))
    low, high = ax.get_xlim()
    assert 0 < low < 7.5 < high
    assert high - low >= 0.1 * 7.5
    low, high = ax.get_ylim()
    assert 0 < low < 110.0 < high
