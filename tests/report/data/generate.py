"""Regenerate the recorded run directories under tests/report/data/ (deterministic).

    .venv/bin/python -m tests.report.data.generate

``cpu-demo``: two models x two formats x three lengths x two concurrency levels, one repeat, energy
from the estimate (a CPU-only machine), with accuracy scores. ``gpu-h100``: one model x two formats
x two lengths at four users, two repeats, energy from the NVML counter, GPU timeline samples.
Figures are shaped like the demo's (the small checkpoints on CPU; a GPU for the second run).
"""

from __future__ import annotations

import random
from pathlib import Path

from profiler.energy.timeline import TimelineSample
from profiler.environment import Environment
from profiler.results import AccuracyRecord, ResultRecord

from .. import make_record, write_run

HERE = Path(__file__).resolve().parent
SAMPLES = 16
IDLE_CPU_W = 6.0
IDLE_GPU_W = 70.0

#: p50 latency at one user, ms, per (model, format, length). BigBird's TorchScript export grows
#: about quadratically: the block-sparse path was traced as full attention.
BASE_MS = {
    ("led-small", "onnx"): {1024: 95.0, 2048: 172.0, 4096: 331.0},
    ("led-small", "torchscript"): {1024: 109.0, 2048: 198.0, 4096: 384.0},
    ("bigbird-pegasus-small", "onnx"): {1024: 121.0, 2048: 233.0, 4096: 462.0},
    ("bigbird-pegasus-small", "torchscript"): {1024: 141.0, 2048: 421.0, 4096: 1497.0},
}
RSS_MIB = {"onnx": 410, "torchscript": 615}


def _latencies(rng: random.Random, p50: float) -> list[float]:
    values = [round(p50 * rng.lognormvariate(0.0, 0.08), 2) for _ in range(SAMPLES - 1)]
    values.append(round(p50 * 1.6 * rng.uniform(0.95, 1.05), 2))  # one slow tail request
    rng.shuffle(values)
    return values


def _timeline(
    rng: random.Random, start: float, duration: float, gpu: bool, busy: float
) -> list[TimelineSample]:
    samples = []
    t = 0.0
    while t <= duration:
        gpus = []
        if gpu:
            gpus = [
                {
                    "index": 0,
                    "power_w": round(busy * rng.uniform(0.9, 1.05), 1),
                    "utilization_pct": rng.randint(62, 88),
                    "memory_used_bytes": 2_150_000_000 + rng.randint(0, 40_000_000),
                    "temperature_c": rng.randint(55, 63),
                    "sm_clock_mhz": 1755,
                }
            ]
        samples.append(
            TimelineSample.model_validate(
                {
                    "t_monotonic_s": round(start + t, 3),
                    "t_wall_s": round(1.7e9 + start + t, 3),
                    "cpu_tree_pct": round((25.0 if gpu else busy) * rng.uniform(0.9, 1.1), 1),
                    "cpu_system_pct": round(rng.uniform(40, 95), 1),
                    "gpus": gpus,
                }
            )
        )
        t += 2.0
    return samples


