"""benchmarks/recipe.py: the ``ibinn train`` command each recipe and variant runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ibinn import cli

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "recipe.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("recipe_benchmark", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_config(recipe, argv: list[str], name: str):
    """The TrainConfig that ``ibinn train`` would build for recipe ``name`` under ``argv``."""
    args = recipe.parse_args(argv)
    cmd = recipe.command(recipe.recipes(args)[name], 5.0, Path("out"), args)
    assert cmd[1:4] == ["-m", "ibinn.cli", "train"]
    return cli._train_config(cli._parser().parse_args(cmd[3:]))


def test_old_and_new_recipes_differ_in_what_the_docstring_says(recipe):
    old = train_config(recipe, ["--dataset", "demo:fashion-mnist"], "old")
    new = train_config(recipe, ["--dataset", "demo:fashion-mnist"], "new")
    assert (old.schedule, old.ema, old.amp, old.compile, old.sigma) == ("cosine", 0.0, False, "off", 1e-3)
    assert (new.schedule, new.ema, new.amp, new.sigma) == ("linear", 0.05, True, 0.01)
    assert old.budget_minutes == new.budget_minutes == 5.0


def test_a_variant_is_the_new_recipe_with_its_flags_over_the_shared_ones(recipe):
    argv = ["--dataset", "demo:fashion-mnist", "--set", "batch_size=32", "--set", "augment=flip",
            "--variant", "b64", "batch_size=64", "label_smoothing=0"]
    assert list(recipe.recipes(recipe.parse_args(argv))) == ["old", "new", "b64"]
    variant = train_config(recipe, argv, "b64")
    new = train_config(recipe, argv, "new")
    assert (variant.batch_size, variant.label_smoothing, variant.augment) == (64, 0.0, "flip")
    assert (new.batch_size, new.label_smoothing, new.augment) == (32, 0.05, "flip")
    assert variant.schedule == new.schedule == "linear"


@pytest.mark.parametrize("argv", [["--variant", "new", "lr=0.01"], ["--variant", "x", "lr"],
                                  ["--set", "=3"], ["--recipes"]])
def test_bad_variants_stop_with_a_message(recipe, argv):
    args = recipe.parse_args(argv)
    with pytest.raises(SystemExit, match="variant|FLAG=VALUE|nothing to run"):
        for flags in recipe.recipes(args).values():
            recipe.command(flags, 5.0, Path("out"), args)
