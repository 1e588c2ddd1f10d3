"""The zoo machinery on a throw-away zoo, and the shipped pretrained models themselves."""

import dataclasses
import json
import math
import shlex

import pytest
import torch

import ibinn
from ibinn import cli, zoo
from ibinn.cli import main
from ibinn.evaluate import CONVENTIONS, evaluate
from ibinn.plots import axis_label
from ibinn.train import TrainConfig, train
from ibinn.train_config import RUN_ONLY

SHIPPED = zoo.list_models()


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    cfg = TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.5, val_size=200,
                      device="cpu", out=str(tmp / "run"))
    train(cfg, progress=False)
    root = tmp / "pretrained"
    command = "ibinn train --dataset demo:fashion-mnist --preset tiny --epochs 0.5"
    zoo.add(tmp / "run", "fashion-mnist/tiny-test", command, ood_sets=["inverted"], root=root)
    return root


def test_add_list_load(tiny_zoo):
    cards = zoo.list_models(tiny_zoo)
    assert [c.name for c in cards] == ["fashion-mnist/tiny-test"]
    card = cards[0]
    assert card.dataset_label == "Fashion-MNIST" and card.label == "γ = 1"
    assert 0 <= card.metrics["test"]["error"] <= 100
    assert set(card.demo_metrics["ood"]) == {"inverted"}
    model = zoo.load("fashion-mnist/tiny-test", device="cpu", root=tiny_zoo)
    assert model.mu.dtype == torch.float32
    manifest = json.loads((tiny_zoo / "manifest.json").read_text())["files"]
    assert "fashion-mnist/tiny-test/model.safetensors" in manifest


def test_changed_file_is_detected(tiny_zoo, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_zoo, root)
    card_path = root / "fashion-mnist/tiny-test/card.json"
    card_path.write_text(card_path.read_text().replace('"tiny"', '"small"'))
    with pytest.raises(ibinn.CheckpointError, match="sha256"):
        zoo.load("fashion-mnist/tiny-test", root=root)
    with pytest.raises(ibinn.CheckpointError, match="no pretrained model"):
        zoo.load("fashion-mnist/nope", root=root)


