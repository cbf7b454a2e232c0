"""A user's mistake gets one line on stderr and exit status 2, never a traceback, and leaves nothing.

Each case runs the real CLI in-process. `profiler serve` cases stop before the server starts; were
one to get that far, the patched ``run_server`` fails it instead of serving forever.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
import pytest
import torch
from typer.testing import CliRunner, Result

from exporters.export import export
from profiler.cli import app
from profiler.engines.engine import load_engine

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], prog_name="profiler")


def assert_user_error(result: Result, *needles: str) -> str:
    """Exit 2 and exactly one ``error:`` line on stderr holding every needle; returns the line."""
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def listing(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> bool:
        raise AssertionError("the server was about to start: the mistake was not caught")

    monkeypatch.setattr("profiler.server.run.run_server", refuse)


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> Path:
    """A copy of the tiny LED checkpoint that a test may damage."""
    return Path(shutil.copytree(tiny_checkpoints["led"], tmp_path / "ckpt"))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]) -> dict[str, Path]:
    """The tiny LED checkpoint exported to each format at one bucket (unverified: only loaded here)."""
    root = tmp_path_factory.mktemp("user-errors")
    out = {}
    for fmt in ("onnx", "torchscript"):
        out[fmt] = root / fmt
        export(tiny_checkpoints["led"], fmt, out[fmt], lengths=[1024], skip_parity=True)
    return out


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "1", "pid": "1_0", "input": "Where?\\n\\nIn Varn.", "output": "Varn"}\n')
    return path


@pytest.mark.parametrize("damage", ["truncated", "random"])
@pytest.mark.parametrize("command", ["export", "serve"])
def test_corrupt_safetensors(command: str, damage: str, checkpoint: Path, tmp_path: Path) -> None:
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 40)
    before = listing(tmp_path)
    args = ["-o", tmp_path / "art"] if command == "export" else ["--port", "0"]
    line = assert_user_error(invoke(command, checkpoint, *args), str(weights), "corrupt or truncated")
    assert "copy the checkpoint again" in line
    assert listing(tmp_path) == before


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("command", ["serve", "eval"])
def test_truncated_graph_is_named(
    command: str, fmt: str, artifacts: dict[str, Path], dataset: Path, tmp_path: Path
) -> None:
    artifact = Path(shutil.copytree(artifacts[fmt], tmp_path / "artifact"))
    graph = artifact / ("decoder_step.onnx" if fmt == "onnx" else "model.pt")
    graph.write_bytes(graph.read_bytes()[:3000])
    args = ["--port", "0"] if command == "serve" else ["--dataset", dataset]
    assert_user_error(invoke(command, artifact, *args), str(graph), "damaged", "export the artifact again")


@pytest.mark.parametrize("command", ["export", "serve", "eval", "workload check", "workload synth"])
def test_a_checkpoint_without_tokenizer_files(
    command: str, checkpoint: Path, dataset: Path, tmp_path: Path
) -> None:
    for path in checkpoint.glob("*"):
        if path.name.startswith(("tokenizer", "special_tokens")):
            path.unlink()
    args: dict[str, list[str | Path]] = {
        "export": ["export", checkpoint, "-o", tmp_path / "art"],
        "serve": ["serve", checkpoint, "--port", "0"],
        "eval": ["eval", checkpoint, "--dataset", dataset],
        "workload check": ["workload", "check", dataset, "--tokenizer", checkpoint],
        "workload synth": ["workload", "synth", "--tokenizer", checkpoint, "-o", tmp_path / "s.jsonl"],
    }
    before = listing(tmp_path)
    assert_user_error(invoke(*args[command]), str(checkpoint), "no tokenizer files")
    assert listing(tmp_path) == before


def test_a_damaged_tokenizer_json_is_named(artifacts: dict[str, Path], tmp_path: Path) -> None:
    artifact = Path(shutil.copytree(artifacts["onnx"], tmp_path / "artifact"))
    (artifact / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    assert_user_error(invoke("serve", artifact, "--port", "0"), str(artifact / "tokenizer.json"), "damaged")


@pytest.mark.parametrize("command", ["export", "checkpoints build"])
def test_output_under_a_file(command: str, tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "somefile").write_text("mine")
    out = tmp_path / "somefile" / "out"
    args: list[str | Path] = (
        ["export", tiny_checkpoints["led"], "-o", out]
        if command == "export"
        else ["checkpoints", "build", "--arch", "led", "--size", "tiny", "-o", out]
    )
    assert_user_error(invoke(*args), f"{tmp_path / 'somefile'} is a file, not a directory")
    assert listing(tmp_path) == ["somefile"]


def test_export_creates_missing_parents(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "art"
    result = invoke("export", tiny_checkpoints["led"], "--lengths", "1024", "--skip-parity", "-o", out)
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file()
    assert [path.name for path in out.parent.iterdir()] == ["art"]  # no build directory left


def test_a_failed_export_removes_the_parents_it_created(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporters.export import ExportError

    def fail(*args: object) -> None:
        raise ExportError("parity failed (simulated)")

    monkeypatch.setattr("exporters.export._export_onnx", fail)
    result = invoke(
        "export", tiny_checkpoints["led"], "--lengths", "1024", "-o", tmp_path / "a" / "b" / "art"
    )
    assert_user_error(result, "simulated")
    assert listing(tmp_path) == []


def test_export_refuses_to_replace_its_own_checkpoint(checkpoint: Path) -> None:
    before = listing(checkpoint)
    assert_user_error(invoke("export", checkpoint, "-o", checkpoint, "--overwrite"), "holds the checkpoint")
    assert listing(checkpoint) == before


@pytest.fixture
def dead_and_live_pids() -> Iterator[tuple[int, int]]:
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    yield dead.pid, live.pid
    live.kill()
    live.wait()


def test_export_removes_build_directories_of_killed_exports_only(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, dead_and_live_pids: tuple[int, int]
) -> None:
    dead, live = dead_and_live_pids
    (tmp_path / f".art.partial-{dead}").mkdir()
    (tmp_path / f".art.partial-{dead}" / "encoder_1024.onnx").write_bytes(b"half")
    (tmp_path / f".other.partial-{live}").mkdir()
    result = invoke(
        "export", tiny_checkpoints["led"], "--lengths", "1024", "--skip-parity", "-o", tmp_path / "art"
    )
    assert result.exit_code == 0, result.output
    assert f"removed .art.partial-{dead} from {tmp_path}" in " ".join(result.stdout.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.partial-{live}", "art"]


def test_sweep_reports_an_export_error_as_a_user_error(tmp_path: Path) -> None:
    """ExportError is an ArtifactError, which every command handles: no traceback from a sweep."""
    checkpoint = tmp_path / "bert"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"model_type": "bert"}')
    config = tmp_path / "sweep.toml"
    config.write_text(
        'output_dir = "reports"\n[[models]]\nname = "bert"\ncheckpoint = "bert"\nformats = ["onnx"]\n'
        "[load]\ninput_lengths = [1024]\nconcurrency = [1]\nstage_seconds = 1\n"
    )
    assert_user_error(invoke("sweep", config), "model type 'bert' is not supported")


@pytest.fixture
def without_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimum cannot be imported, as where the [optimum] extra is not installed (here or not)."""
    for name in [name for name in sys.modules if name == "optimum" or name.startswith("optimum.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "optimum", None)


@pytest.mark.usefixtures("without_optimum")
def test_the_optimum_route_without_the_extra_names_what_to_install(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bart"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"model_type": "bart"}')
    assert_user_error(
        invoke("export", checkpoint, "-o", tmp_path / "art"),
        "model type 'bart' is not supported without optimum-onnx, which is not installed",
        "pip install 'long-context-profiler[optimum]'",
        "pip install -e '.[optimum]'",
    )
    # TorchScript is refused for what it is, with or without the extra.
    assert_user_error(
        invoke("export", checkpoint, "--format", "torchscript", "-o", tmp_path / "art"),
        "TorchScript export supports led, bigbird_pegasus",
    )
    assert listing(tmp_path) == ["bart", "bart/config.json"]


@pytest.mark.parametrize("option", ["--workdir", "--output-dir"])
def test_demo_directories_that_are_files(option: str, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    other = "--output-dir" if option == "--workdir" else "--workdir"
    result = invoke("demo", option, tmp_path / "afile", other, tmp_path / "x")
    assert_user_error(result, f"{option} {tmp_path / 'afile'} is a file")
    assert listing(tmp_path) == ["afile"]


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["workload", "sample", "-o"], "dir"),
        (["workload", "check"], "dir"),
        (["eval", "ARTIFACT", "--dataset", "DATA", "--out"], "dir"),
        (["eval", "ARTIFACT", "--dataset", "DATA", "--out"], "under-file"),
    ],
)
def test_a_directory_where_a_file_belongs(
    command: list[str], target: str, artifacts: dict[str, Path], dataset: Path, tmp_path: Path
) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("mine")
    path = tmp_path / "adir" if target == "dir" else tmp_path / "afile" / "p.json"
    swap = {"ARTIFACT": str(artifacts["onnx"]), "DATA": str(dataset)}
    before = listing(tmp_path)
    result = invoke(*(swap.get(arg, arg) for arg in command), path)
    assert_user_error(result, str(path), "is a directory" if target == "dir" else "is a file")
    assert listing(tmp_path) == before


@NO_CUDA
@pytest.mark.parametrize("engine", ["eager", "torchscript"])
def test_device_cuda_without_cuda_is_refused(
    engine: str, tiny_checkpoints: dict[str, Path], artifacts: dict[str, Path]
) -> None:
    model = tiny_checkpoints["led"] if engine == "eager" else artifacts["torchscript"]
    line = assert_user_error(
        invoke("serve", model, "--device", "cuda", "--port", "0"), "CUDA is not available"
    )
    assert "--device cpu" in line
    assert "CUDA build of torch" in line


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="the CUDA provider is here"
)
def test_onnx_device_cuda_without_the_cuda_provider_is_refused(artifacts: dict[str, Path]) -> None:
    result = invoke("serve", artifacts["onnx"], "--device", "cuda", "--port", "0")
    line = assert_user_error(result, "CUDAExecutionProvider is not available")
    assert "pip uninstall -y onnxruntime && pip install -e '.[gpu]'" in line  # not eaten as markup
    assert "--device cpu" in line


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="the CUDA provider is here"
)
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_onnx_runtime_falling_back_to_the_cpu_is_refused(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when onnxruntime-gpu is installed but cannot load CUDA: sessions quietly run on the CPU."""
    available = ["CUDAExecutionProvider", *onnxruntime.get_available_providers()]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    result = invoke("serve", artifacts["onnx"], "--device", "cuda", "--port", "0")
    line = assert_user_error(
        result, "could not start CUDAExecutionProvider", "would run on CPUExecutionProvider"
    )
    assert "--device cpu" in line


@pytest.mark.parametrize("engine", ["eager", "onnx", "torchscript"])
def test_engines_report_where_they_really_run(
    engine: str, tiny_checkpoints: dict[str, Path], artifacts: dict[str, Path]
) -> None:
    loaded = load_engine(tiny_checkpoints["led"] if engine == "eager" else artifacts[engine])
    assert loaded.device == "cpu"
    assert loaded.providers == (["CPUExecutionProvider"] if engine == "onnx" else [])


@pytest.mark.parametrize("command", ["export", "serve"])
def test_an_encoder_only_checkpoint_is_refused_with_advice_that_holds(
    command: str, checkpoint: Path, tmp_path: Path
) -> None:
    """A BERT (with a tokenizer) is not a model either command can take: each says so, and neither
    suggests the other."""
    from transformers import BertConfig, BertModel

    bert = tmp_path / "bert"
    BertModel(
        BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(bert)
    for path in checkpoint.glob("*"):
        if path.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(path, bert / path.name)
    args = ["-o", tmp_path / "art"] if command == "export" else ["--port", "0"]
    line = assert_user_error(invoke(command, bert, *args), "'bert'")
    assert "--lengths" not in line
    assert not (tmp_path / "art").exists()
