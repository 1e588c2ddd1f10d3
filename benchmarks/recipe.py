"""Quality per compute: the old training recipe against the new one at equal budgets.

For each budget (minutes of compute), trains the same network once with each recipe, side by side
(one process each, on ``--threads`` torch threads, started together so that both see the same
machine), every run sized to the budget by ``ibinn train --budget-minutes``, and prints the
validation error and bits/dim each reached (the held-out split of the training set: the test set
plays no part in the choice), with the steps, epochs and seconds it took.

The recipes (:data:`RECIPES`): ``old``, the zoo's of 2026-11 (Adam at lr 1e-3, 5 % warm-up and
cosine decay, no weight average, fp32, eager, training noise σ = 1e-3); ``new``, this version's
defaults (Adam at lr 2e-3, 5 % warm-up and linear decay to zero, an average of the weights with a
half-life of 5 % of the run, bf16 where the device computes it natively, ``--compile auto``,
σ = 0.01). Both use the data set's
default augmentation (flips and crops for RGB data) unless ``--set`` says otherwise.

CIFAR-10 (JPEG) caveat: the JPEG copy's bits/dim are NOT comparable with published CIFAR-10
figures (JPEG smoothing lowers them); its error is close to the original's.

    python benchmarks/recipe.py --dataset imagefolder:data/cifar10-jpeg --arch fc_width=128 --budgets 5 15 45
    python benchmarks/recipe.py --dataset fashion-mnist --root ../shared/data/fashion-mnist \
      --set augment=flip --budgets 5 15
    python benchmarks/recipe.py --dataset demo:fashion-mnist --budgets 0.2 --preset tiny  # a smoke test

A knob of the new recipe is measured the same way, as a named variant beside it
(``--variant NAME FLAG=VALUE ...``: the new recipe with those ``ibinn train`` flags changed):

    python benchmarks/recipe.py --recipes new --variant batch-64 batch_size=64 --budgets 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: ``ibinn train`` flags of each recipe (on top of the shared ones).
RECIPES: dict[str, list[str]] = {
    "old": ["--lr", "0.001", "--schedule", "cosine", "--warmup", "0.05", "--ema", "0", "--no-amp",
            "--compile", "off", "--sigma", "0.001"],
    "new": [],  # this version's defaults
}


def flags(settings: list[str]) -> list[str]:
    """``ibinn train`` flags from ``FLAG=VALUE`` settings (``batch_size=64`` → ``--batch-size 64``)."""
    out = []
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            sys.exit(f"not FLAG=VALUE: {setting!r}")
        out += [f"--{name.replace('_', '-')}", value]
    return out


def recipes(args: argparse.Namespace) -> dict[str, list[str]]:
    """The ``ibinn train`` flags of each recipe to run: the chosen ones, then the variants."""
    chosen = {name: RECIPES[name] for name in args.recipes}
    for name, *settings in args.variant:
        if name in chosen:
            sys.exit(f"variant {name!r}: the name is taken")
        chosen[name] = RECIPES["new"] + flags(settings)
    if not chosen:
        sys.exit("nothing to run: name a recipe (--recipes old new) or a --variant")
    return chosen


def command(recipe_flags: list[str], budget: float, out: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", args.dataset, "--model", args.model,
           "--gamma", str(args.gamma), "--preset", args.preset, "--budget-minutes", str(budget),
           "--quiet", "--out", str(out)]
    for arch in args.arch:
        cmd += ["--arch", arch]
    if args.root:
        cmd += ["--root", args.root]
    # the recipe's own flags come last, so a variant overrides a shared --set
    return cmd + flags(args.set) + recipe_flags


def figures(out: Path) -> dict:
    """What a finished run reached on its validation split, and what it spent."""
    metrics = json.loads((out / "metrics.json").read_text())
    last = json.loads((out / "train_config.json").read_text())
    import torch

    history = torch.load(out / "train_state.pt", weights_only=True)["history"]
    val = next(r for r in reversed(history) if "val_error" in r)
    return {"val_error": val["val_error"], "val_bits_per_dim": val.get("val_bits_per_dim"),
            "steps": metrics["steps"], "epochs": metrics["epochs"],
            "seconds": metrics["train_seconds"], "compile": last["compile"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="imagefolder:data/cifar10-jpeg")
    parser.add_argument("--root")
    parser.add_argument("--model", default="ibinn")
    parser.add_argument("--gamma", default="1")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--arch", action="append", default=[],
                        help="KEY=VALUE, as ibinn train's (the CIFAR-10 zoo's: fc_width=128)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[5.0, 15.0, 45.0])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--set", action="append", default=[], metavar="FLAG=VALUE",
                        help="an ibinn train flag for every run, e.g. augment=flip")
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar="NAME FLAG=VALUE", help="the new recipe with some flags changed, as a row "
                        "of its own, e.g. --variant batch-64 batch_size=64")
    parser.add_argument("--threads", type=int, default=1, help="torch threads a run")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="ibinn-recipe-"))
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    to_run = recipes(args)
    rows = []
    for budget in args.budgets:
        runs = {recipe: work / f"{recipe}-{budget:g}min" for recipe in to_run}
        procs = {recipe: subprocess.Popen(command(to_run[recipe], budget, out, args), env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for recipe, out in runs.items()}
        for recipe, proc in procs.items():
            _, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"{recipe} at {budget:g} min failed:\n{err[-2000:]}")
            rows.append({"budget": budget, "recipe": recipe, **figures(runs[recipe])})
    print(f"{args.dataset} · {args.model} γ = {args.gamma} · preset {args.preset} "
          f"{' '.join(args.arch)} · {args.threads} torch thread(s) a run, runs of a budget side by side"
          + (f" · {' '.join(args.set)}" if args.set else ""))
    print("| budget (min) | recipe | val error % | val bits/dim | steps | epochs | seconds | compile |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        bpd = f"{r['val_bits_per_dim']:.3f}" if r["val_bits_per_dim"] is not None else "–"
        print(f"| {r['budget']:g} | {r['recipe']} | {100 * r['val_error']:.2f} | {bpd} | {r['steps']} "
              f"| {r['epochs']:.2f} | {r['seconds']:.0f} | {r['compile']} |")


if __name__ == "__main__":
    main()
