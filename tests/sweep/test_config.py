from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest
from rich.console import Console

from profiler.errors import ConfigError
from profiler.sweep.config import load_config, parse_config
from profiler.sweep.runner import Run, Sweep, new_run_dir, resume_config

if TYPE_CHECKING:
    from profiler.server.launch import ServerProcess


_LOAD = {"input_lengths": [1024, 2048], "concurrency": [1, 4], "stage_seconds": 2}


def _config(checkpoint: Path, **overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "run_id": "r1",
        "output_dir": "reports",
        "models": [{"name": "led", "checkpoint": str(checkpoint), "formats": ["eager", "onnx"]}],
        "load": dict(_LOAD),
    }
    raw.update(overrides)
    return raw


def test_a_valid_config(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    config = parse_config(_config(tiny_checkpoints["led"]), tmp_path)
    assert config.models[0].formats == ("eager", "onnx")
    assert config.load.levels() == [("closed", 1.0), ("closed", 4.0)]
    assert config.output_dir == (tmp_path / "reports").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"colour": "red"},
            "config: unknown key(s) colour; allowed: accuracy, capacity, load, locust, models, output_dir, "
            "run_id, server",
        ),
        ({"models": []}, "models = []: expected at least 1 item(s)."),
        ({"load": {"concurrency": [1]}}, "load.input_lengths: missing"),
        (
            {"load": {"input_lengths": [1024], "concurrency": [0]}},
            "load.concurrency[0] = 0: expected a value >= 1.",
        ),
        ({"load": {"input_lengths": [1024]}}, "give load.concurrency"),
        (
            {"load": {"input_lengths": [1024], "concurrency": [1], "mode": "encode", "stream": True}},
            "stream applies to generate mode only",
        ),
        (
            {"load": {"input_lengths": [1024], "concurrency": [1], "mode": "train"}},
            """load.mode = "train": expected one of 'generate', 'forward' or 'encode'.""",
        ),
        ({"load": {"input_lengths": ["long"], "concurrency": [1]}}, "load.input_lengths"),
        ({"load": {"input_lengths": [1024], "rates": [-1.0]}}, "load.rates"),
        ({"locust": {"processes": 2, "expect_workers": 2}}, "not both"),
        ({"server": {"max_batch": 4}}, "server: unknown key(s) max_batch"),
        ({"run_id": "a/b"}, "run_id"),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(
    change: dict[str, object], message: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(_config(tiny_checkpoints["led"], **change), tmp_path)
    assert message in str(info.value)


def test_bad_model_entries(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    with pytest.raises(
        ConfigError, match=r"""models\[0\].formats\[0\] = "tflite": expected one of 'eager', 'onnx'"""
    ):
        parse_config(
            _config(
                tiny_checkpoints["led"],
                models=[{"name": "m", "checkpoint": str(tiny_checkpoints["led"]), "formats": ["tflite"]}],
            ),
            tmp_path,
        )
    with pytest.raises(ConfigError, match="not a checkpoint or artifact directory"):
        parse_config(
            _config(tmp_path, models=[{"name": "m", "checkpoint": str(tmp_path / "nope")}]), tmp_path
        )


def test_config_files_and_run_directories(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("run_id = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'run_id = "r1"\n[[models]]\nname = "led"\ncheckpoint = "{tiny_checkpoints["led"]}"\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\n"
    )
    config = load_config(path)
    run_dir = new_run_dir(config, path)
    assert (run_dir / "config.toml").read_text() == path.read_text()
    with pytest.raises(ConfigError, match="already holds a run; resume it with --resume"):
        new_run_dir(config, path)
    resumed = resume_config(run_dir)
    assert (resumed.run_id, resumed.output_dir, resumed.models) == ("r1", run_dir.parent, config.models)


@pytest.mark.parametrize(
    ("load", "line"),
    [
        ({"max_new_tokens": "lots"}, 'load.max_new_tokens = "lots": expected an integer.'),
        ({"max_new_tokens": True}, "load.max_new_tokens = true: expected an integer."),
        ({"repeats": 2.0}, "load.repeats = 2.0: expected an integer."),
        ({"stage_seconds": "10"}, 'load.stage_seconds = "10": expected a number.'),
        ({"idle_seconds": 601}, "load.idle_seconds = 601: expected a value <= 600."),
        ({"input_lengths": [1]}, "load.input_lengths[0] = 1: expected a value >= 2."),
        (
            {"input_lengths": [1024, 1024]},
            "load.input_lengths = [1024, 1024]: a length appears twice; each stage needs its own.",
        ),
        (
            {"colour": 1},
            "load: unknown key(s) colour; allowed: concurrency, idle_seconds, input_lengths, "
            "max_new_tokens, max_stage_seconds, min_requests, mode, rates, repeats, stability, "
            "stage_seconds, stream, target_length, warmup_seconds, window_requests.",
        ),
    ],
)
def test_load_values_are_strict(
    load: dict[str, object], line: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """``true`` is not 1 and "lots" is not a number: one line naming the key, never a traceback."""
    table = {"input_lengths": [1024], "concurrency": [1], **load}
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tiny_checkpoints["led"], load=table), tmp_path)
    assert str(info.value) == line


def test_each_problem_is_one_line(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    table = {"input_lengths": [1024], "concurrency": [1], "max_new_tokens": "lots", "repeats": 0}
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tiny_checkpoints["led"], load=table), tmp_path)
    assert str(info.value).splitlines() == [
        'load.max_new_tokens = "lots": expected an integer.',
        "load.repeats = 0: expected a value >= 1.",
    ]


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"server": {"max_batch_size": 0}}, "server.max_batch_size = 0: expected a value >= 1."),
        ({"server": {"max_wait_ms": -1}}, "server.max_wait_ms = -1: expected a value >= 0."),
        ({"server": {"port": "8000"}}, 'server.port = "8000": expected an integer.'),
        ({"server": {"port": 70000}}, "server.port = 70000: expected a value <= 65535."),
        ({"locust": {"processes": True}}, "locust.processes = true: expected an integer."),
        ({"locust": {"target_host": 5}}, "locust.target_host = 5: expected a string."),
        ({"run_id": 7}, "run_id = 7: expected a string."),
        ({"output_dir": ["reports"]}, 'output_dir = ["reports"]: expected a path (a string).'),
        ({"load": 5}, "load = 5: expected a table."),
    ],
)
def test_every_table_is_strict(
    change: dict[str, object], line: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tiny_checkpoints["led"], **change), tmp_path)
    assert str(info.value) == line


