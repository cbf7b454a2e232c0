"""The report's plots as PNG files, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are built from :class:`matplotlib.figure.Figure` with a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, so nothing here touches matplotlib's
global backend or needs a display, and a figure is freed as soon as it is saved. Every energy
figure drawn from an estimate says ``estimate`` in its title and legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from profiler.report.aggregate import ESTIMATE, Cell, load_levels, series_of
from profiler.report.load import LoadLevel, Repeat
from profiler.report.tables import seed_cells
from profiler.results import AccuracyRecord, CapacityRecord

LATENCY_PNG = "latency_vs_length.png"
ENERGY_PNG = "energy_vs_length.png"
THROUGHPUT_PNG = "latency_vs_throughput.png"
TIMELINE_PNG = "power_timeline.png"
ACCURACY_PNG = "accuracy_vs_energy.png"
CAPACITY_PNG = "latency_vs_offered_rate.png"
DPI = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _figure(
    panels: int, width: float = 6.0, height: float = 4.0, max_columns: int = 3
) -> tuple[Figure, list[Axes]]:
    columns = min(panels, max_columns) or 1
    rows = max(1, math.ceil(panels / columns))
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for extra in axes[max(panels, 1) :]:
        extra.set_visible(False)
    return figure, axes


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _estimate_suffix(estimate: bool) -> str:
    return f" ({ESTIMATE})" if estimate else ""


def _plain_log_axis(ax: Axes, lengths: Sequence[int]) -> None:
    """Log-log axes with the input lengths as x ticks and plain numbers, not powers, on y."""
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(set(lengths)), labels=[str(n) for n in sorted(set(lengths))])
    ax.xaxis.set_minor_locator(NullLocator())
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def _by_length(
    cells: Sequence[Cell],
    title: str,
    ylabel: str,
    figure_of: Callable[[Cell], float | None],
    energy: bool,
) -> Figure:
    """One panel per load level; per series a line of ``figure_of`` against input length (log-log)."""
    levels = load_levels(cells) or [LoadLevel("closed", 1.0)]
    figure, axes = _figure(len(levels))
    any_estimate = False
    for level, ax in zip(levels, axes, strict=False):
        drawn = 0
        lengths: list[int] = []
        for series, members in series_of(c for c in cells if c.key.series.load == level).items():
            points = [(c.key.length, v) for c in members if (v := figure_of(c)) is not None and v > 0]
            if not points:
                continue
            estimate = energy and any(c.is_estimate for c in members)
            any_estimate |= estimate
            xs, ys = zip(*points, strict=True)
            lengths.extend(xs)
            ax.plot(xs, ys, marker="o", label=series.label + _estimate_suffix(estimate))
            drawn += 1
        if not drawn:
            _empty(ax, "not measured")
            continue
        _plain_log_axis(ax, lengths)
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(level.describe)
        ax.legend(fontsize="small")
    figure.suptitle(title + _estimate_suffix(energy and any_estimate))
    return figure


def latency_vs_length(cells: Sequence[Cell]) -> Figure:
    """p50 latency against input length, log-log, one line per model/format per load level."""
    return _by_length(
        cells,
        "p50 latency vs input length",
        "p50 latency (ms)",
        lambda c: c.latency.p50 if c.latency else None,
        energy=False,
    )


def energy_vs_length(cells: Sequence[Cell]) -> Figure:
    """Gross J/query against input length, log-log; 'estimate' in the title and legend where it is one."""
    return _by_length(
        cells,
        "Energy per query (gross) vs input length",
        "J/query",
        lambda c: c.gross_j_per_query,
        energy=True,
    )


def latency_vs_throughput(cells: Sequence[Cell]) -> Figure:
    """Latency-throughput curves across load levels: one per model/format/engine/length/arrival."""
    curves: dict[tuple[str, str, str, str, str, int, str], list[Cell]] = {}
    for cell in cells:
        s = cell.key.series
        key = (s.model, s.format, s.engine, s.device, s.mode, cell.key.length, s.load.arrival)
        curves.setdefault(key, []).append(cell)
    figure, (ax,) = _figure(1, width=8.0, height=5.0)
    # One colour per model/format/engine, one marker per input length: curves stay distinguishable.
    colours = {key[:4]: f"C{i % 10}" for i, key in enumerate(sorted({k[:4] for k in curves}))}
    all_lengths = sorted({k[5] for k in curves})
    drawn = 0
    for key, members in sorted(curves.items(), key=lambda kv: kv[0]):
        model, fmt, _, _, _, length, arrival = key
        points = [
            (c.throughput_rps, c.latency.p50, c.key.series.load.level)
            for c in sorted(members, key=lambda c: c.key.series.load)
            if c.throughput_rps is not None and c.latency is not None
        ]
        if not points:
            continue
        xs, ys, levels = zip(*points, strict=True)
        marker = MARKERS[all_lengths.index(length) % len(MARKERS)]
        label = f"{model} {fmt} {length} ({arrival})"
        line = ax.plot(xs, ys, marker=marker, color=colours[key[:4]], label=label)[0]
        for x, y, level in zip(xs, ys, levels, strict=True):
            ax.annotate(
                f"{level:g}",
                (x, y),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize="x-small",
                color=line.get_color(),
            )
        drawn += 1
    if drawn:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("throughput (req/s)")
        ax.set_ylabel("p50 latency (ms)")
        ax.legend(fontsize="x-small", ncols=2)
    else:
        _empty(ax, "no throughput measured")
    figure.suptitle("Latency vs throughput across load levels (points labelled with users or req/s)")
    return figure


def _timeline_series(repeats: Sequence[Repeat]) -> tuple[str, list[list[tuple[float, float]]]]:
    """Per record, (t, y) segments: total GPU power where measured, else the server's CPU use."""
    gpu = any(p.gpu_power_w for r in repeats for p in r.timeline)
    segments = []
    for repeat in sorted(repeats, key=lambda r: r.timeline[0].t_s if r.timeline else 0.0):
        if gpu:
            points = [(p.t_s, math.fsum(p.gpu_power_w)) for p in repeat.timeline if p.gpu_power_w]
        else:
            points = [(p.t_s, p.cpu_tree_pct) for p in repeat.timeline if p.cpu_tree_pct is not None]
        if points:
            segments.append(points)
    return ("GPU power (W, all GPUs)" if gpu else "server CPU use (% of one core)"), segments


