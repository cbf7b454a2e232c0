"""render_report end to end on the recorded runs: files written, what they hold, what was printed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from profiler.report import render_report
from profiler.report.plots import ACCURACY_PNG, ENERGY_PNG, LATENCY_PNG, THROUGHPUT_PNG, TIMELINE_PNG
from profiler.rundir import RunDirectory
from profiler.stats import percentile

from . import make_record, write_run
from .conftest import DATA, Rendered, quiet_console

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_file_is_written_into_the_run_directory(cpu_report: Rendered) -> None:
    names = [path.name for path in cpu_report.outputs.files]
    assert names == [
        "report.md",
        "report.html",
        "summary.csv",
        LATENCY_PNG,
        ENERGY_PNG,
        THROUGHPUT_PNG,
        TIMELINE_PNG,
        ACCURACY_PNG,
        "compare.md",
        "compare.csv",
    ]
    for path in cpu_report.outputs.files:
        assert path.parent == cpu_report.run_dir
        assert path.stat().st_size > 0


def test_plots_are_png_files(cpu_report: Rendered) -> None:
    assert len(cpu_report.outputs.plots) == 5
    for path in cpu_report.outputs.plots:
        assert path.read_bytes()[:8] == PNG, path.name


def test_no_accuracy_plot_without_accuracy_file(gpu_report: Rendered) -> None:
    assert [p.name for p in gpu_report.outputs.plots] == [
        LATENCY_PNG,
        ENERGY_PNG,
        THROUGHPUT_PNG,
        TIMELINE_PNG,
    ]
    assert gpu_report.outputs.compare_md is None
    assert not (gpu_report.run_dir / "compare.csv").exists()


def test_summary_csv_has_one_row_per_cell_with_raw_figures(cpu_report: Rendered) -> None:
    records = RunDirectory(DATA / "cpu-demo").results.read()
    with cpu_report.outputs.summary_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records) == 24
    for record in records:
        (row,) = [
            r
            for r in rows
            if (r["model"], r["format"], int(r["input_length"]), int(r["concurrency"]))
            == (record.model, record.format, record.bucket, record.load.concurrency)
        ]
        stage = record.stage
        assert float(row["p50_ms"]) == percentile(stage.latency_ms, 50)
        assert float(row["p99_ms"]) == percentile(stage.latency_ms, 99)
        assert float(row["gross_j_per_query"]) == stage.gross_j_per_query
        assert row["energy_source"] == "estimate"
        assert row["repeats"] == "1"
        assert row["p50_ci_low_ms"] == ""  # one repeat: no interval


def test_report_md_sections(cpu_report: Rendered) -> None:
    text = cpu_report.outputs.report_md.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == [
        "Environment",
        "Latency and throughput",
        "Where the time goes",
        "Energy and resources",
        "Scaling with input length",
        "Accuracy and cost",
        "Failures",
        "Plots",
    ]
    assert "Intel(R) Xeon(R) Platinum 8259CL" in text
    assert "torch 2.13.0" in text
    assert "```toml" in text
    for plot in cpu_report.outputs.plots:
        assert f"]({plot.name})" in text
    assert "503: queue full x2" in text


def test_report_md_marks_estimates_and_best_cells(cpu_report: Rendered) -> None:
    text = cpu_report.outputs.report_md.read_text()
    energy = text.split("\n## Energy and resources\n")[1].split("\n## Scaling")[0]
    figures = re.findall(r"\| (?:\*\*)?(\d[\d.e+-]*) \(([^)]*)\)", energy)
    assert figures
    assert all(source == "estimate" or source.startswith("estimate, clamped") for _, source in figures)
    assert "**" in text  # best cells are bold


def test_terminal_output_names_the_estimate_beside_each_energy_figure(cpu_report: Rendered) -> None:
    # Every joule figure printed is followed by its source: here, always the estimate.
    lines = [line for line in cpu_report.text.splitlines() if "(estimate)" in line]
    assert lines
    assert "Energy and resources" in cpu_report.text
    assert "(rapl)" not in cpu_report.text
    assert "super-linear" in cpu_report.text
    assert f"wrote into {cpu_report.run_dir}:" in cpu_report.text


def test_measured_energy_is_not_called_an_estimate(gpu_report: Rendered) -> None:
    energy = (
        gpu_report.outputs.report_md.read_text()
        .split("\n## Energy and resources\n")[1]
        .split("\n## Scaling")[0]
    )
    assert "(nvml-counter)" in energy
    assert "estimate" not in energy.replace("'estimate' means", "")
    assert "GiB" in energy  # GPU memory from the timeline
    assert re.search(r"\| \d+% \|", energy)  # GPU utilisation


def test_open_loop_run_without_energy_or_timeline(tmp_path: Path) -> None:
    records = [
        make_record(length=2048, concurrency=None, rate=rate, source=None, throughput_rps=rate * 0.98)
        for rate in (2.0, 5.0)
    ]
    run_dir = write_run(tmp_path / "open", records)
    console = quiet_console()
    outputs = render_report(run_dir, None, console)
    assert [p.read_bytes()[:8] for p in outputs.plots] == [PNG] * 4
    text = outputs.report_md.read_text()
    assert "### Latency and throughput: open loop (poisson), 2 req/s (generate, 32 new tokens)" in text
    assert "| led-small | onnx | cpu | poisson:5 | 2048 | - | - |" in text  # one length: no slope
    assert "environment.json is missing" in text
    with outputs.summary_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["arrival"], r["concurrency"], r["rate_rps"], r["gross_j_per_query"]) for r in rows] == [
        ("poisson", "", "2.0", ""),
        ("poisson", "", "5.0", ""),
    ]
