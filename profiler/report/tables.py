"""The report's tables as plain data, which the terminal (rich) and Markdown writers both render.

A :class:`Table` holds text entries with the number behind each, so the best cell of a column can
be picked on numbers (lowest latency and J/query, highest throughput and score) among the rows
that serve the same workload: cells of one input length at one load level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from profiler.artifact import variant
from profiler.energy.contention import DISTURBED_SHARE
from profiler.environment import Environment, GpuInfo
from profiler.loadgen.stopping import STABLE_WINDOWS
from profiler.report.aggregate import ESTIMATE, Cell, Scaling, SeriesKey
from profiler.report.load import LoadLevel
from profiler.results import AccuracyRecord, CapacityRecord
from profiler.stats import UNSUPPORTED, Summary, samples_for

Better = Literal["low", "high"]
#: A log-log slope at or above this reads as super-linear: halfway between linear and quadratic.
SUPERLINEAR_SLOPE = 1.5
SIZE_WORDS = ("tiny", "mini", "small", "base", "medium", "large", "xl", "xxl")


@dataclass(frozen=True)
class Column:
    """A column: its header, alignment, and which way is better (None: never highlighted).

    ``key`` columns say which cell a row is (model, format, input length): a terminal too narrow
    for every column repeats them in each of the stacked tables it prints. ``wrap`` marks prose
    (an environment value) that may wrap between words; figures never wrap.
    """

    header: str
    better: Better | None = None
    numeric: bool = True
    key: bool = False
    wrap: bool = False


@dataclass(frozen=True)
class Entry:
    """One table cell: the text shown, the number behind it, and how to emphasise it."""

    text: str
    value: float | None = None
    best: bool = False
    warn: bool = False
    #: What ``text`` names in brackets, e.g. the energy source of ``1.25 (estimate)``, and the text
    #: without it (``1.25``): a terminal may print the label once in the column's header when
    #: every figure of the column has it.
    label: str | None = None
    unlabelled: str | None = None

    @property
    def figure(self) -> str:
        """The text without its label, where it has one."""
        return self.unlabelled if self.label is not None and self.unlabelled is not None else self.text


@dataclass
class Table:
    """Rows of entries under columns.

    ``groups[i]`` says which rows may be compared with row i when picking the best cell;
    ``sections[i]`` which rows are printed together (a rule is drawn where it changes).
    """

    title: str
    columns: list[Column]
    rows: list[list[Entry]] = field(default_factory=list)
    groups: list[object] = field(default_factory=list)
    sections: list[object] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_row(self, entries: Sequence[Entry], group: object = None, section: object = None) -> None:
        """Append a row, compared for "best" only with rows of the same ``group``.

        ``section`` defaults to the group.
        """
        if len(entries) != len(self.columns):  # a programming error, not a user's
            raise ValueError(f"row has {len(entries)} entries for {len(self.columns)} columns")
        self.rows.append(list(entries))
        self.groups.append(group)
        self.sections.append(group if section is None else section)

    def column(self, header: str) -> list[Entry]:
        """Every entry of the column with this header."""
        index = [c.header for c in self.columns].index(header)
        return [row[index] for row in self.rows]


def mark_best(table: Table) -> Table:
    """Flag the best entry of each ``better`` column within each group of two or more rows.

    Ties are all flagged. A group in which only one row has a figure flags nothing: a lone cell is
    not best of anything.
    """
    for col, column in enumerate(table.columns):
        if column.better is None:
            continue
        by_group: dict[object, list[int]] = {}
        for row, group in enumerate(table.groups):
            if table.rows[row][col].value is not None:
                by_group.setdefault(group, []).append(row)
        for rows in by_group.values():
            if len(rows) < 2:
                continue
            values = [table.rows[r][col].value for r in rows]
            pick = min if column.better == "low" else max
            target = pick(v for v in values if v is not None)
            for r in rows:
                if table.rows[r][col].value == target:
                    table.rows[r][col] = replace(table.rows[r][col], best=True)
    return table


def drop_unmeasured(table: Table, headers: Sequence[str]) -> Table:
    """Remove those of ``headers`` whose every entry is ``-`` (GPU columns of a CPU-only run)."""
    return drop_columns(table, [h for h in headers if all(e.text == "-" for e in table.column(h))])


def _drop_if_same(table: Table, header: str, like: str) -> Table:
    """Remove column ``header`` where it says what ``like`` says on every row (no failed request)."""
    same = all(a.text == b.text for a, b in zip(table.column(header), table.column(like), strict=True))
    return drop_columns(table, [header]) if same else table


def drop_columns(table: Table, headers: Sequence[str]) -> Table:
    """Remove the named columns."""
    names = [c.header for c in table.columns]
    drop = {names.index(h) for h in headers}
    table.columns = [c for i, c in enumerate(table.columns) if i not in drop]
    table.rows = [[e for i, e in enumerate(row) if i not in drop] for row in table.rows]
    return table


# --- Formatting: one place decides how each kind of figure reads ----------------------------------


def _blank() -> Entry:
    return Entry("-")


def ms(value: float | None) -> Entry:
    """Milliseconds, one decimal."""
    return _blank() if value is None else Entry(f"{value:.1f}", value)


def rate(value: float | None, digits: int = 2) -> Entry:
    """A rate (requests or tokens per second)."""
    return _blank() if value is None else Entry(f"{value:,.{digits}f}", value)


def energy(value: float | None, source: str | None, clamped: bool = False, spec: str = ".3g") -> Entry:
    """Joules (or watts) with the source beside the figure: ``1.25 (estimate)``, as the design requires."""
    if value is None:
        return _blank()
    label = source or "source unknown"
    figure = f"{value:{spec}}"
    if clamped:
        return Entry(
            f"{figure} ({label}, clamped to 0)", value, label=label, unlabelled=f"{figure} (clamped to 0)"
        )
    return Entry(f"{figure} ({label})", value, label=label, unlabelled=figure)


def size_bytes(value: int | None) -> Entry:
    """Bytes in binary units."""
    if value is None:
        return _blank()
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return Entry(f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}", float(value))
        amount /= 1024
    return _blank()  # pragma: no cover - the loop always returns


def percent(value: float | None) -> Entry:
    """A percentage."""
    return _blank() if value is None else Entry(f"{value:.0f}%", value)


def slope(value: float | None, source: str | None = None) -> Entry:
    """A log-log slope; super-linear slopes are flagged in words, energy slopes carry their source."""
    if value is None:
        return _blank()
    text = f"{value:.2f}"
    warn = value >= SUPERLINEAR_SLOPE
    if warn:
        text += " super-linear"
    if source is not None and ESTIMATE in source.split("/"):
        return Entry(f"{text} ({ESTIMATE})", value, warn=warn, label=ESTIMATE, unlabelled=text)
    return Entry(text, value, warn=warn)


def _text(value: str) -> Entry:
    return Entry(value)


def _failures(cell: Cell) -> Entry:
    if not cell.failures:
        return Entry("0", 0.0)
    share = f" ({cell.failures / cell.requests:.0%})" if cell.requests else ""
    return Entry(f"{cell.failures}{share}", float(cell.failures), warn=True)


def format_label(series: SeriesKey | CapacityRecord) -> str:
    """The format (and its precision unless fp32), with the engine beside it only where the two
    differ: ``onnx``, ``onnx int8``, ``hf (eager)``."""
    fmt, engine = series.format, series.engine
    if isinstance(series, CapacityRecord):  # a series' format already names its precision
        fmt, engine = variant(fmt, series.precision), variant(engine, series.precision)
    return fmt if engine == fmt else f"{fmt} ({engine})"


def _ids(series: SeriesKey) -> list[Entry]:
    return [_text(series.model_label), _text(format_label(series)), _text(series.device)]


def workload_label(series: SeriesKey) -> str:
    """``generate, 32 new tokens``: the request mode a table holds."""
    if series.mode == "generate" and series.max_new_tokens:
        return f"{series.mode}, {series.max_new_tokens} new tokens"
    return series.mode


# --- The run's tables -------------------------------------------------------------------------------

_ID_COLUMNS = [
    Column("model", numeric=False, key=True),
    Column("format", numeric=False, key=True),
    Column("device", numeric=False, key=True),
]
_TOKENS = Column("tokens", key=True)


def _by_level(cells: Iterable[Cell]) -> dict[tuple[str, int, LoadLevel], list[Cell]]:
    groups: dict[tuple[str, int, LoadLevel], list[Cell]] = {}
    for cell in cells:
        s = cell.key.series
        groups.setdefault((s.mode, s.max_new_tokens or 0, s.load), []).append(cell)
    return {
        k: sorted(v, key=lambda c: (c.key.length, c.key.series.sort_key()))
        for k, v in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    }


def _level_tables(
    cells: Sequence[Cell], what: str, columns: list[Column], row: Callable[[Cell], list[Entry]]
) -> list[Table]:
    tables = []
    for members in _by_level(cells).values():
        first = members[0].key.series
        table = Table(f"{what}: {first.load.describe} ({workload_label(first)})", [*_ID_COLUMNS, *columns])
        for cell in members:
            s = cell.key.series
            table.add_row([*_ids(s), *row(cell)], group=cell.key.length)
        tables.append(mark_best(table))
    return tables


def percentile_ms(summary: Summary | None, q: float) -> Entry:
    """The ``q``-th percentile latency, marked :data:`UNSUPPORTED` when too few samples carry it."""
    if summary is None:
        return _blank()
    value = getattr(summary, f"p{q:g}")
    if summary.count >= samples_for(q):
        return ms(value)
    return Entry(f"{value:.1f}{UNSUPPORTED}", value, warn=True)


def _requests(cell: Cell) -> Entry:
    """Successful requests behind the percentiles, with ``few``, ``unstable`` and ``disturbed``
    where they apply."""
    count = cell.latency.count if cell.latency else 0
    flags = [
        word
        for word, flagged in (
            ("few", cell.enough_requests is False),
            ("unstable", cell.stable is False),
            ("disturbed", cell.disturbed),
        )
        if flagged
    ]
    return Entry(" ".join([str(count), *flags]), float(count), warn=bool(flags))


def _sufficiency_notes(table: Table) -> list[str]:
    """What the marks in a latency table mean, for the marks it holds."""
    notes = []
    if any(e.text.endswith(UNSUPPORTED) for header in ("p90 ms", "p99 ms") for e in table.column(header)):
        notes.append(
            f"{UNSUPPORTED} from fewer requests than the percentile needs (p90: {samples_for(90)}, "
            f"p99: {samples_for(99)}): little more than the slowest request."
        )
    flags = " ".join(e.text for e in table.column("requests"))
    if "few" in flags:
        notes.append("few: the stage reached its cap (max_stage_seconds) before its min_requests.")
    if "unstable" in flags:
        notes.append(
            f"unstable: the stage's last {STABLE_WINDOWS} windows disagreed on throughput or p50 by "
            "more than its stability tolerance."
        )
    if "disturbed" in flags:
        notes.append(
            f"disturbed: other processes (or the hypervisor's steal) took more than "
            f"{DISTURBED_SHARE:.0%} of the server machine's CPUs during the stage, or ran on its "
            "GPUs: its latency is not the model's alone."
        )
    return notes


def disturbed_notes(cells: Iterable[Cell]) -> list[str]:
    """One line per disturbed cell, with what disturbed it: ``led-small eager 1024 closed:1:
    others used 38% of the CPUs (load 5.2)``."""
    lines = []
    for cell in cells:
        if cell.contention is not None and cell.disturbed:
            s = cell.key.series
            where = f"{s.model_label} {format_label(s)} {cell.key.length} {s.load.label}"
            lines.append(f"{where}: {cell.contention.describe()}")
    return lines


def latency_tables(cells: Sequence[Cell]) -> list[Table]:
    """One table per load level: latency percentiles, throughput and failures per cell, with the
    successful requests behind them and whether they were enough and stable."""
    columns = [
        _TOKENS,
        Column("repeats"),
        Column("requests"),
        Column("p50 ms", "low"),
        Column("p90 ms", "low"),
        Column("p99 ms", "low"),
        Column("req/s", "high"),
        Column("tokens/s", "high"),
        Column("failures"),
    ]

    def row(cell: Cell) -> list[Entry]:
        summary = cell.latency
        return [
            Entry(str(cell.key.length), float(cell.key.length)),
            Entry(str(len(cell.repeats)), float(len(cell.repeats))),
            _requests(cell),
            percentile_ms(summary, 50),
            percentile_ms(summary, 90),
            percentile_ms(summary, 99),
            rate(cell.throughput_rps),
            rate(cell.tokens_per_s, 0),
            _failures(cell),
        ]

    tables = _level_tables(cells, "Latency and throughput", columns, row)
    for table, members in zip(tables, _by_level(cells).values(), strict=True):
        table.notes += _sufficiency_notes(table)
        table.notes += disturbed_notes(members)
        if all(e.text == "1" for e in table.column("repeats")):
            # The common case says so once instead of taking a column's width.
            drop_columns(table, ["repeats"])
            table.notes.append("One repeat per cell.")
    return tables


#: The server's split of a request the time table shows (its header, the timing's key).
SERVER_SPLIT = (
    ("queue", "queue_ms"),
    ("encode", "encode_ms"),
    ("step 1", "first_step_ms"),
    ("decode", "decode_ms"),
)


def time_tables(cells: Sequence[Cell]) -> list[Table]:
    """One table per load level: where each cell's time goes. The client's time to first token
    and per output token (streamed levels only) beside the end-to-end p50, and the server's p50
    of each part of a request (queue, encode, the first decoding step, the whole decode)."""
    streamed = any(cell.ttft is not None for cell in cells)
    client = [Column("TTFT p50 ms", "low"), Column("TTFT p99 ms", "low"), Column("TPOT p50 ms", "low")]
    columns = [
        _TOKENS,
        *(client if streamed else []),
        Column("p50 ms", "low"),
        *(Column(f"server {header} p50", "low") for header, _ in SERVER_SPLIT),
    ]

    def row(cell: Cell) -> list[Entry]:
        ttft, tpot, latency = cell.ttft, cell.tpot, cell.latency
        times = [percentile_ms(ttft, 50), percentile_ms(ttft, 99), ms(tpot.p50 if tpot else None)]
        server = [cell.server.get(key) for _, key in SERVER_SPLIT]
        return [
            Entry(str(cell.key.length), float(cell.key.length)),
            *(times if streamed else []),
            ms(latency.p50 if latency else None),
            *(ms(part.p50 if part else None) for part in server),
        ]

    measured = [c for c in cells if c.latency is not None]
    tables = _level_tables(measured, "Where the time goes", columns, row)
    for table in tables:
        if streamed:
            table.notes.append(
                "TTFT: from the request's start to its first streamed token; TPOT: per token after "
                "it ('-' where the level was not streamed)."
            )
        table.notes.append(
            "server: the server's own split of each request (Server-Timing): time queued, the "
            "encoder pass, the first decoding step (the first token waits for encode and it) and "
            "the whole decode; p50 ms."
        )
    return tables


def energy_tables(cells: Sequence[Cell]) -> list[Table]:
    """One table per load level: J/query gross and net with source, power, GPU and memory."""
    columns = [
        _TOKENS,
        Column("gross J/query", "low"),
        Column("J/good query", "low"),
        Column("net J/query", "low"),
        Column("J/token", "low"),
        Column("avg power W"),
        Column("GPU util"),
        Column("GPU memory"),
        Column("peak RSS"),
    ]

    def row(cell: Cell) -> list[Entry]:
        return [
            Entry(str(cell.key.length), float(cell.key.length)),
            energy(cell.gross_j_per_query, cell.energy_source),
            energy(cell.gross_j_per_good_query, cell.energy_source),
            energy(cell.net_j_per_query, cell.energy_source, cell.net_clamped),
            energy(cell.gross_j_per_token, cell.energy_source),
            energy(cell.avg_power_w, cell.energy_source, spec=".1f"),
            percent(cell.gpu_util_pct),
            size_bytes(cell.gpu_memory_bytes),
            size_bytes(cell.peak_rss_bytes),
        ]

    tables = [
        _drop_if_same(
            drop_unmeasured(t, ("GPU util", "GPU memory", "J/token")), "J/good query", "gross J/query"
        )
        for t in _level_tables(cells, "Energy and resources", columns, row)
    ]
    for table in tables:
        table.notes.append(
            "Energy figures name their source; 'estimate' means modelled from CPU time, not metered. "
            "Net subtracts the idle baseline. J/good query divides the window's gross energy by the "
            "successful requests only; J/token by the tokens they generated."
        )
    return tables


def scaling_table(rows: Sequence[Scaling]) -> Table:
    """Log-log slopes of p50 latency and gross J/query against input length, one row per series."""
    table = Table(
        "Scaling with input length (log-log slope: 1.0 linear, 2.0 quadratic)",
        [
            *_ID_COLUMNS,
            Column("load", numeric=False, key=True),
            Column("lengths", numeric=False),
            Column("latency slope"),
            Column("J/query slope"),
        ],
    )
    for item in rows:
        s = item.series
        table.add_row(
            [
                *_ids(s),
                _text(s.load.label),
                _text(",".join(map(str, item.lengths))),
                slope(item.latency_slope),
                slope(item.energy_slope, item.energy_source),
            ]
        )
    table.notes.append(
        f"Least-squares fit of log(y) on log(input length); '-' needs two or more lengths. "
        f"A slope of {SUPERLINEAR_SLOPE} or more is flagged super-linear."
    )
    return table


def capacity_table(records: Sequence[CapacityRecord]) -> Table:
    """One row per model, format and input length: the highest open-loop rate that met the SLO, the
    lowest that did not, the goodput and joules per good query at the sustained rate."""
    columns = [
        *_ID_COLUMNS,
        _TOKENS,
        Column("SLO", numeric=False, key=True),
        Column("sustained req/s", "high"),
        Column("failed at req/s"),
        Column("goodput req/s", "high"),
        Column("J/good query", "low"),
        Column("probes"),
    ]
    table = Table("Capacity: the highest open-loop rate within the SLO", columns)
    ordered = sorted(records, key=lambda r: (r.capacity.length, r.model, r.format, r.engine, r.repeat))
    for record in ordered:
        found, slo = record.capacity, record.capacity.slo
        sustained = rate(found.sustained_rps, 3)
        if found.sustained_rps is not None and found.lowest_failing_rps is None:
            sustained = Entry(f">= {sustained.text}", sustained.value)  # every probe passed: a floor
        table.add_row(
            [
                _text(record.model),
                _text(format_label(record)),
                _text(record.device),
                Entry(str(found.length), float(found.length)),
                _text(f"p{slo.percentile} <= {slo.latency_ms:g} ms"),
                sustained,
                rate(found.lowest_failing_rps, 3),
                rate(found.goodput_rps, 3),
                energy(found.j_per_good_query, found.energy_source),
                Entry(str(len(found.probes)), float(len(found.probes))),
            ],
            group=(found.length, slo),
        )
    table.notes.append(
        "Each probe is a stage at one Poisson rate; it passes when its latency percentile and failure "
        "ratio meet the SLO and the load generator left no arrival unsent. Goodput counts requests "
        "within the latency bound; J/good query is the probe's window energy over them."
    )
    if any(not r.capacity.bracketed for r in records):
        table.notes.append(
            "A rate with '>=' passed at the search's max_rps; 'none' sustained: even min_rps failed; "
            "otherwise an unbracketed search ran out of probes before its tolerance."
        )
    return mark_best(table)


def model_size(model: str) -> str:
    """The size word in a model's name (``led-small`` -> ``small``), or ``-``."""
    words = [w for w in model.lower().replace("_", "-").split("-") if w in SIZE_WORDS]
    return words[-1] if words else "-"


