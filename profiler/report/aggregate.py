"""From records to cells: repeats aggregated per cell, and scaling slopes across input lengths.

A cell is one model x format x engine x device x mode x load level x input length. Its repeats are
combined as follows (docs/report.md explains why):

- latency percentiles from the raw samples of all repeats pooled (never an average of percentiles),
  and so time to first token and per output token for streamed cells;
- throughput, energy per query and power as the mean over repeats (one value per repeat);
- a 95% confidence interval of the mean p50 across repeats (:func:`profiler.stats.mean_ci`);
- failures and requests summed, memory high-water marks maxed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from profiler.energy.contention import Contention
from profiler.report.load import LoadLevel, Repeat
from profiler.stats import ConfidenceInterval, Summary, mean_ci, percentile

ESTIMATE = "estimate"


@dataclass(frozen=True)
class SeriesKey:
    """What stays fixed along one scaling series: everything in a cell's key but the input length."""

    model: str
    format: str
    engine: str
    device: str
    mode: str
    max_new_tokens: int | None
    load: LoadLevel
    #: LED's global attention (``none`` for a model without it).
    global_attention: str = "none"

    @property
    def model_label(self) -> str:
        """The model, with its global attention where it has one: ``led-small (global first)``."""
        return (
            self.model
            if self.global_attention == "none"
            else f"{self.model} (global {self.global_attention})"
        )

    @property
    def engine_label(self) -> str:
        """``onnx/cpu``: the engine and the device it ran on."""
        return f"{self.engine}/{self.device}"

    @property
    def label(self) -> str:
        """One line naming the series, for legends: ``led-small onnx closed:4``."""
        engine = "" if self.engine == self.format else f" ({self.engine})"
        return f"{self.model_label} {self.format}{engine} {self.load.label}"

    def sort_key(self) -> tuple[str, str, str, str, str, str, int, LoadLevel]:
        """Model, global attention, format, engine, device, mode, then load from light to heavy."""
        return (
            self.model,
            self.global_attention,
            self.format,
            self.engine,
            self.device,
            self.mode,
            self.max_new_tokens or 0,
            self.load,
        )


@dataclass(frozen=True)
class CellKey:
    """One cell of the sweep matrix, repeats aside."""

    series: SeriesKey
    length: int

    def sort_key(self) -> tuple[tuple[str, str, str, str, str, str, int, LoadLevel], int]:
        """Series order, then input length."""
        return self.series.sort_key(), self.length


def key_of(repeat: Repeat) -> CellKey:
    """The cell a record belongs to."""
    series = SeriesKey(
        repeat.model,
        repeat.format,
        repeat.engine,
        repeat.device,
        repeat.mode,
        repeat.max_new_tokens,
        repeat.load,
        repeat.global_attention,
    )
    return CellKey(series, repeat.length)


def repeat_p50_ms(repeat: Repeat) -> float | None:
    """Median latency of one repeat, from its raw samples."""
    return percentile(repeat.latency_ms, 50.0) if repeat.latency_ms else None


def repeat_p99_ms(repeat: Repeat) -> float | None:
    """99th-percentile latency of one repeat, from its raw samples."""
    return percentile(repeat.latency_ms, 99.0) if repeat.latency_ms else None