def test_rebuild_trains_the_cards_training_config(tiny_zoo, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    assert TrainConfig.from_json(before.train_config).preset == "tiny"  # add stored the run's config
    assert "out" not in before.train_config  # the run's folder is no part of the recipe
    weights = root / "fashion-mnist/tiny-test/model.safetensors"
    weights.write_bytes(b"damaged")  # rebuild must not read the old files
    (card,), done = zoo.rebuild("fashion-mnist", root=root, device="cpu", progress=False)
    assert done
    assert card.name == "fashion-mnist/tiny-test" and card.command == before.command
    assert card.train_config == before.train_config  # the training config round-trips
    assert card.epochs == before.epochs
    assert 0 <= card.metrics["test"]["error"] <= 100
    zoo.verify(card.name, root)  # the manifest was rewritten for the new files
    assert zoo.load(card.name, device="cpu", root=root).config.preset == "tiny"
    assert zoo.rebuild("cifar10", root=root) == ([], True)


def test_rebuild_runs_in_segments_that_resume(tiny_zoo, tmp_path):
    """With a work folder, a rebuild stopped by its time limit continues where it stopped."""
    import shutil

    root, work = tmp_path / "copy", tmp_path / "work"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    cards, done = zoo.rebuild(root=root, device="cpu", progress=False, work=work,
                              should_stop=lambda: True)  # stops after its first step
    assert (cards, done) == ([], False)
    assert zoo.list_models(root)[0].metrics == before.metrics  # the zoo is untouched so far
    (card,), done = zoo.rebuild(root=root, device="cpu", progress=False, work=work)
    assert done and card.name == before.name
    run = json.loads((work / card.name / "run" / "metrics.json").read_text())
    assert run["resumed_from_step"] == 1 and run["steps"] > 1
    assert zoo.rebuild(root=root, device="cpu", progress=False, work=work) == ([], True)  # all done


def test_a_rebuild_that_only_trains_leaves_the_packaging_to_a_later_call(tiny_zoo, tmp_path):
    """`zoo rebuild --train-only` (a GPU machine without what packaging needs) trains into the work
    folder and leaves the zoo as it is; the same call without it packages those runs, untrained."""
    import shutil

    root, work = tmp_path / "copy", tmp_path / "work"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    assert zoo.rebuild(root=root, device="cpu", progress=False, work=work, epochs=0.2,
                       package=False) == ([], True)
    assert zoo.list_models(root)[0].metrics == before.metrics  # the zoo is untouched
    run = work / before.name / "run"
    trained = json.loads((run / "metrics.json").read_text())
    weights = (run / "model.safetensors").stat().st_mtime_ns
    (card,), done = zoo.rebuild(root=root, device="cpu", progress=False, work=work, epochs=0.2)
    assert done and card.train_seconds == trained["train_seconds"] and card.epochs == trained["epochs"]
    assert (run / "model.safetensors").stat().st_mtime_ns == weights  # packaged, not trained again
    assert "rebuild --epochs 0.2`" in card.notes
    with pytest.raises(ValueError, match="work folder"):
        zoo.rebuild(root=root, package=False)


def test_rebuild_train_only_needs_a_work_folder(capsys):
    assert main(["zoo", "rebuild", "--train-only"]) != 0
    assert "--train-only need --work" in capsys.readouterr().err


def test_rebuild_with_a_budget_retrains_under_the_new_recipe_and_waits_for_the_family(
        tiny_zoo, tmp_path, monkeypatch):
    """`zoo rebuild --budget-minutes` keeps each model's data, network and loss, takes this
    version's recipe at that budget, leaves a model another process trains to it, and changes the
    zoo only when every model has trained."""
    import shutil

    from ibinn.checkpoint import run_folder_lock
    from ibinn.train import _Run

    monkeypatch.setattr(_Run, "measure_step_seconds", lambda self: (0.05, 0.5))  # 1 s: 10 steps
    root, work = tmp_path / "copy", tmp_path / "work"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    old = TrainConfig.from_json(before.train_config)
    with run_folder_lock(work / before.name / "run"):  # as a second `zoo rebuild` holds it
        assert zoo.rebuild(root=root, device="cpu", progress=False, work=work,
                           budget_minutes=1 / 60) == ([], False)
    assert zoo.list_models(root)[0].metrics == before.metrics  # the zoo is untouched so far
    (card,), done = zoo.rebuild(root=root, device="cpu", progress=False, work=work, budget_minutes=1 / 60)
    assert done
    new = TrainConfig.from_json(card.train_config)
    assert new == old.with_recipe(budget_minutes=1 / 60, device="cpu", out=new.out)
    assert (new.preset, new.gamma, new.dataset, new.seed) == (old.preset, old.gamma, old.dataset, old.seed)
    assert card.command.startswith("ibinn train --dataset demo:fashion-mnist --preset tiny")
    assert "--budget-minutes 0.0166667" in card.command and "--epochs" not in card.command
    assert "rebuild --budget-minutes" in card.notes


def test_rebuild_in_epochs_with_a_new_network(tiny_zoo, tmp_path):
    """`zoo rebuild --epochs E --arch K=V`: every model takes E epochs of the default recipe (the
    same compute on any machine) on the changed network, and its card says how it was made."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    with pytest.raises(ValueError, match="not both"):
        zoo.rebuild(root=root, budget_minutes=1, epochs=1)
    with pytest.raises(ValueError, match="not seed"):  # a recipe change, not the model's
        zoo.rebuild(root=root, epochs=1, recipe={"seed": 3})
    (card,), done = zoo.rebuild(root=root, device="cpu", progress=False, epochs=1.0,
                                arch={"subnet": "official"}, recipe={"sigma": 0.02, "label_smoothing": 0.0})
    assert done
    new = TrainConfig.from_json(card.train_config)
    old = TrainConfig.from_json(before.train_config)
    assert new == old.with_recipe(budget_minutes=None, epochs=1.0, device="cpu", out=new.out,
                                  model_overrides={"subnet": "official"}, sigma=0.02, label_smoothing=0.0)
    assert zoo.load(card.name, device="cpu", root=root).config.subnet == "official"
    assert card.epochs == 1.0 != before.epochs
    assert "--epochs 1 " in card.command and "--arch subnet=" in card.command
    assert "--sigma 0.02" in card.command and "--budget-minutes" not in card.command
    assert "rebuild --epochs 1 --arch subnet=official --set sigma=0.02 --set label_smoothing=0`" in card.notes
    assert 'subnet="official"' in card.notes and "σ = 0.02" in card.notes


def test_a_rebuild_that_changes_the_recipe_only_names_its_own_flags(tiny_zoo, tmp_path):
    """A rebuild with `--set` alone trains each card's own config with that field changed (a new
    optimizer at its own default rate), and the card's note names the rebuild's flags, not a
    budget flag the rebuild was not given."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_zoo, root)
    (before,) = zoo.list_models(root)
    (card,), done = zoo.rebuild(root=root, device="cpu", progress=False, recipe={"optimizer": "sgd"})
    assert done
    old, new = TrainConfig.from_json(before.train_config), TrainConfig.from_json(card.train_config)
    assert (new.optimizer, new.lr) == ("sgd", 0.07) and new.epochs == old.epochs
    assert new == dataclasses.replace(old, optimizer="sgd", lr=0.07, device="cpu", out=new.out)
    assert "Retrained by `ibinn zoo rebuild --set optimizer=sgd`: sgd at lr 0.07" in card.notes
    assert "--budget-minutes" not in card.notes and "--epochs" not in card.notes