def _score_for(scores: Sequence[AccuracyRecord], cell: Cell, task: str) -> float | None:
    s = cell.key.series
    exact = [
        a.score
        for a in scores
        if a.task == task
        and a.model == s.model
        and a.input_length in (cell.key.length, None)
        and variant(a.format, a.precision) == s.format
    ]
    return exact[-1] if exact else None


def seed_cells(cells: Sequence[Cell]) -> list[Cell]:
    """Per model, format, engine and length, the cell at the lightest load level run."""
    chosen: dict[tuple[str, str, str, str, str, int], Cell] = {}
    for cell in cells:
        s = cell.key.series
        key = (s.model, s.format, s.engine, s.device, s.mode, cell.key.length)
        if key not in chosen or s.load < chosen[key].key.series.load:
            chosen[key] = cell
    return sorted(chosen.values(), key=lambda c: (c.key.series.model, c.key.series.format, c.key.length))


def seed_table(cells: Sequence[Cell], scores: Sequence[AccuracyRecord]) -> Table:
    """The seed study's layout: one row per model, size and input length, score beside cost."""
    tasks = sorted({a.task for a in scores})
    score_columns = [Column(task, "high") for task in tasks] or [Column("score")]
    table = Table(
        "Accuracy and cost (seed-study layout; cost at the lightest load level run)",
        [
            Column("model", numeric=False, key=True),
            Column("size", numeric=False, key=True),
            Column("format", numeric=False, key=True),
            _TOKENS,
            Column("load", numeric=False, key=True),
            *score_columns,
            Column("p50 ms", "low"),
            Column("req/s", "high"),
            Column("gross J/query", "low"),
        ],
    )
    for cell in seed_cells(cells):
        s = cell.key.series
        values = [_score_for(scores, cell, t) for t in tasks]
        score_entries = [_blank() if v is None else Entry(f"{v:.2f}", v) for v in values] or [_blank()]
        table.add_row(
            [
                _text(s.model),
                _text(model_size(s.model)),
                _text(format_label(s)),
                Entry(str(cell.key.length), float(cell.key.length)),
                _text(s.load.label),
                *score_entries,
                ms(cell.latency.p50 if cell.latency else None),
                rate(cell.throughput_rps),
                energy(cell.gross_j_per_query, cell.energy_source),
            ],
            group=cell.key.length,
            section=(s.model, s.format),
        )
    if not tasks:
        table.notes.append("No accuracy.jsonl in the run directory: run `profiler eval` to fill the score.")
    loads = {e.text for e in table.column("load")}
    if len(loads) == 1:
        drop_columns(table, ["load"])
        table.title = f"Accuracy and cost (seed-study layout; cost at {loads.pop()})"
    return mark_best(table)