def test_decode_lengths_over_a_models_limit_are_refused(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """The server caps decoding at the decoder's positions less the start token: LED 1024 -> 1023."""
    models = [
        {"name": "led-small", "checkpoint": str(tiny_checkpoints["led"])},
        {"name": "bigbird", "checkpoint": str(tiny_checkpoints["bigbird-pegasus"])},
    ]

    def load(chosen: list[dict[str, str]] = models, **values: object) -> dict[str, object]:
        table = {"input_lengths": [1024], "concurrency": [1], **values}
        return _config(tmp_path, models=chosen, load=table)

    assert parse_config(load(max_new_tokens=1023, target_length=1023), tmp_path).load.max_new_tokens == 1023
    with pytest.raises(ConfigError) as info:
        parse_config(load(max_new_tokens=5000), tmp_path)
    assert str(info.value) == (
        "load.max_new_tokens = 5000: models[0] (led-small) decodes at most 1023 tokens; lower it."
    )
    with pytest.raises(ConfigError, match=r"^load.target_length = 5000: models\[0\] \(led-small\)"):
        parse_config(load(mode="forward", target_length=5000), tmp_path)
    with pytest.raises(ConfigError, match=r"models\[0\] \(bigbird\) decodes at most 4095 tokens"):
        parse_config(load(models[1:], max_new_tokens=4096), tmp_path)


def test_the_documented_and_demo_configs_parse(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    """docs/sweeps.md's config (every key it documents) and the demo's both load unchanged."""
    docs = (Path(__file__).parents[2] / "docs" / "sweeps.md").read_text(encoding="utf-8")
    documented = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "sweep.toml"
    path.write_text(documented.replace("build/demo/led-small", str(tiny_checkpoints["led"])))
    config = load_config(path)
    assert config.run_id == "led-vs-bigbird"
    assert config.output_dir == (tmp_path / "reports").resolve()
    assert config.models[0].formats == ("eager", "onnx", "torchscript")
    assert config.load.levels() == [("closed", 1.0), ("closed", 4.0), ("poisson", 2.0), ("poisson", 5.0)]
    assert (config.load.target_length, config.load.idle_seconds, config.load.stage_seconds) == (64, 3.0, 10.0)
    assert (config.server.max_batch_size, config.server.max_wait_ms, config.locust.processes) == (8, 5.0, 2)

    from profiler.demo import DemoMatrix, demo_config_text

    matrix = DemoMatrix(archs=("led",), lengths=(1024, 2048), stage_seconds=2)
    (tmp_path / "eval.jsonl").write_text("")
    path.write_text(demo_config_text(matrix, {"led": tiny_checkpoints["led"]}, tmp_path, tmp_path, "demo"))
    demo = load_config(path)
    assert (demo.server.max_batch_size, demo.load.input_lengths) == (4, (1024, 2048))
    assert demo.capacity is not None
    assert demo.capacity.covers("led-small", "onnx")
    assert (demo.load.min_requests, demo.capacity_lengths()) == (20, (1024, 2048))
    assert (demo.load.stage_seconds, demo.load.max_stage_seconds) == (2, 40)


def test_the_sweep_passes_the_tables_on(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the [server] keys given become `profiler serve` options; [locust] becomes locust's."""
    server = {"max_batch_size": 2, "host": "0.0.0.0", "port": 8123}
    locust = {"processes": 2, "master_bind_port": 6000, "target_host": "http://far:1"}
    config = parse_config(_config(tiny_checkpoints["led"], server=server, locust=locust), tmp_path)
    sweep = Sweep(config, tmp_path, Console())
    started: dict[str, object] = {}
    monkeypatch.setattr(
        "profiler.sweep.runner.start_server",
        lambda artifact, *args, **kwargs: started.update(args=args, **kwargs),
    )
    sweep._start(tmp_path, config.models[0], "eager")
    assert (started["args"], started["host"], started["port"]) == (("--max-batch-size=2",), "0.0.0.0", 8123)
    run = Run(config.models[0], "onnx", "closed", 4.0, 1)
    live = cast("ServerProcess", SimpleNamespace(url="http://127.0.0.1:9"))  # only its url is read
    command = sweep._locust_command(live, tmp_path, run, tmp_path / "r.json")
    text = " ".join(command)
    assert "--host http://far:1 -u 4" in text
    assert "--max-new-tokens 32 --target-length 64" in text
    assert "--processes 2 --master-bind-host 127.0.0.1 --master-bind-port 6000 --master-port 6000" in text
    assert "--stream" not in command
    streamed = parse_config(_config(tiny_checkpoints["led"], load={**_LOAD, "stream": True}), tmp_path)
    assert "--stream" in Sweep(streamed, tmp_path, Console())._locust_command(live, tmp_path, run, tmp_path)


def test_a_model_allowed_new_weights_is_served_so(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`allow_new_weights` reaches `profiler serve` (an export gets it as an argument of export())."""
    model = {"name": "led", "checkpoint": str(tiny_checkpoints["led"]), "allow_new_weights": True}
    config = parse_config(_config(tiny_checkpoints["led"], models=[model]), tmp_path)
    assert config.models[0].allow_new_weights is True
    started: dict[str, object] = {}
    monkeypatch.setattr(
        "profiler.sweep.runner.start_server",
        lambda artifact, *args, **kwargs: started.update(args=args, **kwargs),
    )
    Sweep(config, tmp_path, Console())._start(tmp_path, config.models[0], "eager")
    assert started["args"] == ("--allow-new-weights",)
    with pytest.raises(ConfigError, match="allow_new_weights"):
        parse_config(_config(tiny_checkpoints["led"], models=[{**model, "allow_new_weights": 1}]), tmp_path)


def test_a_models_global_attention_is_served_so(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`global_attention` reaches `profiler serve`; a misspelt one is one line naming the key."""
    model = {"name": "led", "checkpoint": str(tiny_checkpoints["led"]), "global_attention": "query"}
    config = parse_config(_config(tiny_checkpoints["led"], models=[model]), tmp_path)
    started: dict[str, object] = {}
    monkeypatch.setattr(
        "profiler.sweep.runner.start_server",
        lambda artifact, *args, **kwargs: started.update(args=args, **kwargs),
    )
    Sweep(config, tmp_path, Console())._start(tmp_path, config.models[0], "eager")
    assert started["args"] == ("--global-attention=query",)
    misspelt = {**model, "global_attention": "all"}
    with pytest.raises(ConfigError, match=r"models\[0\].global_attention = \"all\": expected one of 'none'"):
        parse_config(_config(tiny_checkpoints["led"], models=[misspelt]), tmp_path)


def test_a_capacity_section_plans_one_search_per_model_and_format_it_names(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    capacity = {"latency_ms": 800, "percentile": 90, "formats": ["onnx"], "input_lengths": [2048]}
    config = parse_config(_config(tiny_checkpoints["led"], capacity=capacity), tmp_path)
    sweep = Sweep(config, tmp_path, Console())
    searches = [run for run in sweep.plan(set()) if run.search]
    assert [(run.format, run.label) for run in searches] == [("onnx", "led|onnx|capacity|repeat 1")]
    live = cast("ServerProcess", SimpleNamespace(url="http://127.0.0.1:9"))
    text = " ".join(sweep._locust_command(live, tmp_path, searches[0], tmp_path / "r.json"))
    assert "--input-lengths 2048 " in text
    assert "--arrival poisson" in text
    assert "--rate" not in text
    assert "--capacity-latency-ms 800.0 --capacity-percentile 90" in text
    assert sweep.plan({"led|onnx|capacity|repeat 1|2048"}) == [r for r in sweep.plan(set()) if not r.search]
    for bad, message in (
        ({"latency_ms": 800, "models": ["bert"]}, "capacity.models names ['bert']"),
        ({"latency_ms": 800, "input_lengths": [4096]}, "capacity.input_lengths [4096] are not among"),
        ({"percentile": 99}, "capacity.latency_ms"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(_config(tiny_checkpoints["led"], capacity=bad), tmp_path)


def test_an_accuracy_section_names_a_dataset_task_and_lengths(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    (tmp_path / "eval.jsonl").write_text("")
    raw = _config(tiny_checkpoints["led"], accuracy={"dataset": "eval.jsonl", "task": "qasper"})
    config = parse_config(raw, tmp_path)
    assert config.accuracy is not None
    assert config.accuracy.dataset == tmp_path / "eval.jsonl"
    assert config.accuracy_lengths() == config.load.input_lengths


@pytest.mark.parametrize(
    ("accuracy", "line"),
    [
        ({"dataset": "missing.jsonl", "task": "qasper"}, "missing.jsonl: no such file"),
        (
            {"dataset": "eval.jsonl", "task": "squad"},
            "accuracy.task = \"squad\": no task named 'squad'; known: ",
        ),
        (
            {"dataset": "eval.jsonl", "task": "qasper", "input_lengths": [999]},
            "accuracy.input_lengths [999] are not among load.input_lengths",
        ),
        ({"dataset": "eval.jsonl", "task": "qasper", "max_new_tokens": 10**6}, "accuracy.max_new_tokens"),
    ],
)
def test_a_bad_accuracy_section_is_one_line(
    accuracy: dict[str, object], line: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    (tmp_path / "eval.jsonl").write_text("")
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tiny_checkpoints["led"], accuracy=accuracy), tmp_path)
    assert line in str(info.value)
    assert "\n" not in str(info.value)


def test_a_resumed_run_reads_relative_paths_from_the_original_configs_folder(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """`checkpoint = "../ckpt"` from a config in cfg/ still names the same checkpoint when the run
    is resumed from the copy in reports/<run-id>/."""
    shutil.copytree(tiny_checkpoints["led"], tmp_path / "ckpt")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "eval.jsonl").write_text("")
    path = tmp_path / "cfg" / "sweep.toml"
    path.write_text(
        'run_id = "r"\noutput_dir = "../reports"\n[[models]]\nname = "led"\ncheckpoint = "../ckpt"\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\n"
        '[accuracy]\ndataset = "../eval.jsonl"\ntask = "qasper"\n'
    )
    started = load_config(path)
    resumed = resume_config(new_run_dir(started, path))
    assert resumed.models[0].checkpoint == (tmp_path / "ckpt").resolve()
    assert resumed.accuracy is not None
    assert resumed.accuracy.dataset == (tmp_path / "eval.jsonl").resolve()
    assert resumed.output_dir == (tmp_path / "reports").resolve()