def _cell(
    rng: random.Random,
    clock: list[float],
    model: str,
    fmt: str,
    length: int,
    users: int,
    repeat: int,
    gpu: bool,
) -> ResultRecord:
    scale = 0.22 if gpu else 1.0
    # More users: batching lifts throughput, queueing lifts latency.
    p50 = BASE_MS[(model, fmt)][length] * scale * (1.0 if users == 1 else 2.6) * rng.uniform(0.97, 1.03)
    latencies = _latencies(rng, p50)
    throughput = users / (sum(latencies) / len(latencies) / 1000.0)
    duration = SAMPLES / throughput
    power = (225.0 if gpu else (18.0 if users == 1 else 31.0)) * rng.uniform(0.96, 1.04)
    idle = IDLE_GPU_W if gpu else IDLE_CPU_W
    failures = 2 if (model, fmt, length, users) == ("bigbird-pegasus-small", "torchscript", 4096, 4) else 0
    start = clock[0]
    clock[0] += duration + 1.5
    return make_record(
        model,
        fmt,
        length,
        users,
        repeat,
        latencies,
        device="cuda" if gpu else "cpu",
        source="nvml-counter" if gpu else "estimate",
        gross_j=power / throughput,
        net_j=(power - idle) / throughput,
        throughput_rps=throughput,
        tokens_per_s=throughput * (length + 32),
        duration_s=duration,
        window_j=power * duration,
        idle_w=idle,
        timeline=_timeline(rng, start, duration, gpu, power if gpu else 95.0 * users**0.6),
        failures=failures,
        failure_reasons={"503: queue full": failures} if failures else None,
        peak_rss_bytes=(RSS_MIB[fmt] + length // 32) * 2**20,
        peak_gpu_memory_bytes=2_190_000_000 if gpu else None,
        run_id="gpu-h100" if gpu else "cpu-demo",
    )


def _environment(gpu: bool) -> Environment:
    return Environment.model_validate(
        {
            "cpu": "AMD EPYC 7R13 Processor" if gpu else "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
            "cpu_count": 16 if gpu else 2,
            "memory_bytes": 137_438_953_472 if gpu else 8_335_826_944,
            "gpus": [
                {
                    "index": 0,
                    "name": "NVIDIA H100 80GB HBM3",
                    "memory_total_bytes": 85_520_809_984,
                    "driver": "550.54.15",
                }
            ]
            if gpu
            else [],
            "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
            "python": "3.11.2",
            "packages": {
                "long-context-profiler": "0.1.0",
                "torch": "2.13.0",
                "onnxruntime": "1.22.0",
                "locust": "2.37.0",
            },
            "git_commit": "a2c9090",
        }
    )


def _write(
    name: str, records: list[ResultRecord], gpu: bool, config: str, accuracy: list[AccuracyRecord]
) -> None:
    directory = write_run(HERE / name, records, accuracy or None, _environment(gpu))
    (directory / "config.toml").write_text(config, encoding="utf-8")


CPU_CONFIG = """run_id = "cpu-demo"

[[models]]
name = "led-small"
checkpoint = "build/demo/led-small"
formats = ["onnx", "torchscript"]

[[models]]
name = "bigbird-pegasus-small"
checkpoint = "build/demo/bigbird-pegasus-small"
formats = ["onnx", "torchscript"]

[load]
input_lengths = [1024, 2048, 4096]
mode = "generate"
max_new_tokens = 32
concurrency = [1, 4]
repeats = 1
"""

GPU_CONFIG = """run_id = "gpu-h100"

[[models]]
name = "led-small"
checkpoint = "build/demo/led-small"
formats = ["onnx", "torchscript"]

[load]
input_lengths = [1024, 2048]
mode = "generate"
max_new_tokens = 32
concurrency = [4]
repeats = 2
"""

SCORES = {
    ("led-small", "gov_report"): {1024: 28.1, 2048: 31.5, 4096: 34.2},
    ("led-small", "qasper"): {1024: 24.5, 2048: 26.0, 4096: 27.3},
    ("bigbird-pegasus-small", "gov_report"): {1024: 26.0, 2048: 29.4, 4096: 31.0},
    ("bigbird-pegasus-small", "qasper"): {1024: 22.1, 2048: 23.8, 4096: 24.2},
}


def main() -> None:
    """Write both run directories."""
    rng = random.Random(7)
    records = []
    for model in ("led-small", "bigbird-pegasus-small"):
        for fmt in ("onnx", "torchscript"):
            clock = [1000.0]  # one server per model and format: one monotonic clock
            for users in (1, 4):
                for length in (1024, 2048, 4096):
                    records.append(_cell(rng, clock, model, fmt, length, users, 1, gpu=False))
    accuracy = [
        AccuracyRecord(model=model, format="onnx", input_length=length, task=task, score=score,
                       metrics={}, count=8)
        for (model, task), by_length in SCORES.items()
        for length, score in by_length.items()
    ]  # fmt: skip
    _write("cpu-demo", records, False, CPU_CONFIG, accuracy)
    records = []
    for fmt in ("onnx", "torchscript"):
        clock = [500.0]
        for repeat in (1, 2):
            for length in (1024, 2048):
                records.append(_cell(rng, clock, "led-small", fmt, length, 4, repeat, gpu=True))
    _write("gpu-h100", records, True, GPU_CONFIG, [])


if __name__ == "__main__":
    main()
