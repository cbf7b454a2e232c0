"""Two runs side by side, a new one against its baseline: what changed in their configs, the same
cells, ratios (new / baseline), and whether each difference is larger than the repeats' spread.

Cells are matched on their full key (model, format, engine, device, mode, load level, input
length); cells left over are then matched without engine and device when exactly one candidate is
left on each side, so a CPU run and a GPU run of the same sweep line up.

The verdict on a difference uses one value per repeat (a repeat's p50, say): each run's 95%
confidence interval of the mean is computed with :func:`profiler.stats.mean_ci`, and the difference
is ``outside CI`` when the two intervals do not overlap, ``within CI`` when they do. With a single
repeat on either side there is no interval: ``n/a (1 repeat)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from profiler.report.aggregate import ESTIMATE, Cell, CellKey
from profiler.report.tables import Column, Entry, Table, format_label, ms
from profiler.stats import ConfidenceInterval, mean_ci

OUTSIDE = "outside CI"
WITHIN = "within CI"
ONE_REPEAT = "n/a (1 repeat)"
NOT_MEASURED = "n/a (not measured)"

#: Compared metrics: name -> the cell's figure (the one its tables show).
METRICS: dict[str, Callable[[Cell], float | None]] = {
    "p50_ms": lambda c: c.latency.p50 if c.latency else None,
    "p99_ms": lambda c: c.latency.p99 if c.latency else None,
    "throughput_rps": lambda c: c.throughput_rps,
    "gross_j_per_query": lambda c: c.gross_j_per_query,
}


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one cell in both runs."""

    new: float | None
    baseline: float | None
    new_ci: ConfidenceInterval | None
    baseline_ci: ConfidenceInterval | None
    verdict: str

    @property
    def ratio(self) -> float | None:
        """new / baseline (below 1: the new run is lower); None where either is missing or the
        baseline is zero."""
        if self.new is None or self.baseline is None or self.baseline == 0:
            return None
        return self.new / self.baseline


def verdict(
    new: Sequence[float], baseline: Sequence[float]
) -> tuple[str, ConfidenceInterval | None, ConfidenceInterval | None]:
    """Whether two sets of per-repeat values differ by more than their 95% confidence intervals.

    Returns:
        The verdict (``outside CI``, ``within CI``, ``n/a (1 repeat)`` or ``n/a (not measured)``) and
        both intervals (None where a run has fewer than two repeats).
    """
    new_ci = mean_ci(new) if len(new) >= 2 else None
    baseline_ci = mean_ci(baseline) if len(baseline) >= 2 else None
    if not new or not baseline:
        return NOT_MEASURED, new_ci, baseline_ci
    if new_ci is None or baseline_ci is None:
        return ONE_REPEAT, new_ci, baseline_ci
    apart = new_ci.high < baseline_ci.low or baseline_ci.high < new_ci.low
    return (OUTSIDE if apart else WITHIN), new_ci, baseline_ci


@dataclass(frozen=True)
class CellComparison:
    """A cell present in both runs."""

    new: Cell
    baseline: Cell
    metrics: dict[str, MetricComparison]

    @property
    def key(self) -> CellKey:
        """The cell's key in this run."""
        return self.new.key


def compare_cells(new: Cell, baseline: Cell) -> CellComparison:
    """Every metric of :data:`METRICS` for one matched cell."""
    metrics = {}
    for name, figure in METRICS.items():
        word, new_ci, baseline_ci = verdict(new.per_repeat(name), baseline.per_repeat(name))
        metrics[name] = MetricComparison(figure(new), figure(baseline), new_ci, baseline_ci, word)
    return CellComparison(new, baseline, metrics)


@dataclass(frozen=True)
class Comparison:
    """Two runs: matched cells, and the cells only one of them has."""

    new_run: str
    baseline_run: str
    matched: list[CellComparison]
    only_new: list[Cell]
    only_baseline: list[Cell]
    #: :func:`config_diff` of the two runs' recorded configs.
    config_diff: list[str] = field(default_factory=list)


def config_diff(
    name: str, baseline_run: str, baseline: str | None, new_run: str, new: str | None
) -> list[str]:
    """What changed from the baseline's recorded config (``name``) to the new run's, as a unified
    diff; one line saying so where they are the same or a run recorded none."""
    if baseline is None or new is None:
        missing = ", ".join(run for run, text in ((baseline_run, baseline), (new_run, new)) if text is None)
        return [f"no {name} recorded for {missing}: the configs cannot be compared"]
    if baseline == new:
        return [f"{name}: the same in both runs"]
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            baseline.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{baseline_run}/{name} (baseline)",
            tofile=f"{new_run}/{name} (new)",
        )
    ]


def _loose(key: CellKey) -> tuple[object, ...]:
    s = key.series
    return (s.model, s.global_attention, s.format, s.mode, s.max_new_tokens, s.load, key.length)


