"""The ``profiler`` command line: each command is a thin call into one module."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from profiler import __version__
from profiler.accuracy import TASKS, check_task
from profiler.artifact import FORMATS, MIN_TOKEN_AGREEMENT, Format, Precision, variant
from profiler.attention_layout import GlobalAttention
from profiler.checkpoints import (
    ARCHS,
    DEMO_WORKDIR,
    MAX_INPUT_TOKENS,
    SIZES,
    build_checkpoint,
    check_checkpoint_dir,
    parse_arch,
)
from profiler.decoding_config import parse_overrides
from profiler.demo import DemoMatrix
from profiler.doctor import SAMPLE_SECONDS
from profiler.errors import ProfilerError, file_in_the_way
from profiler.validation import parse_numbers
from profiler.workload import (
    STYLES,
    load_jsonl,
    load_tokenizer,
    sample_set,
    synthesize,
    token_count,
    write_jsonl,
)

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


class PlainHelp:
    """Help that reads as a command line does: arguments in capitals, ``MODEL`` when required and
    ``[CONFIG]`` when not (typer writes ``{model}``), required options in the usage line beside
    them (``--out <path>``), and flags with no ``<bool>`` type, since they take no value."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer vendors click: its types are private
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperArgument) and param.metavar is None:
                param.metavar = (param.name or "").upper()
            elif isinstance(param, TyperOption) and param.is_flag:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]  # type: ignore[misc]
        required = [
            f"{max(param.opts, key=len)} {param.display_type_rich(ctx)}"
            for param in self.get_params(ctx)
            if isinstance(param, TyperOption) and param.required
        ]
        return pieces[:1] + required + pieces[1:]  # after [OPTIONS], before the arguments


class ProfilerCommand(PlainHelp, TyperCommand):
    """Every ``profiler`` command."""