def failure_notes(cells: Iterable[Cell]) -> list[str]:
    """One line per cell with failures, with their reasons."""
    lines = []
    for cell in cells:
        if not cell.failures:
            continue
        s = cell.key.series
        reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(cell.failure_reasons.items()))
        lines.append(
            f"{s.model} {s.format} {s.engine_label} {cell.key.length} tokens {s.load.label}: "
            f"{cell.failures} of {cell.requests} failed" + (f" ({reasons})" if reasons else "")
        )
    return lines


def _gpu_line(gpu: GpuInfo) -> str:
    return f"{gpu.name}, {size_bytes(gpu.memory_total_bytes).text}, driver {gpu.driver}"


def environment_table(environment: Environment | None, run_id: str) -> Table:
    """What the run measured on: CPU, GPUs, memory, Python, package versions, git commit."""
    table = Table(
        f"Environment of run {run_id}",
        [Column("", numeric=False, key=True), Column("", numeric=False, wrap=True)],
    )
    if environment is None:
        table.add_row([_text("environment"), _text("not recorded (environment.json missing)")])
        return table
    cpus = environment.cpu_count if environment.cpu_count is not None else "?"
    packages = environment.packages
    lines: list[tuple[str, str]] = [
        ("CPU", f"{environment.cpu} ({cpus} logical CPUs)"),
        (
            "memory",
            size_bytes(environment.memory_bytes).text if environment.memory_bytes is not None else "-",
        ),
        ("GPUs", "; ".join(_gpu_line(g) for g in environment.gpus) or "none"),
        ("platform", environment.platform),
        ("Python", environment.python),
        ("packages", ", ".join(f"{name} {version}" for name, version in sorted(packages.items())) or "-"),
        ("git commit", environment.git_commit or "unknown"),
    ]
    for name, value in lines:
        table.add_row([_text(name), _text(value)])
    return table