def test_zoo_does_not_import_the_cli():
    """`zoo rebuild` trains from the cards' configs: no cli ↔ zoo import cycle."""
    import ast
    import inspect

    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(zoo))):
        if isinstance(node, ast.ImportFrom):  # `from .cli import main`, `from . import cli`
            names |= {node.module or ""} | {f"{node.module or ''}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    assert "cli" not in {part for name in names for part in name.split(".")}, names


def test_every_shipped_card_holds_its_training_config():
    for card in SHIPPED:
        config = TrainConfig.from_json(card.train_config)
        assert (config.model, config.preset) == (card.kind, card.preset)
        if config.budget_minutes is None:
            assert config.epochs == card.epochs
        else:  # sized to a budget: the card records the epochs that fit, the command the budget
            assert f"--budget-minutes {config.budget_minutes:g}" in card.command
            assert card.epochs > 0


SWEEP = ("gamma-0", "gamma-0.1", "gamma-1", "gamma-10", "gamma-inf", "class-nll", "resnet")


@pytest.mark.parametrize("family", ["fashion-mnist", "cifar10"])
def test_shipped_zoo_has_the_whole_sweep(family):
    """Issue 5: L_X only, γ = 0.1, 1, 10, L_Y only, class-NLL and the ResNet for each data set."""
    names = {c.name for c in SHIPPED}
    assert {f"{family}/{m}" for m in SWEEP} <= names
    for card in (c for c in SHIPPED if c.family == family):
        assert card.command.startswith("ibinn train ") and card.train_seconds > 0


@pytest.mark.parametrize("card", SHIPPED, ids=lambda c: c.name)
def test_a_shipped_cards_command_trains_its_config(card):
    """The command a card shows must make the run it describes under this version's defaults,
    which change (the recipe of 2026-12, σ = 0.01): the Fashion-MNIST cards' commands of 2026-11
    no longer named the learning rate, schedule, average, noise and precision they trained with."""
    parsed = cli._train_config(cli._parser().parse_args(shlex.split(card.command)[1:]))
    saved = TrainConfig.from_json(card.train_config)
    differ = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUN_ONLY
              and getattr(parsed, f.name) != getattr(saved, f.name)]
    assert not differ, f"{card.name}: `{card.command}` differs from its train_config in {differ}"


