"""Shared fixtures: tiny checkpoints built once per session, never a hub download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from profiler.checkpoints import ARCHS, build_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny checkpoint directory per architecture."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_checkpoint(arch, "tiny", root / arch).path for arch in ARCHS}


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small (demo-size) checkpoint directory per architecture."""
    root = tmp_path_factory.mktemp("small")
    return {arch: build_checkpoint(arch, "small", root / arch).path for arch in ARCHS}