def power_timeline(repeats: Sequence[Repeat]) -> Figure:
    """The power timeline per model/format: GPU watts, or CPU % where there is no GPU, over time."""
    groups: dict[tuple[str, str, str, str], list[Repeat]] = {}
    for repeat in repeats:
        groups.setdefault((repeat.model, repeat.format, repeat.engine, repeat.device), []).append(repeat)
    keys = sorted(groups)
    figure, axes = _figure(len(keys), width=7.0, height=3.5, max_columns=2)
    if not keys:
        _empty(axes[0], "no records")
    for key, ax in zip(keys, axes, strict=False):
        ylabel, segments = _timeline_series(groups[key])
        if not segments:
            _empty(ax, "no timeline samples recorded")
            continue
        start = min(t for segment in segments for t, _ in segment)
        # Each record's samples are drawn apart: the gaps between stages are not interpolated.
        color = None
        for segment in segments:
            xs, ys = zip(*((t - start, y) for t, y in segment), strict=True)
            line = ax.plot(xs, ys, color=color, linewidth=1.0, marker=".", markersize=3)[0]
            color = line.get_color()
        ax.set_xlabel("time since first sample (s)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{key[0]} {key[1]} ({key[2]}/{key[3]})")
    figure.suptitle("Power timeline")
    return figure


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower x (J/query) and higher y (score).

    A point is on the front when every point with x at most its own has a lower score. Returned in
    increasing x.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def accuracy_vs_energy(cells: Sequence[Cell], scores: Sequence[AccuracyRecord]) -> Figure:
    """Task score against gross J/query per model/format/length, one panel per task, Pareto front marked."""
    tasks = sorted({a.task for a in scores})
    chosen = seed_cells(cells)
    figure, axes = _figure(len(tasks))
    any_estimate = False
    for task, ax in zip(tasks, axes, strict=False):
        points: list[tuple[float, float]] = []
        labels: list[str] = []
        for cell in chosen:
            s = cell.key.series
            matches = [
                a.score
                for a in scores
                if a.task == task
                and a.model == s.model
                and a.format in (s.format, None)
                and a.input_length in (cell.key.length, None)
            ]
            if matches and cell.gross_j_per_query is not None:
                points.append((cell.gross_j_per_query, matches[-1]))
                labels.append(f"{s.model} {s.format} {cell.key.length}")
                any_estimate |= cell.is_estimate
        if not points:
            _empty(ax, f"{task}: no cell with both a score and J/query")
            continue
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, color="tab:blue", zorder=2)
        for x, y, label in zip(xs, ys, labels, strict=True):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(3, 3), fontsize="x-small")
        front = pareto_front(points)
        ax.plot(
            [xs[i] for i in front],
            [ys[i] for i in front],
            color="tab:red",
            marker="o",
            drawstyle="steps-post",
            label="Pareto frontier",
            zorder=3,
        )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("gross J/query" + _estimate_suffix(any_estimate))
        ax.set_ylabel(f"{task} score")
        ax.set_title(task)
        ax.legend(fontsize="small")
    figure.suptitle("Accuracy vs energy per query" + _estimate_suffix(any_estimate))
    return figure


