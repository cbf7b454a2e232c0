"""The exporters benchmark: its FLOP counts are what the exported graphs compute, and a short run
times every cell and writes its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.exporters import decoder_flops, encoder_flops, main
from exporters.modules import DecoderInitGraph, DecoderStepGraph, EncoderGraph
from profiler.checkpoints import ARCHS, load_model
from profiler.modelinfo import encoder_layout


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("lengths", [[1024], [1100, 700]])
def test_flop_counts_are_torchs_count_of_the_exported_graphs(
    tiny_checkpoints: dict[str, Path], arch: str, lengths: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module docstring's formula, against torch's own count of every matmul the graphs run.

    The graphs are traced as for ONNX: LED's band as explicit matmuls, which the counter sees (the
    TorchScript graph's fused attention does the same products in a CPU kernel it does not count)."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    model: Any = load_model(tiny_checkpoints[arch]).model  # its config's fields are typed Optional
    config, layout = model.config, encoder_layout(model.config)
    rows = [np.random.default_rng(length).integers(3, 500, size=length) for length in lengths]
    batch = layout.batch(rows, config.pad_token_id, [1 if layout.global_attention else 0] * len(rows))
    arrays = [batch.input_ids, batch.attention_mask, *(batch.extra[name] for name in layout.extra_inputs())]
    mask = torch.from_numpy(batch.attention_mask)
    start = torch.full((len(rows), 1), config.decoder_start_token_id, dtype=torch.long)
    new_tokens, layers = 3, config.decoder_layers
    with torch.inference_mode():
        with FlopCounterMode(display=False) as encoder_count:
            hidden = EncoderGraph(model)(*(torch.from_numpy(array) for array in arrays))
        with FlopCounterMode(display=False) as decoder_count:
            _, *caches = DecoderInitGraph(model)(start, hidden, mask)
            past, cross = caches[: 2 * layers], caches[2 * layers :]
            for position in range(1, new_tokens):
                _, *past = DecoderStepGraph(model)(start, torch.tensor([position]), mask, *past, *cross)
    assert encoder_count.get_total_flops() == encoder_flops(config, layout, batch)
    width = batch.input_ids.shape[1]
    assert decoder_count.get_total_flops() == decoder_flops(config, len(rows), width, new_tokens)


@pytest.mark.integration
def test_a_short_run_times_every_cell_and_writes_its_figures(tmp_path: Path) -> None:
    """Both architectures, both formats, both stages, two batch sizes, and the 1,100-token comparison."""
    args = ["--size", "tiny", "--lengths", "1024", "--batches", "1,2", "--rounds", "1", "--new-tokens", "4"]
    assert main([*args, "--workdir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench-exporters-tiny.json").read_text(encoding="utf-8"))
    cells = results["cells"]
    assert len(cells) == len(ARCHS) * 2 * 2 * 2  # archs x batch sizes x formats x stages
    assert all(row["eager_ms"] > 0 and row["exported_ms"] > 0 and row["gflops_per_s"] > 0 for row in cells)
    assert all(row["gflop"] > 0 for row in cells)
    # 1,100 tokens: tiny LED pads to its 32-token window, tiny BigBird-Pegasus to its 16-token block.
    assert {(row["arch"], row["width"]) for row in results["padding"]} == {
        ("led", 1120),
        ("bigbird-pegasus", 1104),
    }
    assert all(row["flop_ratio"] > 1 for row in results["padding"])
    assert min(results["peak_gflops_per_s"].values()) > 0
