"""Repeats combined per cell, and the scaling slopes on constructed data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from profiler.report.aggregate import Cell, aggregate, loglog_slope, scaling
from profiler.report.load import load_run
from profiler.report.tables import scaling_table
from profiler.results import ResultRecord
from profiler.stats import mean_ci, percentile

from . import make_record, write_run
from .conftest import DATA

LENGTHS = (1024, 2048, 3072, 4096)


def _cells(tmp_path: Path, records: list[ResultRecord]) -> list[Cell]:
    return aggregate(load_run(write_run(tmp_path / "run", records)).repeats)


def test_repeats_pool_raw_samples_and_average_rates(tmp_path: Path) -> None:
    first, second = [100.0, 104.0, 130.0], [90.0, 95.0, 99.0, 250.0]
    cells = _cells(
        tmp_path,
        [
            make_record(repeat=1, latency_ms=first, throughput_rps=10.0, gross_j=2.0, peak_rss_bytes=100),
            make_record(repeat=2, latency_ms=second, throughput_rps=12.0, gross_j=3.0, peak_rss_bytes=300),
        ],
    )
    (cell,) = cells
    assert cell.latency is not None
    assert cell.latency.p50 == percentile(first + second, 50)
    assert cell.latency.p99 == percentile(first + second, 99)
    assert cell.throughput_rps == 11.0
    assert cell.gross_j_per_query == 2.5
    assert cell.peak_rss_bytes == 300
    assert cell.p50_ci == mean_ci([percentile(first, 50), percentile(second, 50)])
    assert cell.per_repeat("p50_ms") == [percentile(first, 50), percentile(second, 50)]


def test_gpu_figures_come_from_the_timeline() -> None:
    run = load_run(DATA / "gpu-h100")
    cells = aggregate(run.repeats)
    assert len(cells) == 4
    assert all(len(c.repeats) == 2 for c in cells)
    cell = cells[0]
    samples = [g for r in cell.repeats for p in r.timeline for g in p.gpu_util_pct]
    assert cell.gpu_util_pct == pytest.approx(sum(samples) / len(samples))
    assert cell.gpu_memory_bytes == max(
        [r.peak_gpu_memory_bytes or 0 for r in cell.repeats]
        + [m for r in cell.repeats for p in r.timeline for m in p.gpu_memory_bytes]
    )
    assert cell.energy_source == "nvml-counter"
    assert not cell.is_estimate


@pytest.mark.parametrize("power", [1.0, 2.0, 1.5])
def test_slope_recovers_the_exponent(tmp_path: Path, power: float) -> None:
    records = [
        make_record(length=n, latency_ms=[0.001 * n**power] * 3, gross_j=3e-7 * n**power) for n in LENGTHS
    ]
    (item,) = scaling(_cells(tmp_path, records))
    assert item.lengths == LENGTHS
    assert item.latency_slope == pytest.approx(power, abs=1e-12)
    assert item.energy_slope == pytest.approx(power, abs=1e-12)
    assert item.is_estimate


def test_slope_is_a_least_squares_fit() -> None:
    # y = x, x^2, x (noisy middle): the fit is the least-squares line through the logs.
    points = [(1.0, 1.0), (2.0, 4.0), (4.0, 4.0)]
    logs = [(math.log(x), math.log(y)) for x, y in points]
    mx = sum(x for x, _ in logs) / 3
    my = sum(y for _, y in logs) / 3
    expected = sum((x - mx) * (y - my) for x, y in logs) / sum((x - mx) ** 2 for x, _ in logs)
    assert loglog_slope(points) == pytest.approx(expected)


@pytest.mark.parametrize(
    "points", [[], [(1024.0, 5.0)], [(1024.0, 5.0), (1024.0, 6.0)], [(1024.0, 0.0), (2048.0, 3.0)]]
)
def test_slope_needs_two_lengths_and_positive_values(points: list[tuple[float, float]]) -> None:
    assert loglog_slope(points) is None


def test_scaling_series_and_table(tmp_path: Path) -> None:
    records = [
        make_record("led", "onnx", n, latency_ms=[0.01 * n] * 3, gross_j=None, source=None) for n in LENGTHS
    ]
    records += [make_record("bbp", "onnx", n, 4, latency_ms=[1e-5 * n * n] * 3) for n in LENGTHS]
    records += [make_record("bbp", "torchscript", 2048)]
    table = scaling_table(scaling(_cells(tmp_path, records)))
    rows = {(r[0].text, r[1].text, r[3].text): (r[5].text, r[6].text) for r in table.rows}
    assert rows == {
        ("bbp", "onnx", "closed:4"): ("2.00 super-linear", "0.00 (estimate)"),
        ("bbp", "torchscript", "closed:1"): ("-", "-"),
        ("led", "onnx", "closed:1"): ("1.00", "-"),
    }
    assert any(r[5].warn for r in table.rows)


def test_duplicate_cells_keep_the_last_and_say_so(tmp_path: Path) -> None:
    run = load_run(
        write_run(tmp_path / "run", [make_record(latency_ms=[1.0]), make_record(latency_ms=[2.0])])
    )
    assert [r.latency_ms for r in run.repeats] == [(2.0,)]
    assert any("recorded twice" in note for note in run.notes)