def _error_target(card: zoo.ModelCard) -> float:
    """The test error a family's γ = 1 model must not exceed: issue 5's targets, tightened for
    CIFAR-10 on the CPU to what issue 26's recipe reached (23.4 %), so a worse rebuild fails."""
    if card.family == "cifar10":
        return 25.0 if card.device == "cpu" else 15.0
    return 10.0


@pytest.mark.parametrize("family", ["fashion-mnist", "cifar10"])
def test_shipped_gamma_1_meets_its_error_target(family):
    card = next(c for c in SHIPPED if c.name == f"{family}/gamma-1")
    assert card.metrics["n"] == 10_000  # the full test set, not the demo subset
    assert card.metrics["test"]["error"] <= _error_target(card)


def test_shipped_zoo_fits_its_size_budget():
    sizes = {f: f.stat().st_size for f in zoo.PRETRAINED_DIR.rglob("*") if f.is_file()}
    assert max(sizes.values()) <= 10 * 2**20, max(sizes, key=sizes.get)
    assert sum(sizes.values()) <= 60 * 2**20


def _budget(command: str) -> list[str]:
    """A card's training command without what a sweep varies: loss, γ, model type, folder."""
    argv, kept = shlex.split(command), []
    for i, arg in enumerate(argv):
        if arg in ("--gamma", "--mode", "--model", "--out") or argv[i - 1] in (
                "--gamma", "--mode", "--model", "--out"):
            continue
        kept.append(arg)
    return kept


@pytest.mark.parametrize("family", sorted({c.family for c in SHIPPED}))
def test_models_of_one_family_share_one_budget(family):
    budgets = {c.name: _budget(c.command) for c in SHIPPED if c.family == family}
    first = next(iter(budgets.values()))
    assert all(b == first for b in budgets.values()), budgets


#: Checked in the quick suite too; every other card (CIFAR-10's take 20-30 s each) in the full one.
QUICK_CARDS = {"fashion-mnist/gamma-1", "fashion-mnist/resnet"}


@pytest.mark.parametrize("card", [
    pytest.param(c, marks=[] if c.name in QUICK_CARDS else [pytest.mark.slow]) for c in SHIPPED],
    ids=[c.name for c in SHIPPED])
def test_shipped_model_matches_its_card_on_the_demo_set(card):
    model = ibinn.load(card.name, device="cpu")
    demo = ibinn.load_dataset(f"demo:{card.family}")
    x = demo.images[:64]
    if model.exact_inverse:  # the baselines (ibinn.baselines) have no decoder
        assert (model.decode(model.encode(x)) - x.float() / 255).abs().max() < 1e-3
    # cards evaluated before Table 1's conventions called the uniform noise set "noise"
    current = {name: "noise-uniform" if name == "noise" else name for name in card.demo_metrics["ood"]}
    report = evaluate(model, demo, list(current.values()), progress=False)
    # ECE is binned: where another CPU's kernels round a confidence across a bin edge, one image
    # changes bins and moves the ECE (in %) by up to 200/n; cifar10/gamma-0.1's moved 0.0015 on a
    # later machine with the same code and weights. Error and bits/dim keep 1e-3: a top class that
    # flips on a near-tie is far rarer than a confidence near one of the bin edges.
    one_image_across_a_bin_edge = 2 * 100 / len(demo.labels)
    for key in ("error", "bits_per_dim", "ece"):
        want, got = card.demo_metrics["test"][key], report["test"][key]
        if want is None:
            assert got is None
        else:
            slack = one_image_across_a_bin_edge if key == "ece" else 1e-3
            assert got == pytest.approx(want, rel=1e-3, abs=slack), key
    for name, row in card.demo_metrics["ood"].items():
        if row["auc_typicality"] is not None:
            assert report["ood"][current[name]]["auc_typicality"] == pytest.approx(
                row["auc_typicality"], abs=0.01)


