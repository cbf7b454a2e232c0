"""Other seq2seq models (BART, T5, Pegasus, ...) go through optimum-onnx's exporter.

Their attention does not depend on the sequence length's layout (full attention, no padding
needed), so optimum's dynamic encoder serves every length, which parity then checks. optimum's graphs follow
its own file and input/output names (both in :mod:`profiler.artifact`); the manifest records
``graph_io = "optimum"`` and the ONNX runner feeds the graphs by those names.

optimum and optimum-onnx are the ``[optimum]`` extra, not core dependencies: optimum-onnx pins
transformers below 5, which LED and BigBird-Pegasus do not need. Serving an artifact written here
needs neither (ONNX Runtime runs it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from profiler.artifact import OPTIMUM_GRAPHS

#: The optimum task whose three graphs match the profiler's encoder / init / step contract.
TASK = "text2text-generation-with-past"

#: How to install this route; an export that needs it says so when it is missing.
INSTALL = "pip install 'long-context-profiler[optimum]' (in a checkout: pip install -e '.[optimum]')"


def optimum_installed() -> bool:
    """Whether the ``[optimum]`` extra (optimum with optimum-onnx's exporter) can be imported."""
    try:
        import optimum.exporters.onnx  # noqa: F401
    except ImportError:
        return False
    return True


def optimum_supports(model_type: str) -> bool:
    """Whether optimum-onnx can export ``model_type`` for seq2seq generation."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    from optimum.exporters.tasks import TasksManager

    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(
            model_type.replace("_", "-"), "onnx", library_name="transformers"
        )
    except KeyError:
        return False
    return TASK in tasks


def export_with_optimum(checkpoint: Path, staging: Path) -> dict[str, Any]:
    """Run optimum's exporter (at its recommended opset) into ``staging``; return graph entries."""
    from optimum.exporters.onnx import main_export

    scratch = staging / "optimum"
    main_export(
        str(checkpoint),
        scratch,
        task=TASK,
        no_post_process=True,  # keep the first-step and with-past decoders as separate graphs
        do_validation=False,  # the profiler's own parity check runs on every bucket instead
        local_files_only=True,
    )
    for path in scratch.iterdir():  # graphs and any external-data files beside them
        if path.name.startswith(tuple(name.removesuffix(".onnx") for name in OPTIMUM_GRAPHS)):
            path.rename(staging / path.name)
    shutil.rmtree(scratch)
    encoder, decoder_init, decoder_step = OPTIMUM_GRAPHS
    return {
        "encoder": encoder,
        "decoder_init": decoder_init,
        "decoder_step": decoder_step,
        "graph_io": "optimum",
    }