def compare(new_run: str, new: Sequence[Cell], baseline_run: str, baseline: Sequence[Cell]) -> Comparison:
    """Match the cells of two runs and compare each pair."""
    baselines = {cell.key: cell for cell in baseline}
    pairs: list[tuple[Cell, Cell]] = []
    left: list[Cell] = []
    for cell in new:
        match = baselines.pop(cell.key, None)
        if match is None:
            left.append(cell)
        else:
            pairs.append((cell, match))
    unmatched: list[Cell] = []
    for cell in left:
        candidates = [c for c in baselines.values() if _loose(c.key) == _loose(cell.key)]
        mine = [c for c in left if _loose(c.key) == _loose(cell.key)]
        if len(candidates) == 1 and len(mine) == 1:
            pairs.append((cell, candidates[0]))
            del baselines[candidates[0].key]
        else:
            unmatched.append(cell)
    order = {cell.key: index for index, cell in enumerate(new)}
    pairs.sort(key=lambda pair: order[pair[0].key])
    return Comparison(
        new_run,
        baseline_run,
        [compare_cells(a, b) for a, b in pairs],
        unmatched,
        sorted(baselines.values(), key=lambda c: c.key.sort_key()),
    )


def _ratio(item: MetricComparison, label: str | None = None, warn: bool = False) -> Entry:
    ratio = item.ratio
    if ratio is None:
        return Entry("-")
    figure = f"{ratio:.2f}x"
    text = f"{figure} ({label})" if label else figure
    return Entry(text, ratio, warn=warn, label=label, unlabelled=figure)


def _energy_note(pair: CellComparison) -> str | None:
    """``estimate`` beside a J/query ratio that involves an estimate; the table notes say more."""
    return ESTIMATE if pair.new.is_estimate or pair.baseline.is_estimate else None


def _sources(comparison: Comparison) -> list[str]:
    """A note for each pair of energy sources that differ between the runs."""
    pairs = sorted(
        {
            (p.new.energy_source or "not measured", p.baseline.energy_source or "not measured")
            for p in comparison.matched
            if p.new.energy_source != p.baseline.energy_source
        }
    )
    return [
        f"J/query sources differ: {a} (new) vs {b} (baseline); a ratio between an estimate and a meter "
        "compares a model with a measurement."
        for a, b in pairs
    ]


def _where(comparison: Comparison) -> list[str]:
    """Notes naming the engines and devices where the two runs differ (a CPU run vs a GPU run)."""
    moves = sorted(
        {
            (pair.new.key.series.engine_label, pair.baseline.key.series.engine_label)
            for pair in comparison.matched
            if pair.new.key.series.engine_label != pair.baseline.key.series.engine_label
        }
    )
    return (
        [f"Engines differ: {', '.join(f'{a} (new) vs {b} (baseline)' for a, b in moves)}."] if moves else []
    )


def _unmatched(label: str, cells: Sequence[Cell]) -> str:
    by_series: dict[str, list[str]] = {}
    for c in cells:
        s = c.key.series
        by_series.setdefault(f"{s.model} {s.format} {s.engine_label}", []).append(
            f"{c.key.length}@{s.load.label}"
        )
    listed = "; ".join(f"{name}: {', '.join(where)}" for name, where in by_series.items())
    return f"Only in {label} ({len(cells)} cells): {listed}."


def compare_table(comparison: Comparison) -> Table:
    """The terminal and Markdown view: p50 both ways with ratio and verdict, throughput and J/query ratios.

    Throughput's verdict colours its ratio (yellow: outside CI) instead of taking a column;
    ``compare.csv`` has every metric's verdict.
    """
    table = Table(
        f"Compare: {comparison.new_run} (new) vs {comparison.baseline_run} (baseline); "
        "ratio = new / baseline",
        [
            Column("model", numeric=False, key=True),
            Column("format", numeric=False, key=True),
            Column("tokens", key=True),
            Column("load", numeric=False, key=True),
            Column("p50 ms baseline"),
            Column("p50 ms new"),
            Column("p50 ratio"),
            Column("p50 verdict", numeric=False),
            Column("req/s ratio"),
            Column("J/query ratio"),
            Column("J/query verdict", numeric=False),
        ],
    )
    for pair in comparison.matched:
        s = pair.key.series
        p50 = pair.metrics["p50_ms"]
        rps = pair.metrics["throughput_rps"]
        joules = pair.metrics["gross_j_per_query"]
        table.add_row(
            [
                Entry(s.model),
                Entry(format_label(s)),
                Entry(str(pair.key.length), float(pair.key.length)),
                Entry(s.load.label),
                ms(p50.baseline),
                ms(p50.new),
                _ratio(p50),
                Entry(p50.verdict, warn=p50.verdict == OUTSIDE),
                _ratio(rps, warn=rps.verdict == OUTSIDE),
                _ratio(joules, _energy_note(pair)),
                Entry(joules.verdict, warn=joules.verdict == OUTSIDE),
            ],
            group=s,
        )
    table.notes.append(
        "Verdicts: 95% confidence intervals of the mean over repeats (one value per repeat); "
        "'outside CI' when the two runs' intervals do not overlap."
    )
    table.notes.extend(_where(comparison))
    table.notes.extend(_sources(comparison))
    for label, cells in (
        ("the new run", comparison.only_new),
        ("the baseline run", comparison.only_baseline),
    ):
        if cells:
            table.notes.append(_unmatched(label, cells))
    return table
