"""The report's plots as PNG files, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are built from :class:`matplotlib.figure.Figure` with a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, so nothing here touches matplotlib's
global backend or needs a display, and a figure is freed as soon as it is saved. Every energy
figure drawn from an estimate says ``estimate`` in its title and legend.

Each plot answers one question (its title asks it), with units on both axes. Legends sit outside
the axes, one per figure with one entry per model and format (colours the same in every panel);
log axes label only a few round values (1, 2, 5 per decade) so that no labels overlap; an axis
with a single value gets limits around it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

from matplotlib import rc_context
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter, NullLocator

from profiler.artifact import variant
from profiler.report.aggregate import ESTIMATE, Cell, SeriesKey, load_levels, series_of
from profiler.report.load import LoadLevel, Repeat
from profiler.report.tables import format_label, seed_cells
from profiler.results import AccuracyRecord, CapacityRecord

LATENCY_PNG = "latency_vs_length.png"
ENERGY_PNG = "energy_vs_length.png"
THROUGHPUT_PNG = "latency_vs_throughput.png"
TIMELINE_PNG = "power_timeline.png"
ACCURACY_PNG = "accuracy_vs_energy.png"
CAPACITY_PNG = "latency_vs_offered_rate.png"
DPI = 150
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Log-axis tick values per decade, tried in turn until three fall inside the axis; an axis
#: spanning less than that gets evenly spaced round values instead.
LOG_SUBS: tuple[tuple[float, ...], ...] = ((1.0,), (1.0, 2.0, 5.0))
#: Characters of a figure title per inch of figure width (11 pt type), to wrap long titles.
TITLE_CHARS_PER_INCH = 11
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def _figure(
    panels: int, width: float = 4.2, height: float = 3.2, max_columns: int = 3
) -> tuple[Figure, list[Axes]]:
    columns = min(panels, max_columns) or 1
    rows = max(1, math.ceil(panels / columns))
    # Never narrower than a legend of two entries and a title on two lines need.
    figure = Figure(figsize=(max(width * columns, 6.4), height * rows), layout="constrained")
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


def _legend(figure: Figure, entries: dict[str, Artist], title: str | None = None) -> None:
    """One legend for the figure, below the panels: it never covers data."""
    if entries:
        columns = max(1, int(figure.get_figwidth() // 3.0))  # a label is up to about 3 inches
        figure.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            ncols=min(len(entries), columns),
            title=title,
            frameon=False,
        )


def _colours(names: Iterable[str]) -> dict[str, str]:
    """One colour per name, the same in every panel of a figure."""
    return {name: f"C{index % 10}" for index, name in enumerate(sorted(set(names)))}


def series_name(series: SeriesKey) -> str:
    """The model and format a line stands for (a panel or the axis says the rest)."""
    return f"{series.model_label} {format_label(series)}"


def _pad(low: float, high: float, log: bool) -> tuple[float, float]:
    """Limits around ``low..high``: a single value gets room on both sides, not a zero-wide axis."""
    if log:
        return (low / 1.5, high * 1.5) if high <= low * 1.2 else (low / 1.15, high * 1.15)
    span = high - low
    margin = span * 0.1 if span > 0 else max(abs(high) * 0.1, 1.0)
    return low - margin, high + margin


def _log_axis(ax: Axes, which: Literal["x", "y"], values: Sequence[float]) -> None:
    """A log axis around ``values`` with a few round, plain-number labels and unlabelled minor ticks."""
    low, high = _pad(min(values), max(values), log=True)
    if which == "x":
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        axis: Axis = ax.xaxis
    else:
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        axis = ax.yaxis
    locator: Locator = MaxNLocator(nbins=4)
    for subs in LOG_SUBS:
        candidate = LogLocator(base=10, subs=subs)
        if sum(low <= t <= high for t in candidate.tick_values(low, high)) >= 3:
            locator = candidate
            break
    axis.set_major_locator(locator)
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(NullFormatter())


def _linear_axis(ax: Axes, which: Literal["x", "y"], values: Sequence[float]) -> None:
    """A linear axis around ``values`` with a few round labels."""
    low, high = _pad(min(values), max(values), log=False)
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xlim if which == "x" else ax.set_ylim)(low, high)
    axis.set_major_locator(MaxNLocator(nbins=5))
    axis.set_major_formatter(PLAIN)


def _title(figure: Figure, text: str) -> None:
    """The figure's question, wrapped to the figure's width."""
    figure.suptitle(textwrap.fill(text, int(figure.get_figwidth() * TITLE_CHARS_PER_INCH)))


def _lengths_axis(ax: Axes, lengths: Sequence[int]) -> None:
    """Input length on a log-2 x axis, labelled at the lengths measured."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(lengths))
    ax.set_xlim(*_pad(ticks[0], ticks[-1], log=True))
    ax.set_xticks(ticks, labels=[str(n) for n in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("input length (tokens)")


def _by_length(
    cells: Sequence[Cell],
    title: str,
    ylabel: str,
    figure_of: Callable[[Cell], float | None],
    energy: bool,
) -> Figure:
    """One panel per load level; per model and format a line of ``figure_of`` against input
    length, log-log, so that a line's slope is the scaling exponent."""
    levels = load_levels(cells) or [LoadLevel("closed", 1.0)]
    figure, axes = _figure(len(levels))
    colours = _colours(series_name(c.key.series) for c in cells)
    entries: dict[str, Artist] = {}
    any_estimate = False
    for level, ax in zip(levels, axes, strict=False):
        lengths: list[int] = []
        values: list[float] = []
        for series, members in series_of(c for c in cells if c.key.series.load == level).items():
            points = [(c.key.length, v) for c in members if (v := figure_of(c)) is not None and v > 0]
            if not points:
                continue
            estimate = energy and any(c.is_estimate for c in members)
            any_estimate |= estimate
            xs, ys = zip(*points, strict=True)
            lengths.extend(xs)
            values.extend(ys)
            name = series_name(series)
            line = ax.plot(xs, ys, marker="o", color=colours[name])[0]
            entries.setdefault(name + _estimate_suffix(estimate), line)
        if not values:
            _empty(ax, "not measured")
            continue
        _lengths_axis(ax, lengths)
        _log_axis(ax, "y", values)
        ax.set_ylabel(ylabel)
        ax.set_title(level.describe)
    _title(figure, title + _estimate_suffix(energy and any_estimate))
    _legend(figure, entries)
    return figure


def latency_vs_length(cells: Sequence[Cell]) -> Figure:
    """p50 latency against input length, log-log, one line per model/format per load level."""
    return _by_length(
        cells,
        "How does latency grow with input length? (log-log: slope 1 linear, 2 quadratic)",
        "p50 latency (ms)",
        lambda c: c.latency.p50 if c.latency else None,
        energy=False,
    )


def energy_vs_length(cells: Sequence[Cell]) -> Figure:
    """Gross J/query against input length, log-log; 'estimate' in the title and legend where it is one."""
    return _by_length(
        cells,
        "How does energy per query grow with input length?",
        "gross energy per query (J)",
        lambda c: c.gross_j_per_query,
        energy=True,
    )


def _level_mark(level: LoadLevel) -> str:
    """A load level in a few characters, to label a point or a stage: ``4u`` (users), ``2/s``."""
    return f"{level.level:g}u" if level.arrival == "closed" else f"{level.level:g}/s"


def latency_vs_throughput(cells: Sequence[Cell]) -> Figure:
    """One panel per input length: per model and format, p50 latency against throughput through
    its load levels, so each curve shows where more load stops buying throughput."""
    lengths = sorted({c.key.length for c in cells})
    figure, axes = _figure(len(lengths))
    colours = _colours(series_name(c.key.series) for c in cells)
    arrivals = {c.key.series.load.arrival for c in cells}
    entries: dict[str, Artist] = {}
    for length, ax in zip(lengths, axes, strict=False):
        curves: dict[tuple[str, str], list[Cell]] = {}
        for cell in cells:
            if cell.key.length == length and cell.throughput_rps is not None and cell.latency is not None:
                key = (series_name(cell.key.series), cell.key.series.load.arrival)
                curves.setdefault(key, []).append(cell)
        xs_all: list[float] = []
        ys_all: list[float] = []
        for (name, arrival), members in sorted(curves.items()):
            members.sort(key=lambda c: c.key.series.load)
            xs = [c.throughput_rps or 0.0 for c in members]
            ys = [c.latency.p50 if c.latency else 0.0 for c in members]
            style = "-" if arrival == "closed" else "--"
            line = ax.plot(xs, ys, style, marker="o", color=colours[name])[0]
            label = name if len(arrivals) == 1 else f"{name} ({arrival})"
            entries.setdefault(label, line)
            for x, y, cell in zip(xs, ys, members, strict=True):
                ax.annotate(
                    _level_mark(cell.key.series.load),
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize="small",
                    color=colours[name],
                )
            xs_all += xs
            ys_all += ys
        ax.set_title(f"{length} tokens")
        if not xs_all:
            _empty(ax, "no throughput measured")
            continue
        if max(xs_all) >= 10 * min(xs_all) > 0:  # eager beside an export: log keeps both readable
            _log_axis(ax, "x", xs_all)
        else:
            _linear_axis(ax, "x", xs_all)
        _log_axis(ax, "y", [y for y in ys_all if y > 0] or [1.0])
        ax.set_xlabel("throughput (req/s)")
        ax.set_ylabel("p50 latency (ms)")
    _title(
        figure,
        "Where does more load stop buying throughput? (labels: u = users, /s = offered req/s)",
    )
    _legend(figure, entries)
    return figure


def _timeline_series(repeats: Sequence[Repeat], gpu: bool) -> list[tuple[Repeat, list[tuple[float, float]]]]:
    """Per record, its (t, y) samples: total GPU power, or the server's CPU use without a GPU."""
    segments = []
    for repeat in sorted(repeats, key=lambda r: r.timeline[0].t_s if r.timeline else 0.0):
        if gpu:
            points = [(p.t_s, math.fsum(p.gpu_power_w)) for p in repeat.timeline if p.gpu_power_w]
        else:
            points = [(p.t_s, p.cpu_tree_pct) for p in repeat.timeline if p.cpu_tree_pct is not None]
        if points:
            segments.append((repeat, points))
    return segments


def power_timeline(repeats: Sequence[Repeat]) -> Figure:
    """Per model/format, GPU watts (or, without a GPU, the server's CPU use) over time, each stage
    coloured by its input length and marked with its load level."""
    gpu = any(p.gpu_power_w for r in repeats for p in r.timeline)
    groups: dict[tuple[str, str, str, str], list[Repeat]] = {}
    for repeat in repeats:
        groups.setdefault((repeat.model, repeat.format, repeat.engine, repeat.device), []).append(repeat)
    keys = sorted(groups)
    figure, axes = _figure(len(keys), width=5.0, height=3.0, max_columns=2)
    colours = {length: f"C{i % 10}" for i, length in enumerate(sorted({r.length for r in repeats}))}
    entries: dict[int, Artist] = {}
    if not keys:
        _empty(axes[0], "no records")
    for key, ax in zip(keys, axes, strict=False):
        segments = _timeline_series(groups[key], gpu)
        ax.set_title(f"{key[0]} {key[1]}" + ("" if key[1] == key[2] else f" ({key[2]})") + f" on {key[3]}")
        if not segments:
            _empty(ax, "no timeline samples recorded")
            continue
        start = min(t for _, points in segments for t, _ in points)
        top = max(y for _, points in segments for _, y in points)
        # Each stage's samples are drawn apart (the gaps between stages are not interpolated), over
        # a band as long as its energy window, marked with its load level.
        for repeat, points in segments:
            colour = colours[repeat.length]
            xs, ys = zip(*((t - start, y) for t, y in points), strict=True)
            line = ax.plot(xs, ys, color=colour, linewidth=1.2, marker="o", markersize=2.5)[0]
            entries.setdefault(repeat.length, line)
            ax.axvspan(xs[0], max(xs[-1], xs[0] + (repeat.window_s or 0.0)), color=colour, alpha=0.12, lw=0)
            ax.annotate(
                _level_mark(repeat.load),
                (xs[0], 0.98),
                xycoords=("data", "axes fraction"),
                fontsize="small",
                va="top",
            )
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)  # headroom for the marks
        ax.set_xlabel("time since the server's first sample (s)")
        ax.set_ylabel("GPU power (W, all GPUs)" if gpu else "server CPU use (% of one core)")
    what = "GPU power" if gpu else "server CPU use (no GPU power measured)"
    _title(figure, f"What did each stage draw? {what} per stage (marks: u = users, /s = req/s)")
    _legend(figure, {f"{n} tokens": entries[n] for n in sorted(entries)}, title="input length")
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
    """Task score against gross J/query per model/format/length, one panel per task, one colour
    per model and format (the legend), the Pareto front drawn and only its points labelled (with
    every point labelled, cells of equal score write over each other)."""
    tasks = sorted({a.task for a in scores})
    chosen = seed_cells(cells)
    colours = _colours(series_name(cell.key.series) for cell in chosen)
    figure, axes = _figure(len(tasks), width=6.4, height=4.0)
    any_estimate = False
    entries: dict[str, Artist] = {}
    for task, ax in zip(tasks, axes, strict=False):
        points: list[tuple[float, float]] = []
        names: list[str] = []
        lengths: list[int] = []
        for cell in chosen:
            s = cell.key.series
            matches = [
                a.score
                for a in scores
                if a.task == task
                and a.model == s.model
                and variant(a.format, a.precision) == s.format
                and a.input_length in (cell.key.length, None)
            ]
            if matches and cell.gross_j_per_query is not None and cell.gross_j_per_query > 0:
                points.append((cell.gross_j_per_query, matches[-1]))
                names.append(series_name(s))
                lengths.append(cell.key.length)
                any_estimate |= cell.is_estimate
        ax.set_title(task)
        if not points:
            _empty(ax, f"{task}: no cell with both a score and J/query")
            continue
        for name in sorted(set(names)):
            mine = [point for point, owner in zip(points, names, strict=True) if owner == name]
            scatter = ax.scatter(*zip(*mine, strict=True), color=colours[name], zorder=2)
            entries.setdefault(name, scatter)
        xs, ys = zip(*points, strict=True)
        front = pareto_front(points)
        middle = math.sqrt(min(xs) * max(xs))
        for order, index in enumerate(front):
            right = xs[index] > middle  # labels point inwards, so they stay inside the panel
            ax.annotate(
                f"{names[index]} {lengths[index]}",
                (xs[index], ys[index]),
                textcoords="offset points",
                # Neighbours on the front alternate above and below, so close ones do not collide.
                xytext=(-6 if right else 6, 5 if order % 2 == 0 else -11),
                ha="right" if right else "left",
                fontsize="small",
            )
        line = ax.plot(
            [xs[i] for i in front],
            [ys[i] for i in front],
            color="tab:red",
            marker="o",
            markerfacecolor="none",
            drawstyle="steps-post",
            zorder=3,
        )[0]
        entries.setdefault("Pareto frontier (labelled)", line)
        _log_axis(ax, "x", xs)
        _linear_axis(ax, "y", ys)
        ax.set_xlabel("gross energy per query (J" + (f", {ESTIMATE})" if any_estimate else ")"))
        ax.set_ylabel(f"{task} score")
    _title(
        figure, "Which model, format and length buys its accuracy cheapest?" + _estimate_suffix(any_estimate)
    )
    _legend(figure, entries)
    return figure


def latency_vs_offered_rate(records: Sequence[CapacityRecord]) -> Figure:
    """Every capacity probe's latency percentile against its offered rate, one panel per input
    length, one line per model and format, the SLO as a dashed line; failed probes hollow."""
    lengths = sorted({r.capacity.length for r in records})
    figure, axes = _figure(len(lengths))
    colours = _colours(f"{r.model} {format_label(r)}" for r in records)
    entries: dict[str, Artist] = {}
    for ax, length in zip(axes, lengths, strict=False):
        members = [r for r in records if r.capacity.length == length]
        bounds = set()
        rates: list[float] = []
        latencies: list[float] = []
        for record in sorted(members, key=lambda r: (r.model, r.format, r.repeat)):
            points = sorted(
                (p.offered_rps, p.latency_ms, p.passed)
                for p in record.capacity.probes
                if p.latency_ms is not None
            )
            if not points:
                continue
            name = f"{record.model} {format_label(record)}"
            colour = colours[name]
            line = ax.plot([x for x, _, _ in points], [y for _, y, _ in points], color=colour)[0]
            entries.setdefault(name, line)
            for x, y, passed in points:
                ax.plot(x, y, marker="o", color=colour, markerfacecolor=colour if passed else "none")
            rates += [x for x, _, _ in points]
            latencies += [y for _, y, _ in points]
            slo = record.capacity.slo
            bounds.add((slo.percentile, slo.latency_ms))
        ax.set_title(f"{length} tokens")
        if not bounds:
            _empty(ax, "no probe succeeded")
            continue
        for percentile, bound in sorted(bounds):
            rule = ax.axhline(bound, linestyle="--", color="grey")
            entries.setdefault(f"SLO p{percentile} <= {bound:g} ms", rule)
        _log_axis(ax, "x", rates)
        _log_axis(ax, "y", latencies + [bound for _, bound in bounds])
        ax.set_xlabel("offered rate (req/s, Poisson)")
        ax.set_ylabel("latency percentile of the SLO (ms)")
    _title(figure, "What rate does each model and format sustain within the SLO? (hollow: missed it)")
    _legend(figure, entries)
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
    written = []
    for title, name, draw in plots:  # one at a time, so only one figure is held in memory
        # Type sizes for a figure printed at half a page: text stays legible when the PNG shrinks.
        with rc_context(
            {
                "font.size": 10,
                "axes.titlesize": 10,
                "axes.labelsize": 10,
                "xtick.labelsize": 9,
                "ytick.labelsize": 9,
                "legend.fontsize": 9,
                "figure.titlesize": 11,
            }
        ):
            written.append((title, _save(draw(), directory / name)))
    return written
