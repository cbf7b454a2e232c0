"""The shipped trained weights: what the committed recipe makes, and how the demo loads them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from profiler.checkpoints import ARCHS, load_model
from profiler.cli import app
from profiler.training import (
    PREFIX_STEPS,
    Recipe,
    load_weights,
    recipe_from_dict,
    shipped,
    stage_of,
    train,
    write_trained_checkpoint,
)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_shipped_file_is_the_one_its_record_names(arch: str) -> None:
    files = shipped(arch)  # type: ignore[arg-type]
    assert hashlib.sha256(files.weights.read_bytes()).hexdigest() == files.record.sha256
    assert files.weights.stat().st_size < 20 * 2**20
    assert recipe_from_dict(files.record.recipe) == Recipe(arch=arch)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ARCHS)
def test_the_committed_recipe_still_makes_the_shipped_weights_first_steps(arch: str) -> None:
    """The whole recipe takes minutes; its first steps are re-run here and their weights' hash
    compared with the one recorded when the shipped weights were trained (same torch build)."""
    record = shipped(arch).record  # type: ignore[arg-type]
    assert record.prefix_steps == PREFIX_STEPS
    trained = train(recipe_from_dict(record.recipe), steps=PREFIX_STEPS)
    assert trained.prefix_sha256 == record.prefix_sha256


@pytest.mark.parametrize("arch", ARCHS)
def test_the_demo_checkpoint_holds_the_shipped_weights_in_fp32(arch: str, tmp_path: Path) -> None:
    out = write_trained_checkpoint(arch, tmp_path / "ckpt")
    model = load_model(out).model  # refuses a checkpoint with weights not from its file
    shipped_state = load_weights(shipped(arch).weights)  # type: ignore[arg-type]
    state = model.state_dict()
    for name, tensor in shipped_state.items():
        assert state[name].dtype == torch.float32
        assert torch.equal(state[name], tensor), name


def test_the_curriculum_goes_from_short_documents_to_long_ones() -> None:
    recipe = Recipe(arch="led")
    # The codes alone (-1 here) first, then ever longer documents.
    lengths = [stage_of(recipe, step).sentences for step in range(recipe.steps)]
    filler = [-1 if length is None else length for length in lengths]
    assert filler == sorted(filler)
    assert filler[0] == -1
    assert filler[-1] >= 100
    with pytest.raises(ValueError, match="past the recipe"):
        stage_of(recipe, recipe.steps)


def test_train_refuses_a_step_count_outside_the_recipe(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["checkpoints", "train", "--arch", "led", "-o", str(tmp_path / "o"), "--steps", "0"]
    )
    assert result.exit_code != 0
    assert "--steps 0: choose 1 to" in result.output
    assert not (tmp_path / "o").exists()


def test_train_says_whether_it_reproduced_the_shipped_recipes_first_steps(tmp_path: Path) -> None:
    out = tmp_path / "led"
    result = CliRunner().invoke(
        app, ["checkpoints", "train", "--arch", "led", "-o", str(out), "--steps", str(PREFIX_STEPS)]
    )
    assert result.exit_code == 0, result.output
    assert f"step {PREFIX_STEPS}/{PREFIX_STEPS}" in result.output
    assert f"the shipped recipe's first {PREFIX_STEPS} steps, reproduced" in result.output
    assert load_model(out).new_weights == []
    other = CliRunner().invoke(
        app,
        ["checkpoints", "train", "--arch", "led", "-o", str(tmp_path / "s1"), "--steps", "3", "--seed", "1"],
    )
    assert "not the shipped recipe" in other.output