class ProfilerGroup(PlainHelp, TyperGroup):
    """Runs every command: a :class:`ProfilerError`, the user's mistake, becomes one line, exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ProfilerError as exc:
            message = " ".join(str(exc).split())
            errors.print(f"[bold red]error:[/] {escape(message)}")  # e.g. '.[gpu]' is not markup
            raise typer.Exit(2) from exc


class ProfilerTyper(typer.Typer):
    """A typer app whose commands and groups are :class:`ProfilerCommand` and :class:`ProfilerGroup`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=ProfilerGroup, no_args_is_help=True, **kwargs)

    def command(  # the same, with cls fixed
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(*args, cls=ProfilerCommand, **kwargs)


app = ProfilerTyper(
    help=(
        "Measure what a long-context seq2seq checkpoint costs to serve: latency, throughput and "
        "energy per query at each input length.\n\n"
        "Start with `profiler demo` (builds small LED and BigBird-Pegasus checkpoints and "
        "times them), or build a checkpoint of your own with `profiler checkpoints build`."
    ),
    # Markdown: `code` and **bold** render; text in angle brackets would be taken for HTML and
    # dropped, so every <placeholder> in help is written inside backticks.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
checkpoints_app = ProfilerTyper(
    help=(
        "Demo checkpoints built locally: real Hugging Face directories with random, seeded "
        "weights and a tokenizer trained on generated text, or the small ones trained on the "
        "synthetic codes task (`train`). No download needed."
    ),
)
workload_app = ProfilerTyper(
    help=(
        "SCROLLS-format workloads (JSONL rows with id, pid, input, output): check a real file, "
        "synthesize documents of an exact token length, or write the shipped sample."
    ),
)
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(workload_app, name="workload")


class UsageError(ProfilerError):
    """A command-line input that cannot work, e.g. neither a target nor a predictions file."""


def check_output_file(path: Path, option: str) -> None:
    """Refuse a file path that cannot be written (a directory, or under a file)."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file path.")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a directory; choose another path.")


def check_output_dir(path: Path, option: str) -> None:
    """Refuse a directory path that is a file or lies under one."""
    if path.is_file():
        raise UsageError(f"{option} {path} is a file; give a directory (new or existing).")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, not a directory; choose another path.")


def parse_choices(text: str, choices: tuple[str, ...], option: str) -> tuple[str, ...]:
    """A comma-separated list of distinct names, each one of ``choices``, in the order given."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in choices]
    if not names or unknown:
        got = ", ".join(unknown) if unknown else "nothing"
        raise UsageError(f"{option} {text!r}: got {got}; choose from {', '.join(choices)}, comma-separated.")
    return names


def _version(value: bool) -> None:
    if value:
        console.print(f"profiler {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Entry point; the subcommands do the work."""


#: `export` and `serve` share it: the same parameters are refused, or allowed and recorded, by both.
Decoding = Annotated[
    list[str] | None,
    typer.Option(
        "--decoding",
        metavar="NAME=VALUE",
        help="Override one of the checkpoint's generation settings (generation_config.json) for this "
        "run, e.g. --decoding num_beams=1 --decoding no_repeat_ngram_size=0; repeatable.",
    ),
]

AllowNewWeights = Annotated[
    bool,
    typer.Option(
        "--allow-new-weights",
        help="Go on when some parameters do not come from the checkpoint's weights file (they would "
        "be random or unused); they are named in the manifest and /v1/info and in every result.",
    ),
]


@checkpoints_app.command("build")
def checkpoints_build(
    # Plain strings, checked by build_checkpoint: a wrong value is then one line, like every user error.
    arch: Annotated[str, typer.Option(metavar=f"<{'|'.join(ARCHS)}>", help="Model architecture.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write (new or empty).")],
    size: Annotated[
        str,
        typer.Option(
            metavar=f"<{'|'.join(SIZES)}>",
            help="tiny: about 0.3M parameters, builds in well under a second, for tests. "
            "small: about 3M parameters, for the demo and benchmarks. "
            "base, large: the published models' shapes (LED 162M and 460M parameters, "
            "BigBird-Pegasus large only, 577M) with random weights, to measure what they cost.",
        ),
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seeds weights and tokenizer text.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files in a non-empty directory.")
    ] = False,
) -> None:
    """Write a Hugging Face checkpoint: config, safetensors weights, generation config, tokenizer.

    Both architectures accept up to 4096 input tokens (LED through sliding-window attention,
    BigBird-Pegasus through block-sparse attention; LED base and large, as published, up to
    16384). The same arguments always write byte-identical files. Load it with
    AutoModelForSeq2SeqLM.from_pretrained(DIR).
    """
    built = build_checkpoint(arch, size, out, seed=seed, overwrite=overwrite)
    learned = f" (the tokenizer learned {built.tokens:,})" if built.tokens < built.vocab_size else ""
    console.print(
        f"{built.arch} {built.size}: {built.parameters:,} parameters, vocabulary {built.vocab_size:,}"
        f"{learned}, built in {built.seconds:.2f} s\n{built.path.resolve()}"
    )


@checkpoints_app.command("train")
def checkpoints_train(
    arch: Annotated[str, typer.Option(metavar=f"<{'|'.join(ARCHS)}>", help="Model architecture.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write (new or empty).")],
    steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (default: the whole recipe).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the starting weights and the training data.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files in a non-empty directory.")
    ] = False,
    ship: Annotated[
        bool,
        typer.Option(
            "--ship",
            help="Also replace the package's shipped weights and their record (for maintainers).",
        ),
    ] = False,
) -> None:
    """Train the small checkpoint on the synthetic codes task, as the shipped weights were trained.

    One torch thread, fixed seeds and a fixed data order: the same torch build on the same kind of
    CPU writes the same weights whatever its core count, and the command says whether they are
    the shipped ones. The
    checkpoint holds the weights rounded to fp16, as shipped, in fp32, as served.
    """
    from profiler.training import (
        Recipe,
        compare_with_shipped,
        save_trained,
        train,
        weights_sha256,
        write_checkpoint,
    )

    valid = parse_arch(arch)
    check_checkpoint_dir(out, overwrite)
    recipe = Recipe(arch=valid, seed=seed)
    total = recipe.steps if steps is None else steps
    if ship and total != recipe.steps:
        raise UsageError(f"--ship with --steps {total}: ship only the whole recipe; leave --steps out.")
    console.print(f"training {valid} small on synthetic codes: {total} steps, seed {seed}")
    trained = train(recipe, total, progress=console.print)
    write_checkpoint(recipe, trained.state, out, "the trained weights")
    digest = weights_sha256(trained.state)
    verdict = compare_with_shipped(recipe, total, digest)
    console.print(
        f"trained in {trained.seconds:.0f} s, weights sha256 {digest[:16]}: {verdict}\n{out.resolve()}"
    )
    if ship:
        console.print(f"shipped: {save_trained(trained)}")


@workload_app.command("check")
def workload_check(
    path: Annotated[Path, typer.Argument(help="A SCROLLS JSONL file.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Checkpoint or artifact directory: also report token lengths under its tokenizer."),
    ] = None,
) -> None:
    """Validate a SCROLLS JSONL file and summarise it; a bad line is named with its number."""
    records = load_jsonl(path)
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    examples = len({record.id for record in records})
    console.print(f"{path}: {len(records)} rows, {examples} examples, all fields valid.")
    if tok is not None:
        lengths = sorted(token_count(tok, record.input) for record in records)
        over = sum(length > MAX_INPUT_TOKENS for length in lengths)
        console.print(
            f"input tokens: min {lengths[0]}, median {statistics.median(lengths):.0f}, "
            f"max {lengths[-1]}; {over} over {MAX_INPUT_TOKENS}."
        )


@workload_app.command("synth")
def workload_synth(
    tokenizer: Annotated[
        Path, typer.Option(help="Checkpoint or artifact directory whose tokenizer sets the lengths.")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="JSONL file to write.")],
    lengths: Annotated[
        str, typer.Option(help="Comma-separated input lengths in tokens, special tokens included.")
    ] = "1024,2048,3072,4096",
    count: Annotated[int, typer.Option(min=1, help="Records per length and style.")] = 1,
    style: Annotated[Literal["summarization", "qa", "both"], typer.Option(help="Record style.")] = "both",
    seed: Annotated[int, typer.Option(help="Same seed, same records.")] = 0,
) -> None:
    """Synthesize SCROLLS-format records whose input is exactly N tokens under a tokenizer.

    Summarization records hold a document alone; QA records hold a question, a blank line, then
    the document, and a short answer planted in it. Text is generated by this project.
    """
    chosen = list(STYLES) if style == "both" else [style]
    sizes = parse_numbers(lengths, int, positive=True, option="--lengths")
    records = synthesize(load_tokenizer(tokenizer), sizes, count, chosen, seed)
    write_jsonl(records, out)
    console.print(f"wrote {len(records)} records to {out}")


@workload_app.command("sample")
def workload_sample(
    out: Annotated[Path, typer.Option("-o", "--out", help="JSONL file to write.")],
) -> None:
    """Write the sample set shipped with the package (8 long records, 4 per style)."""
    records = sample_set()
    write_jsonl(records, out)
    console.print(f"wrote {len(records)} records to {out}")


@app.command("export")
def export_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="Hugging Face checkpoint directory (LED or BigBird-Pegasus).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Artifact directory to write (new or empty).")],
    format_: Annotated[Format, typer.Option("--format", help="Graph format.")] = "onnx",
    lengths: Annotated[
        str,
        typer.Option(
            help="Comma-separated bucket lengths in tokens, each checked for parity; the largest is the "
            "longest input served."
        ),
    ] = "1024,2048,3072,4096",
    batch_sizes: Annotated[
        str,
        typer.Option(
            help="Comma-separated batch sizes to verify; graphs are traced at the largest. "
            "Include every batch size you will serve with."
        ),
    ] = "1",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing non-empty artifact directory.")
    ] = False,
    skip_parity: Annotated[
        bool,
        typer.Option(
            "--skip-parity", help="Do not compare against eager PyTorch (recorded in the manifest)."
        ),
    ] = False,
    allow_new_weights: AllowNewWeights = False,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="fp32 as trained; fp16 or bf16 (CUDA only; bf16 TorchScript only); int8: the linear "
            "layers' weights quantized dynamically (CPU).",
        ),
    ] = "fp32",
    min_token_agreement: Annotated[
        float | None,
        typer.Option(
            "--min-token-agreement",
            help=f"Reduced precision: the least fraction of greedy tokens identical to fp32 PyTorch's "
            f"in every parity case [default: {MIN_TOKEN_AGREEMENT:g}].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a checkpoint to ONNX or TorchScript graphs that serve it, verified against PyTorch.

    **One graph per stage, every length.** The encoder graph takes any input length: each input is
    padded only as transformers pads it (LED to its window, BigBird-Pegasus to its block), and what
    depends on its length (BigBird's block pattern, LED's global tokens) is computed on the host
    and fed in, so every input gets what transformers' generate gives it alone. Buckets (lengths
    within the position table) are the length classes requests are batched and reported by; the
    largest is the longest input served. The decoder is two graphs (first step, then steps with
    past key/values).

    **Parity.** Before anything is written, every bucket, lengths just short of and between them,
    and batches of every batch size that mix lengths (and LED's global attention) are compared with
    transformers, row by row on each input alone: encoder outputs within 1e-3 x max(1, output
    scale) max abs diff (fp32; also reported relative), and 32 greedy tokens identical. A failure
    prints which lengths and by how much and writes nothing. Reduced precision (fp16, bf16, int8)
    is judged by the fraction of greedy tokens identical to fp32 PyTorch's (--min-token-agreement);
    its encoder difference is recorded.

    The artifact directory holds manifest.json, the tokenizer files and the graphs.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from exporters.export import export
    from exporters.parity import parity_table
    from exporters.progress import ExportStep

    columns = (TextColumn("export"), BarColumn(), TextColumn("{task.fields[what]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as shown:
        task = shown.add_task("export", total=None, what="loading the checkpoint")

        def step(now: ExportStep) -> None:
            what = f"{now.done}/{now.total} steps; now {now.what}"
            shown.update(task, total=now.total, completed=now.done, what=what)

        manifest = export(
            checkpoint,
            format_,
            out,
            lengths=parse_numbers(lengths, int, positive=True, option="--lengths"),
            batch_sizes=parse_numbers(batch_sizes, int, positive=True, option="--batch-sizes"),
            overwrite=overwrite,
            skip_parity=skip_parity,
            log=console.print,
            allow_new_weights=allow_new_weights,
            progress=step,
            precision=precision,
            min_token_agreement=min_token_agreement,
        )
    if manifest.parity_skipped:
        console.print("[yellow]parity skipped[/]: this artifact is unverified (recorded in its manifest).")
    else:
        console.print(parity_table(manifest.parity, manifest.parity_tolerance, manifest.min_token_agreement))
    size_mb = sum(manifest.file_sizes.values()) / 1e6
    buckets = ", ".join(map(str, manifest.buckets))
    console.print(
        f"exported {manifest.model_type} to {variant(manifest.format, manifest.precision)}: "
        f"buckets {buckets}; "
        f"{len(manifest.file_sizes)} files, {size_mb:.1f} MB, in {manifest.export_seconds:.1f} s"
    )
    console.print(str(out.resolve()))


@app.command()
def serve(
    model: Annotated[
        Path, typer.Argument(help="Artifact directory (profiler export) or raw checkpoint (eager).")
    ],
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    device: Annotated[Literal["cpu", "cuda"], typer.Option(help="Where the model runs.")] = "cpu",
    max_batch_size: Annotated[int, typer.Option(help="Largest dynamic batch.")] = 8,
    max_wait_ms: Annotated[float, typer.Option(help="How long a request waits for batch-mates.")] = 5.0,
    max_queue: Annotated[int, typer.Option(help="Requests that may wait; beyond it, 503.")] = 256,
    truncate: Annotated[
        bool, typer.Option("--truncate", help="Cut inputs over the largest bucket instead of 413.")
    ] = False,
    threads: Annotated[int, typer.Option(min=0, help="Compute threads (0: the runtime's default).")] = 0,
    allow_new_weights: AllowNewWeights = False,
    decoding: Decoding = None,
    global_attention: Annotated[
        GlobalAttention | None,
        typer.Option(
            help="LED: the tokens that attend globally when a request does not say: first (the first "
            "token, as SCROLLS' LED baseline), query (the tokens before the first blank line of the "
            "text), none. Default: first for LED; models without global attention take only none."
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="Print one line per HTTP request: client, method, path, status and latency "
            "(arrival to last byte sent). Off by default: under overload it costs the event loop.",
        ),
    ] = False,
) -> None:
    """Serve a model over HTTP for profiling: POST /v1/generate, /healthz, /readyz, /v1/info, /metrics.

    Requests are batched per bucket (the smallest that holds them; an input over the largest gets
    413 unless --truncate) up to --max-batch-size within --max-wait-ms, and each batch is padded
    only to what its longest input needs. Every bucket is warmed up before /readyz answers 200.

    It prints one line when it is ready to take requests (URL, model, format, engine, device,
    buckets), one when Ctrl-C or SIGTERM stops it (it stops accepting and finishes what is in
    flight) and one when it has stopped (requests answered by status), then exits 0. A port in
    use or a host that is not this machine's is refused before the model loads. The OpenAPI
    schema is at /docs (served offline) and /openapi.json.
    """
    from profiler.engines.engine import load_engine
    from profiler.server.announce import server_url
    from profiler.server.app import create_app
    from profiler.server.launch import bind_listener, start_listening
    from profiler.server.run import exit_at_once, run_server
    from profiler.server.settings import ServeSettings
    from profiler.validation import flag, validated
    from profiler.workload import load_tokenizer

    batching = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_queue": max_queue}
    chosen = {"truncate": truncate, "global_attention": global_attention}
    settings = validated(ServeSettings, {**batching, **chosen}, flag)  # before the model loads
    listener = bind_listener(host, port)  # a busy port or a bad host: one line, before anything loads
    if threads:
        import torch

        torch.set_num_threads(threads)
    tokenizer = load_tokenizer(model)
    engine = load_engine(
        model,
        device=device,
        threads=threads,
        allow_new_weights=allow_new_weights,
        decoding_overrides=parse_overrides(decoding or []),
    )
    app = create_app(engine, tokenizer, settings)
    start_listening(listener, host)
    url = server_url(host, listener.getsockname()[1])
    if not run_server(app, listener, url, access_log):
        errors.print(f"[bold red]error:[/] the HTTP server could not start on {url}; its log says why.")
        raise typer.Exit(1)
    exit_at_once(0)


@app.command()
def doctor(
    seconds: Annotated[
        float, typer.Option(min=0.1, max=60.0, help="How long to watch the machine's CPUs.")
    ] = SAMPLE_SECONDS,
) -> None:
    """Check this machine before measuring: the energy source and why, ONNX Runtime's providers,
    torch's and ONNX Runtime's threads, OpenMP/MKL variables, the CPUs, and whether other work is
    using the machine.

    Exits 0 when the machine is quiet, 1 when others use more of its CPUs than a measurement
    window tolerates (docs/serving.md, "Contention").
    """
    from profiler.doctor import diagnose

    quiet, lines = diagnose(seconds)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if not quiet:
        raise typer.Exit(1)


@app.command()
def sweep(
    config: Annotated[
        Path | None,
        typer.Argument(help="Sweep config (TOML); see docs/sweeps.md. With --init: where to write one."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="A run directory to finish: cells already recorded are skipped.")
    ] = None,
    init: Annotated[
        bool,
        typer.Option(
            "--init",
            help="Write a commented example config to CONFIG (default: sweep.toml) and exit; its model "
            "is the demo's LED (`profiler demo` builds it).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the matrix, the number of cells and capacity searches, and an estimated time "
            "range; start nothing and write nothing.",
        ),
    ] = False,
) -> None:
    """Run the matrix: models x formats x input lengths x load levels x repeats.

    For each model and format: export if needed (or reuse the export in `reports/.artifacts/` made
    from the same checkpoint bytes), start `profiler serve`, wait for /readyz, measure the idle
    baseline, run locust headless at each load level (one stage per input length), record one
    result per cell in `reports/<run-id>/results.jsonl`, stop the server. Killed at any moment,
    `profiler sweep --resume reports/<run-id>` finishes it without losing recorded cells. Ctrl-C
    stops cleanly and keeps what was measured.
    """
    import shlex

    from profiler.sweep.config import load_config
    from profiler.sweep.runner import Sweep, free_run_dir, new_run_dir, resume_config

    if init:
        if resume is not None or dry_run:
            raise UsageError("--init writes a config and exits; give it alone, with the path to write.")
        _write_example(config or Path("sweep.toml"))
        return
    if (config is None) == (resume is None):
        errors.print("[bold red]error:[/] give a config file, or --resume with a run directory (not both).")
        raise typer.Exit(2)
    if resume is not None:
        settings, run_dir = resume_config(resume), resume
    elif config is not None:
        settings = load_config(config)
        run_dir = free_run_dir(settings) if dry_run else new_run_dir(settings, config)
    runner = Sweep(settings, run_dir, console)
    if dry_run:
        from profiler.sweep.dryrun import describe

        for line in describe(settings, runner.pending(), str(run_dir)):
            console.print(line, markup=False, highlight=False)
        return
    console.print(f"run directory: {run_dir}")
    try:
        recorded = runner.run()
    except KeyboardInterrupt:
        runner.interrupt()
        console.print(
            f"stopped; what was recorded is in {run_dir}. Resume: profiler sweep --resume {run_dir}"
        )
        raise typer.Exit(130) from None
    console.print(f"{recorded} cell(s) recorded in {run_dir / 'results.jsonl'}")
    console.print(f"next: profiler report {shlex.quote(str(run_dir))}", markup=False, highlight=False)


def _write_example(path: Path) -> None:
    """``profiler sweep --init``: the example config at ``path``, never over an existing file."""
    from profiler.demo import model_name
    from profiler.sweep.config import example_config

    check_output_file(path, "CONFIG")
    if path.exists():
        raise UsageError(f"{path} already exists; give --init another path, or remove it first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config(path, DEMO_WORKDIR / model_name("led"), Path("reports")), encoding="utf-8")
    console.print(
        f"wrote {path}: edit it, preview it with `profiler sweep --dry-run {path}`, run it with "
        f"`profiler sweep {path}`",
        markup=False,
        highlight=False,
    )


@app.command()
def report(
    source: Annotated[
        Path,
        typer.Argument(
            help="A run directory (`reports/<run-id>`) written by a sweep, or a results file written by "
            "`locust -f loadtests/scrolls.py`.",
            show_default=False,
        ),
    ],
    compare: Annotated[
        Path | None,
        typer.Option(
            help="The baseline: another run directory or results file to compare this (new) run with, "
            "cell by cell (ratios new / baseline, its config diff first)."
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the report as one JSON document on stdout (schema: docs/report.md); write nothing.",
        ),
    ] = False,
) -> None:
    """Report a run: tables per model, format and input length, scaling slopes, plots, CSV, HTML.

    Prints p50/p90/p99 latency, throughput, gross and net J/query with the energy source (an
    estimate always says so), average power, memory and failures, the best cell per column
    highlighted; the log-log slope of latency and J/query against input length per series; the
    seed study's table with accuracy where `profiler eval` recorded it. Writes report.md,
    report.html (self-contained: open or share it as it is), summary.csv and PNG plots into the
    run directory (for a results file, into `<file>-report/` beside it); with --compare, compare.md
    and compare.csv.
    """
    if json_output:
        from profiler.report.render import report_document

        typer.echo(report_document(source, compare).model_dump_json(indent=2))
        return
    from profiler.report import render_report

    render_report(source, compare, console)


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Option(help="SCROLLS JSONL with references (a validation split).")],
    target: Annotated[
        str | None, typer.Argument(help="A server URL (http://...) or an artifact/checkpoint directory.")
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            metavar="<task>",
            help=f"Which task's metric to score with: {', '.join(TASKS)} (the last: the demo's "
            "synthetic task).",
        ),
    ] = "gov_report",
    input_length: Annotated[int, typer.Option(min=2, help="Inputs are cut to this many tokens.")] = 1024,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Greedy tokens per answer.")] = 64,
    batch_size: Annotated[
        int, typer.Option(min=1, help="In-process batch size; for a server URL, requests sent at once.")
    ] = 4,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer for a remote target.")] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Score this JSON file (an object of example id to predicted text) instead of running "
            "a model."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the predictions here (JSON).")] = None,
    run: Annotated[
        Path | None, typer.Option(help="A sweep run directory: add the score to its report.")
    ] = None,
    decoding: Decoding = None,
    global_attention: Annotated[
        GlobalAttention | None,
        typer.Option(
            help="LED: tokens that attend globally (first, query: before the first blank line, none). "
            "Default: first in-process, the server's for a URL; query needs a model directory."
        ),
    ] = None,
) -> None:
    """Score a model on SCROLLS exactly as the official scorer does.

    Each example is sent once (rows sharing an id are its references), cut to --input-length
    tokens as the server truncates; summarization tasks get ROUGE-1/2/L and their geometric mean,
    Qasper and NarrativeQA token F1, QuALITY and ContractNLI exact match. With --predictions, a
    predictions file is checked (missing or extra ids, non-string values) and scored on its own.
    """
    from profiler.accuracy import load_predictions
    from profiler.evaluate import local_target, predict, record_accuracy, remote_target, score

    check_task(task)  # before the model runs, not after
    if out is not None:  # checked before the model runs, not after
        check_output_file(out, "--out")
    records = load_jsonl(dataset)
    if predictions is not None:
        result = score(task, load_predictions(predictions), records)
    elif target is None:
        raise UsageError("give a TARGET (server URL or model directory) or --predictions FILE.")
    else:
        evaluated = (
            remote_target(target, max_new_tokens, tokenizer, global_attention, bool(decoding), batch_size)
            if target.startswith(("http://", "https://"))
            else local_target(
                Path(target), max_new_tokens, batch_size, global_attention, parse_overrides(decoding or [])
            )
        )
        with console.status(f"running {len({r.id for r in records})} examples through {target}"):
            predicted = predict(evaluated, records, input_length)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(predicted, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        result = score(task, predicted, records)
        if run is not None:
            console.print(f"recorded in {record_accuracy(run, evaluated, input_length, result)}")
    table = Table(title=f"SCROLLS {task}: {result.count} examples")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4f}")
    table.add_row("[bold]score[/]", f"[bold]{result.score:.4f}[/]")
    console.print(table)


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo checkpoints and config are written.")
    ] = DEMO_WORKDIR,
    output_dir: Annotated[Path, typer.Option(help="Where the run directory lands.")] = Path("reports"),
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A small matrix: LED only, 1024 and 4096 tokens, 1 user, stages of at most 15 s, no "
            "capacity search (minutes, not tens of minutes); --models, --formats and --lengths still apply.",
        ),
    ] = False,
    models: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated architectures to build and sweep: {', '.join(ARCHS)}."),
    ] = None,
    formats: Annotated[
        str | None, typer.Option(help=f"Comma-separated formats to serve: {', '.join(('eager', *FORMATS))}.")
    ] = None,
    lengths: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated input lengths in tokens. Default: 1024,2048,3072,4096 (quick: 1024,4096)."
        ),
    ] = None,
    stage_seconds: Annotated[
        float, typer.Option(min=1, help="Load per input length and level, at least.")
    ] = DemoMatrix.stage_seconds,
) -> None:
    """Run the whole pipeline on the embedded demo checkpoints: build, export, serve, load, measure.

    Writes the small LED and BigBird-Pegasus checkpoints, trained on the synthetic codes task
    (weights shipped in the package), and that task's eval.jsonl; exports each to ONNX (verified
    against PyTorch at every bucket), and sweeps eager and ONNX at each input length and two
    concurrency levels with locust against a live server, measuring energy in the server, scores
    each on the task, and searches LED's ONNX capacity under a latency SLO (--formats
    eager,onnx,torchscript adds TorchScript). Exports are kept in `reports/.artifacts/` and reused
    by later runs. Results land in `reports/demo-<time>/`; a summary is printed at the end.
    """
    from dataclasses import replace
    from datetime import UTC, datetime

    from profiler.demo import QUICK, write_demo_config
    from profiler.report import render_report
    from profiler.sweep.config import SWEEP_FORMATS, load_config
    from profiler.sweep.runner import Sweep, new_run_dir

    run_id = "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    check_output_dir(workdir, "--workdir")
    check_output_dir(output_dir, "--output-dir")
    matrix = QUICK if quick else DemoMatrix()
    if models is not None:
        matrix = replace(matrix, archs=parse_choices(models, ARCHS, "--models"))
    if formats is not None:
        matrix = replace(matrix, formats=parse_choices(formats, SWEEP_FORMATS, "--formats"))
    if lengths is not None:
        matrix = replace(matrix, lengths=parse_numbers(lengths, int, positive=True, option="--lengths"))
    matrix = replace(matrix, stage_seconds=stage_seconds)
    config_path = write_demo_config(workdir, output_dir, run_id, matrix, console)
    settings = load_config(config_path)
    run_dir = new_run_dir(settings, config_path)
    Sweep(settings, run_dir, console).run()
    render_report(run_dir, None, console)
    console.print(
        f"Raw results: {run_dir}/results.jsonl; report: {run_dir}/report.md and plots. Accuracy beside "
        f"efficiency: profiler eval <artifact> --dataset <SCROLLS.jsonl> --task <task> --run {run_dir}"
    )
