"""Torch's idle OpenMP threads wait passively in every profiler process, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.engines.openmp import PASSIVE, WAIT_POLICY, wait_passively


def test_the_policy_is_set_only_where_the_user_left_it_unset() -> None:
    unset: dict[str, str] = {}
    wait_passively(unset)
    assert unset == {WAIT_POLICY: PASSIVE}
    chosen = {WAIT_POLICY: "ACTIVE"}
    wait_passively(chosen)
    assert chosen == {WAIT_POLICY: "ACTIVE"}


def _torch_policy(environ: dict[str, str]) -> str:
    """OMP_WAIT_POLICY as a `profiler` command, which loads torch, sees it (`profiler doctor`)."""
    profiler = str(Path(sys.executable).parent / "profiler")
    done = subprocess.run(
        [profiler, "doctor", "--seconds", "0.1"], env=environ, capture_output=True, text=True, check=False
    )
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("environment: ")]
    return line.split(f"{WAIT_POLICY}=")[1].split(",")[0]


@pytest.mark.integration
def test_every_command_runs_torch_with_passive_threads_unless_told_otherwise() -> None:
    base = {key: value for key, value in os.environ.items() if key != WAIT_POLICY}
    assert _torch_policy(base) == PASSIVE
    assert _torch_policy({**base, WAIT_POLICY: "ACTIVE"}) == "ACTIVE"