def latency_vs_offered_rate(records: Sequence[CapacityRecord]) -> Figure:
    """Every capacity probe's latency percentile against its offered rate, one panel per input
    length, one line per model and format, the SLO as a dashed line; failed probes hollow."""
    lengths = sorted({r.capacity.length for r in records})
    figure, axes = _figure(len(lengths), width=5.5, height=4.0)
    for ax, length in zip(axes, lengths, strict=False):
        members = [r for r in records if r.capacity.length == length]
        bounds = set()
        for index, record in enumerate(sorted(members, key=lambda r: (r.model, r.format, r.repeat))):
            points = sorted(
                (p.offered_rps, p.latency_ms, p.passed)
                for p in record.capacity.probes
                if p.latency_ms is not None
            )
            if not points:
                continue
            colour = f"C{index % 10}"
            ax.plot(
                [x for x, _, _ in points],
                [y for _, y, _ in points],
                color=colour,
                label=f"{record.model} {record.format}",
            )
            for x, y, passed in points:
                ax.plot(x, y, marker="o", color=colour, markerfacecolor=colour if passed else "none")
            slo = record.capacity.slo
            bounds.add((slo.percentile, slo.latency_ms))
        for percentile, bound in sorted(bounds):
            ax.axhline(bound, linestyle="--", color="grey", label=f"SLO p{percentile} <= {bound:g} ms")
        if bounds:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("offered rate (req/s, Poisson)")
            ax.set_ylabel("latency percentile of the SLO (ms)")
            ax.legend(fontsize="x-small")
        else:
            _empty(ax, "no probe succeeded")
        ax.set_title(f"{length} tokens")
    figure.suptitle("Capacity probes: latency vs offered rate (hollow: the probe missed the SLO)")
    return figure


def write_plots(
    cells: Sequence[Cell],
    repeats: Sequence[Repeat],
    scores: Sequence[AccuracyRecord],
    capacity: Sequence[CapacityRecord],
    directory: Path,
) -> list[tuple[str, Path]]:
    """Draw and save every plot the run supports, as (title, path); accuracy only with scores,
    capacity only with capacity searches."""
    plots: list[tuple[str, str, Callable[[], Figure]]] = []
    if cells:
        plots += [
            ("p50 latency vs input length", LATENCY_PNG, lambda: latency_vs_length(cells)),
            ("J/query vs input length", ENERGY_PNG, lambda: energy_vs_length(cells)),
            ("latency vs throughput", THROUGHPUT_PNG, lambda: latency_vs_throughput(cells)),
            ("power timeline", TIMELINE_PNG, lambda: power_timeline(repeats)),
        ]
    if scores and cells:
        plots.append(("accuracy vs J/query", ACCURACY_PNG, lambda: accuracy_vs_energy(cells, scores)))
    if capacity:
        plots.append(("latency vs offered rate", CAPACITY_PNG, lambda: latency_vs_offered_rate(capacity)))
    # Drawn one at a time so only one figure is held in memory.
    return [(title, _save(draw(), directory / name)) for title, name, draw in plots]