def test_zoo_cli_lists_and_reports(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert all(c.name in out for c in SHIPPED)
    assert main(["zoo", "--markdown", "--dataset", "fashion-mnist"]) == 0
    report = capsys.readouterr().out
    for card in SHIPPED:
        if card.family == "fashion-mnist":
            assert f"| {card.name} | " in report and f"{card.metrics['test']['error']:.2f}" in report


def test_zoo_cli_draws_a_familys_curves_from_its_cards(tmp_path, capsys):
    rows = zoo.sweep_rows([c for c in SHIPPED if c.family == "cifar10"])
    assert {r["name"] for r in rows} == set(SWEEP) - {"resnet"}  # baselines have no γ
    assert all(r["dim"] == 3 * 32 * 32 and "error" in r["report"]["test"] for r in rows)
    png, html = tmp_path / "fig6.png", tmp_path / "fig6.html"
    assert main(["zoo", "--dataset", "cifar10", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["zoo", "--dataset", "cifar10", "--plot", str(html), "--markdown"]) == 0
    assert "| cifar10/gamma-1 |" in capsys.readouterr().out  # --markdown beside --plot
    page = html.read_text()
    assert "CIFAR-10 (JPEG)" in page and "NOT comparable" in page and "gamma-10" in page
    assert '"legendgroup":"resnet"' in page  # the baseline as a dashed line
    with pytest.raises(SystemExit, match="choose one with --dataset"):
        main(["zoo", "--plot", str(png)])


def test_gamma_axis_names_the_ends():
    assert [axis_label(m, g) for m, g in [("ib", 0.0), ("lx-only", 1.0), ("ib", 0.1),
                                          ("ib", math.inf), ("class-nll", 1.0)]] == [
        "0", "0", "0.1", "∞", "class-NLL"]


def test_gamma_parsing():
    assert zoo._gamma("inf") == math.inf and zoo._gamma(0.1) == 0.1


def test_reevaluate_updates_stale_cards_only_and_keeps_the_manifest(tiny_zoo, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_zoo, root)
    assert zoo.reevaluate(root=root, progress=False) == []  # already under the current conventions
    card_path = root / "fashion-mnist/tiny-test/card.json"
    stale = json.loads(card_path.read_text())
    stale["metrics"].pop("conventions")
    stale["metrics"]["ood"] = {"noise": {"auc_typicality": 1.0}}  # as cards before Table 1's rules
    card_path.write_text(json.dumps(stale))
    zoo.write_manifest(root)
    weights = (root / "fashion-mnist/tiny-test/model.safetensors").read_bytes()
    [card] = zoo.reevaluate(root=root, progress=False)
    assert card.metrics["conventions"] == CONVENTIONS and "bits_per_dim_table1" in card.metrics["test"]
    assert set(card.metrics["ood"]) == {"inverted", "noise-gaussian", "cifar10-grey", "noise-uniform"}
    assert card.metrics["ood_average"]["sets"] == ["inverted", "noise-gaussian", "cifar10-grey"]
    assert (root / "fashion-mnist/tiny-test/model.safetensors").read_bytes() == weights
    zoo.load(card.name, device="cpu", root=root)  # the manifest matches the rewritten card


def test_full_test_set_finds_a_cards_image_folder_under_the_data_root(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)  # where no data/cifar10-jpeg is (a checkout that trained has one)
    for split, count in (("train", 1), ("test", 3)):
        (tmp_path / "cifar10-jpeg" / split / "cat").mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (32, 32)).save(tmp_path / "cifar10-jpeg" / split / "cat" / f"{i}.png")
    # the card's path is relative to where the model was trained: looked up by name in the root
    assert len(zoo.full_test_set("imagefolder:data/cifar10-jpeg", tmp_path)) == 3
    with pytest.raises(ibinn.DataError, match="does not exist"):
        zoo.full_test_set("imagefolder:data/cifar10-jpeg", tmp_path / "elsewhere")