#: One value per repeat for each metric that compare tests against the repeats' spread.
PER_REPEAT: dict[str, Callable[[Repeat], float | None]] = {
    "p50_ms": repeat_p50_ms,
    "p99_ms": repeat_p99_ms,
    "throughput_rps": lambda r: r.throughput_rps,
    "gross_j_per_query": lambda r: r.gross_j_per_query,
}


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def _max(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Cell:
    """One cell, its repeats aggregated. Figures are None where nothing was measured.

    Attributes:
        latency: summary of every repeat's raw latencies pooled. Units: ms.
        p50_ci: 95% confidence interval of the mean of the repeats' p50s; None with one repeat.
        energy_source: where the joules came from (``estimate``, ``rapl``, ...); several joined by
            ``/`` if the repeats disagree.
        gpu_util_pct: mean GPU utilisation over the timeline samples of all repeats. Units: %.
        gpu_memory_bytes: GPU memory high-water mark. Units: bytes.
        enough_requests / stable: every repeat had its minimum of successful requests / was
            stable (False if any was not; None where no repeat was judged).
        contention: the most disturbed repeat's (one disturbed repeat disturbs the pooled
            percentiles); None where no repeat measured it.
        ttft / tpot: time to first token and per output token, every repeat's pooled; None when
            the cell was not streamed. Units: ms.
        server: the server's split of each request (``queue_ms``, ``encode_ms``, ...), every
            repeat's pooled; keys absent where nothing was recorded. Units: ms.
    """

    key: CellKey
    repeats: tuple[Repeat, ...]
    latency: Summary | None
    p50_ci: ConfidenceInterval | None
    requests: int
    failures: int
    failure_reasons: dict[str, int]
    throughput_rps: float | None
    tokens_per_s: float | None
    gross_j_per_query: float | None
    net_j_per_query: float | None
    net_clamped: bool
    avg_power_w: float | None
    energy_source: str | None
    gpu_util_pct: float | None
    gpu_memory_bytes: int | None
    peak_rss_bytes: int | None
    enough_requests: bool | None = None
    stable: bool | None = None
    gross_j_per_token: float | None = None
    gross_j_per_good_query: float | None = None
    contention: Contention | None = None
    ttft: Summary | None = None
    tpot: Summary | None = None
    server: dict[str, Summary] = field(default_factory=dict)

    @property
    def disturbed(self) -> bool:
        """Whether other work disturbed a repeat (:attr:`Contention.disturbed`)."""
        return self.contention is not None and self.contention.disturbed

    @property
    def is_estimate(self) -> bool:
        """Whether any of the energy figures is an estimate (and must be shown as one)."""
        return self.energy_source is not None and ESTIMATE in self.energy_source.split("/")

    def per_repeat(self, metric: str) -> list[float]:
        """One value of ``metric`` (a key of :data:`PER_REPEAT`) per repeat that measured it."""
        values = (PER_REPEAT[metric](r) for r in self.repeats)
        return [v for v in values if v is not None]


def _gpu_util(repeats: Sequence[Repeat]) -> float | None:
    # Each sample's GPUs are averaged first so a multi-GPU sample weighs as much as a single-GPU one.
    per_sample = [
        math.fsum(p.gpu_util_pct) / len(p.gpu_util_pct) for r in repeats for p in r.timeline if p.gpu_util_pct
    ]
    return math.fsum(per_sample) / len(per_sample) if per_sample else None


def _gpu_memory(repeat: Repeat) -> int | None:
    sampled = [m for p in repeat.timeline for m in p.gpu_memory_bytes]
    return _max([repeat.peak_gpu_memory_bytes, *sampled])


def make_cell(key: CellKey, repeats: Sequence[Repeat]) -> Cell:
    """Aggregate the repeats of one cell."""
    ordered = tuple(sorted(repeats, key=lambda r: r.repeat))
    pooled = [x for r in ordered for x in r.latency_ms]
    p50s = [v for r in ordered if (v := repeat_p50_ms(r)) is not None]
    reasons: dict[str, int] = {}
    for r in ordered:
        for reason, count in r.failure_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    sources = sorted({r.energy_source for r in ordered if r.energy_source})
    return Cell(
        key=key,
        repeats=ordered,
        latency=Summary.from_samples(pooled) if pooled else None,
        p50_ci=mean_ci(p50s) if len(p50s) >= 2 else None,
        requests=sum(r.requests for r in ordered),
        failures=sum(r.failures for r in ordered),
        failure_reasons=reasons,
        throughput_rps=_mean(r.throughput_rps for r in ordered),
        tokens_per_s=_mean(r.tokens_per_s for r in ordered),
        gross_j_per_query=_mean(r.gross_j_per_query for r in ordered),
        net_j_per_query=_mean(r.net_j_per_query for r in ordered),
        net_clamped=any(r.net_clamped for r in ordered),
        avg_power_w=_mean(r.avg_power_w for r in ordered),
        energy_source="/".join(sources) or None,
        gpu_util_pct=_gpu_util(ordered),
        gpu_memory_bytes=_max(_gpu_memory(r) for r in ordered),
        peak_rss_bytes=_max(r.peak_rss_bytes for r in ordered),
        gross_j_per_token=_mean(r.gross_j_per_token for r in ordered),
        gross_j_per_good_query=_mean(r.gross_j_per_good_query for r in ordered),
        enough_requests=_all(r.enough_requests for r in ordered),
        stable=_all(r.stable for r in ordered),
        contention=_most_disturbed(r.contention for r in ordered),
        ttft=_pooled(r.ttft_ms for r in ordered),
        tpot=_pooled(r.tpot_ms for r in ordered),
        server=_server_split(ordered),
    )


def _server_split(repeats: Sequence[Repeat]) -> dict[str, Summary]:
    keys = dict.fromkeys(key for r in repeats for key in r.server_timings_ms)
    split = {key: _pooled(r.server_timings_ms.get(key, ()) for r in repeats) for key in keys}
    return {key: summary for key, summary in split.items() if summary is not None}


def _most_disturbed(measured: Iterable[Contention | None]) -> Contention | None:
    present = [c for c in measured if c is not None]
    return max(present, key=lambda c: (c.disturbed, c.others_share), default=None)


def _all(verdicts: Iterable[bool | None]) -> bool | None:
    """True if every judged repeat passed, False if one failed, None if none was judged."""
    judged = [v for v in verdicts if v is not None]
    return all(judged) if judged else None


def _pooled(samples: Iterable[Sequence[float]]) -> Summary | None:
    pooled = [x for repeat in samples for x in repeat]
    return Summary.from_samples(pooled) if pooled else None


def aggregate(repeats: Iterable[Repeat]) -> list[Cell]:
    """Group records into cells (repeats combined), in series order then input length."""
    groups: dict[CellKey, list[Repeat]] = {}
    for repeat in repeats:
        groups.setdefault(key_of(repeat), []).append(repeat)
    return [make_cell(key, groups[key]) for key in sorted(groups, key=CellKey.sort_key)]


def load_levels(cells: Iterable[Cell]) -> list[LoadLevel]:
    """Every load level present, light to heavy."""
    return sorted({cell.key.series.load for cell in cells})


# --- Scaling with input length ---------------------------------------------------------------------


def loglog_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y on log x: the exponent k in y ~ x^k (1 linear, 2 quadratic).

    Returns None with fewer than two distinct x, or when any x or y is not positive (a logarithm
    is needed).
    """
    if len({x for x, _ in points}) < 2 or any(x <= 0 or y <= 0 for x, y in points):
        return None
    logs = [(math.log(x), math.log(y)) for x, y in points]
    mean_x = math.fsum(lx for lx, _ in logs) / len(logs)
    mean_y = math.fsum(ly for _, ly in logs) / len(logs)
    sxy = math.fsum((lx - mean_x) * (ly - mean_y) for lx, ly in logs)
    sxx = math.fsum((lx - mean_x) ** 2 for lx, _ in logs)
    return sxy / sxx


@dataclass(frozen=True)
class Scaling:
    """How one series' p50 latency and gross J/query grow with input length (log-log slopes)."""

    series: SeriesKey
    lengths: tuple[int, ...]
    latency_slope: float | None
    energy_slope: float | None
    energy_source: str | None

    @property
    def is_estimate(self) -> bool:
        """Whether the energy slope comes from estimated joules."""
        return self.energy_source is not None and ESTIMATE in self.energy_source.split("/")


def series_of(cells: Iterable[Cell]) -> dict[SeriesKey, list[Cell]]:
    """Cells grouped by series, each list ordered by input length; series in order."""
    groups: dict[SeriesKey, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.key.series, []).append(cell)
    return {
        key: sorted(groups[key], key=lambda c: c.key.length) for key in sorted(groups, key=SeriesKey.sort_key)
    }


def scaling(cells: Iterable[Cell]) -> list[Scaling]:
    """One :class:`Scaling` per series (model, format, engine, device, mode, load level)."""
    result = []
    for key, members in series_of(cells).items():
        latency = [(float(c.key.length), c.latency.p50) for c in members if c.latency is not None]
        energy = [
            (float(c.key.length), c.gross_j_per_query) for c in members if c.gross_j_per_query is not None
        ]
        sources = sorted({s for c in members if c.energy_source for s in c.energy_source.split("/")})
        result.append(
            Scaling(
                series=key,
                lengths=tuple(c.key.length for c in members),
                latency_slope=loglog_slope(latency),
                energy_slope=loglog_slope(energy),
                energy_source="/".join(sources) or None,
            )
        )
    return result
