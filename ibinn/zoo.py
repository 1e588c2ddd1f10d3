"""The pretrained-model zoo shipped in ``pretrained/``.

Layout: ``pretrained/<family>/<model>/model.safetensors`` (weights in fp16, config inside),
``config.json`` (the same config, for people) and ``card.json`` (data set, settings, compute, the
exact command and the training config it made (``train_config``, which ``ibinn zoo rebuild``
trains from), and every metric ``ibinn evaluate`` measured, on the full test set and on the demo
subset); ``pretrained/<family>/demo.npz`` (2,000 class-balanced test images);
``pretrained/manifest.json`` (sha256 of every file, checked when a model is loaded by name).

Example:
    >>> import ibinn
    >>> card = next(c for c in ibinn.zoo.list_models() if c.name == "fashion-mnist/gamma-1")
    >>> card.kind, card.preset, card.metrics["test"]["error"] < 10
    ('ibinn', 'small', True)
    >>> model = ibinn.load(card.name, device="cpu")  # sha256-checked against the manifest
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import explore
from .checkpoint import CheckpointError, RunFolderBusy, atomic_write, run_folder_lock
from .data import PRETRAINED_DIR, ImageData, dataset_label, load_dataset
from .evaluate import CONVENTIONS, dataset_note, evaluate, jsonable, markdown_table
from .loading import WEIGHTS_FILE, load_path
from .model import ImageClassifier
from .train import CONFIG_FILE, METRICS_FILE, RECIPE, TrainConfig, train

MANIFEST = "manifest.json"
CARD = "card.json"
#: Arrays derived from a model and its family's demo set (projections, per-image detector scores),
#: computed when the model enters the zoo so that the dashboard shows them without computing.
DERIVED = "derived.npz"


@dataclass
class ModelCard:
    """What ``card.json`` says of one pretrained model."""

    name: str
    family: str
    dataset_label: str
    kind: str
    mode: str
    gamma: float
    preset: str
    path: Path
    metrics: dict = field(default_factory=dict)
    demo_metrics: dict = field(default_factory=dict)
    parameters: int = 0
    epochs: float = 0.0
    device: str = ""
    train_seconds: float = 0.0
    command: str = ""
    train_config: dict = field(default_factory=dict)  #: ``TrainConfig.to_json()`` without ``out``
    notes: str = ""

    @property
    def label(self) -> str:
        if self.kind != "ibinn":
            return self.kind
        if self.mode != "ib":
            return self.mode
        return "γ = ∞" if math.isinf(self.gamma) else f"γ = {self.gamma:g}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"files": {}}


def write_manifest(root: Path = PRETRAINED_DIR) -> Path:
    """Record the sha256 of every file under ``root`` (the manifest itself aside)."""
    files = {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    text = json.dumps({"files": files}, indent=2) + "\n"
    return atomic_write(root / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def verify(name: str, root: Path = PRETRAINED_DIR) -> None:
    """Check a model's files against the manifest; a changed or missing file is an error."""
    manifest = _read_manifest(root)["files"]
    folder = root / name
    for file in (WEIGHTS_FILE, CARD):
        rel = f"{name}/{file}"
        if rel not in manifest:
            raise CheckpointError(f"{rel} is not in {root / MANIFEST}; run `ibinn zoo manifest` "
                                  f"after adding models by hand")
        if not (folder / file).exists():
            raise CheckpointError(f"{folder / file} is missing")
        if _sha256(folder / file) != manifest[rel]:
            raise CheckpointError(f"{folder / file} does not match its sha256 in the manifest: "
                                  f"the file changed or is damaged (re-check it out with git)")


def derived(name: str, root: Path = PRETRAINED_DIR) -> dict[str, np.ndarray]:
    """The derived arrays shipped with zoo model ``name`` (see :func:`write_derived`); an empty
    dict when it has none. A file that does not match the manifest is an error, as for weights."""
    path = Path(root) / name / DERIVED
    if not path.exists():
        return {}
    expected = _read_manifest(Path(root))["files"].get(f"{name}/{DERIVED}")
    if expected != _sha256(path):
        raise CheckpointError(f"{path} does not match its sha256 in the manifest")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_derived(name: str, root: Path = PRETRAINED_DIR, manifest: bool = True) -> Path:
    """Compute :func:`ibinn.explore.derived_arrays` of zoo model ``name`` on its family's demo set
    and store them beside its weights (compressed, no pickles)."""
    folder = Path(root) / name
    model = load_path(folder / WEIGHTS_FILE, device="cpu")
    arrays = explore.derived_arrays(model, load_dataset(f"demo:{name.split('/')[0]}"))

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, NumPy would append ".npz"
            np.savez_compressed(f, **arrays)

    path = atomic_write(folder / DERIVED, save)
    if manifest:
        write_manifest(Path(root))
    return path


def _gamma(value) -> float:
    return math.inf if value in ("inf", None) else float(value)


def read_card(folder: Path, root: Path = PRETRAINED_DIR) -> ModelCard:
    data = json.loads((folder / CARD).read_text())
    return ModelCard(
        name=data["name"], family=data["family"], dataset_label=data["dataset_label"],
        kind=data.get("kind", "ibinn"), mode=data["mode"], gamma=_gamma(data["gamma"]),
        preset=data["preset"], path=folder / WEIGHTS_FILE, metrics=data.get("metrics") or {},
        demo_metrics=data.get("demo_metrics") or {}, parameters=data.get("parameters", 0),
        epochs=data.get("epochs", 0.0), device=data.get("device", ""),
        train_seconds=data.get("train_seconds", 0.0), command=data.get("command", ""),
        train_config=data.get("train_config") or {}, notes=data.get("notes", ""))


def list_models(root: Path = PRETRAINED_DIR) -> list[ModelCard]:
    """Every model under ``root`` that has a card, sorted by family, kind, mode and γ."""
    cards = [read_card(p.parent, root) for p in sorted(Path(root).glob(f"*/*/{CARD}"))]
    return sorted(cards, key=lambda c: (c.family, c.kind != "ibinn", c.mode != "ib", c.gamma, c.mode))


def markdown_report(cards: list[ModelCard]) -> str:
    """Per family: Table 1 of the cards' full-test-set metrics, then each model's compute and
    command, so that every figure in a report comes from a card."""
    parts = []
    for family in dict.fromkeys(c.family for c in cards):
        members = [c for c in cards if c.family == family]
        label = members[0].dataset_label
        note = dataset_note(members[0].metrics.get("data", ""))
        parts.append(f"### {label}\n\n" + markdown_table(
            {f"{c.name.split('/', 1)[1]} ({c.label})": c.metrics for c in members}, note))
        lines = ["| Model | Parameters | Epochs | Device | Budget | Wall time | Command |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.name} | {c.parameters / 1e6:.2f} M | {round(c.epochs, 1):g} | {c.device} | "
                  f"{_budget(c)} | {c.train_seconds / 60:.1f} min | `{c.command}` |" for c in members]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _budget(card: ModelCard) -> str:
    """The compute budget a card's run was sized to (``--budget-minutes``), or "–" (epochs)."""
    minutes = (card.train_config or {}).get("budget_minutes")
    if minutes is None:
        return "–"
    return f"{minutes:g} min" + (" CPU" if card.device == "cpu" else "")


def text_table(cards: list[ModelCard]) -> str:
    """One line a card, as ``ibinn zoo`` lists them: its headline metrics and compute."""
    def fmt(v, d=2):
        return "–" if v is None else f"{v:.{d}f}"

    lines = [f"{'name':28} {'data':16} {'model':12} {'err %':>6} {'bits/dim':>8} {'ECE %':>6} "
             f"{'OoD AUC %':>9}  compute"]
    for c in cards:
        t, avg = c.metrics.get("test", {}), c.metrics.get("ood_average", {})
        lines.append(f"{c.name:28} {c.dataset_label:16} {c.label:12} {fmt(t.get('error')):>6} "
                     f"{fmt(t.get('bits_per_dim'), 3):>8} {fmt(t.get('ece')):>6} "
                     f"{fmt(avg.get('auc_typicality')):>9}  {c.epochs:g} epochs, {c.device}, "
                     f"{c.train_seconds / 60:.0f} min")
    return "\n".join(lines)


def sweep_rows(cards: list[ModelCard]) -> list[dict]:
    """The IB-INN cards among ``cards`` as ``ibinn.sweep`` rows, so that Fig. 6 can be drawn
    from the shipped full-test-set metrics without evaluating again (baselines have no γ)."""
    rows = []
    for c in cards:
        if c.kind != "ibinn" or "test" not in c.metrics:
            continue
        shape = json.loads((c.path.parent / "config.json").read_text())["image_shape"]
        rows.append({"name": c.name.split("/", 1)[1], "mode": c.mode, "gamma": c.gamma,
                     "dim": math.prod(shape), "report": c.metrics})
    return rows


def is_zoo_name(name: str, root: Path = PRETRAINED_DIR) -> bool:
    return (Path(root) / name / CARD).exists()


def name_of(path: str | Path, root: Path = PRETRAINED_DIR) -> str | None:
    """The zoo name of a bundled model's file or folder under ``root``; None for any other path."""
    folder = Path(path).resolve()
    if folder.is_file():
        folder = folder.parent
    try:
        name = folder.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None
    return name if is_zoo_name(name, root) else None


def load(name: str, device="auto", root: Path = PRETRAINED_DIR) -> ImageClassifier:
    """Load a zoo model by name after checking its files against the manifest."""
    if not is_zoo_name(name, root):
        known = ", ".join(c.name for c in list_models(root)) or "none"
        raise CheckpointError(f"no pretrained model {name!r}; available: {known}")
    verify(name, root)
    return load_path(Path(root) / name / WEIGHTS_FILE, device=device)


def add(run: str | Path, name: str, command: str, test_data: str | None = None,
        root_data: str | None = None, ood_sets: list[str] | None = None,
        root: Path = PRETRAINED_DIR, notes: str = "") -> ModelCard:
    """Package a finished training run, an IB-INN or a baseline, as zoo model ``<family>/<model>``.

    The weights are stored in fp16; both the full test set (when available) and the family's
    demo subset are evaluated on the stored weights, so the card holds what a user will measure.
    The card's ``kind`` is the model type (``ibinn``, ``resnet``, ``irevnet``, ``vib``); its
    ``train_config`` the run's ``train_config.json`` without ``out`` (where the run was written is
    no part of the recipe: :func:`rebuild` trains in a scratch folder).
    """
    run = Path(run)
    family = name.split("/")[0]
    model = load_path(run / WEIGHTS_FILE, device="cpu")
    folder = Path(root) / name
    model.save(folder / WEIGHTS_FILE, half=True)
    shipped = load_path(folder / WEIGHTS_FILE, device="cpu")
    config_json = shipped.config.to_json()
    atomic_write(folder / "config.json", lambda tmp: Path(tmp).write_text(
        json.dumps(config_json, indent=2)))
    train_metrics = json.loads((run / METRICS_FILE).read_text())
    train_config = json.loads((run / CONFIG_FILE).read_text())
    train_config.pop("out", None)
    report, demo = _card_metrics(shipped, load_dataset(test_data or shipped.config.dataset, "test",
                                                       root=root_data), family, ood_sets, root_data)
    card = {
        "name": name, "family": family,
        "dataset_label": dataset_label(shipped.config.dataset), "dataset": shipped.config.dataset,
        "data_note": dataset_note(shipped.config.dataset),
        "kind": shipped.model_type,
        "mode": shipped.config.mode, "gamma": config_json["gamma"], "preset": shipped.config.preset,
        "parameters": shipped.num_parameters(), "epochs": train_metrics["epochs"],
        "steps": train_metrics["steps"], "optimizer": train_config["optimizer"],
        "device": train_metrics["device"], "train_seconds": train_metrics["train_seconds"],
        "command": command, "train_config": train_config, "weights": "fp16",
        "created": time.strftime("%Y-%m-%d"), "notes": notes, "metrics": report, "demo_metrics": demo,
    }
    atomic_write(folder / CARD, lambda tmp: Path(tmp).write_text(
        json.dumps(jsonable(card), indent=2)))
    write_derived(name, Path(root))
    return read_card(folder, Path(root))


def _card_metrics(model: ImageClassifier, test: ImageData, family: str,
                  ood_sets: list[str] | None, root_data: str | None,
                  progress: bool = True) -> tuple[dict, dict]:
    """A card's ``metrics`` (on ``test``) and ``demo_metrics`` (on the family's demo set)."""
    return (evaluate(model, test, ood_sets, root=root_data, progress=progress),
            evaluate(model, load_dataset(f"demo:{family}"), ood_sets, root=root_data,
                     progress=progress))


def full_test_set(dataset: str, root_data: str | Path | None = None) -> ImageData:
    """The full test split of a card's ``dataset``, found where this machine keeps it.

    Cards record the data set as trained, e.g. ``imagefolder:data/cifar10-jpeg`` relative to the
    training folder: such a path that does not exist here is looked up in ``root_data`` by its
    folder name (``root_data/cifar10-jpeg``). A torchvision set is read from ``root_data/<name>``
    when that folder exists (``/work/shared/data/fashion-mnist``), else from ``root_data``.
    """
    if dataset.startswith("imagefolder:"):
        folder = Path(dataset.split(":", 1)[1]).expanduser()
        if not folder.is_dir() and root_data is not None:
            folder = Path(root_data) / folder.name
        return load_dataset(f"imagefolder:{folder}", "test")
    named = Path(root_data) / dataset if root_data is not None else None
    return load_dataset(dataset, "test", root=named if named and named.is_dir() else root_data)


def reevaluate(family: str | None = None, root_data: str | Path | None = None,
               root: Path = PRETRAINED_DIR, progress: bool = True, everything: bool = False,
               on_card: Callable[[ModelCard], None] | None = None) -> list[ModelCard]:
    """Evaluate every zoo model (of ``family``) again from its stored weights, without training.

    Each card's ``metrics`` (full test set, see :func:`full_test_set`) and ``demo_metrics`` are
    replaced by what :func:`ibinn.evaluate.evaluate` measures now, e.g. after a change of Table 1's
    conventions; the weights are only read. Cards already evaluated under the current
    :data:`ibinn.evaluate.CONVENTIONS` are skipped unless ``everything``, so a call that was
    interrupted continues where it stopped: the manifest is rewritten after every card, leaving a
    consistent zoo. ``on_card`` is called with each updated card.
    """
    updated = []
    for card in list_models(root):
        current = all(m.get("conventions") == CONVENTIONS for m in (card.metrics, card.demo_metrics))
        if (family and card.family != family) or (current and not everything):
            continue
        model = load(card.name, device="cpu", root=root)  # sha256-checked
        data = json.loads((card.path.parent / CARD).read_text())
        report, demo = _card_metrics(model, full_test_set(data["dataset"], root_data), card.family,
                                     None, None if root_data is None else str(root_data), progress)
        data.update(metrics=report, demo_metrics=demo, evaluated=time.strftime("%Y-%m-%d"))
        atomic_write(card.path.parent / CARD, lambda tmp, d=data: Path(tmp).write_text(
            json.dumps(jsonable(d), indent=2)))
        write_manifest(Path(root))
        updated.append(read_card(card.path.parent, Path(root)))
        if on_card is not None:
            on_card(updated[-1])
    return updated


#: Written into a rebuild's work folder once its model is in the zoo.
DONE_MARK = "rebuilt"


#: The recipe fields a rebuild may change (``--set``): all but the length, which has flags of its own.
REBUILD_SETTINGS = tuple(name for name in RECIPE if name not in ("budget_minutes", "epochs"))


def rebuild(family: str | None = None, root_data: str | None = None, root: Path = PRETRAINED_DIR,
            device: str | None = None, progress: bool = True, work: str | Path | None = None,
            should_stop: Callable[[], bool] | None = None, budget_minutes: float | None = None,
            epochs: float | None = None, arch: dict | None = None,
            recipe: dict | None = None, package: bool = True) -> tuple[list[ModelCard], bool]:
    """Retrain and re-evaluate every zoo model (of ``family``) from its card's training config.

    ``root_data`` and ``device``, when given, replace the data folder and device the card
    recorded; the new card records what the run used. With ``budget_minutes``, each model
    retrains under this version's default recipe (:meth:`TrainConfig.with_recipe`: the same data,
    network, loss and seed), sized to that many minutes of compute, and its card gets the command
    that makes it; with ``epochs`` in its place, each model takes that many epochs (the same
    compute on any machine: a budget in minutes buys half the steps on a CPU half as fast).
    ``arch`` changes the network of every model (``ModelConfig`` fields, as ``--arch``) and
    ``recipe`` its recipe (:data:`~ibinn.train_config.RECIPE` fields but the length, as ``--set``:
    ``{"sigma": 0.001}`` retrains a family at the paper text's noise; a new optimizer without
    a rate takes its default rate). With
    ``work``, each model trains in ``work/<name>`` and a later call resumes where this one stopped:
    ``should_stop`` (polled every step) ends the call with a checkpoint, so a zoo rebuilds in
    segments of bounded time. A model whose folder another process holds is left to that process,
    so that two calls on one work folder train two models at a time.

    The zoo changes only once every model has trained: the old models stay until the new family
    is complete, and the call that finds it complete packages it (cards, derived arrays, manifest).
    ``package=False`` stops there: a GPU machine trains into ``work``; a later call packages.

    Returns the cards rebuilt by this call and whether the family is done (``package=False``: trained).
    """
    if budget_minutes is not None and epochs is not None:
        raise ValueError("a rebuild takes a budget in minutes or in epochs, not both")
    if not package and work is None:
        raise ValueError("a rebuild that does not package needs a work folder to leave the runs in")
    unknown = set(recipe or {}) - set(REBUILD_SETTINGS)
    if unknown:
        raise ValueError(f"a rebuild's recipe may set {', '.join(REBUILD_SETTINGS)}; "
                         f"not {', '.join(sorted(map(str, unknown)))}")
    cards = [card for card in list_models(root) if not family or card.family == family]
    for card in cards:
        if not card.train_config:
            raise CheckpointError(f"{card.name}: its card holds no train_config to rebuild from")
    with contextlib.ExitStack() as stack:
        base = Path(work) if work is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        plans = _rebuild_plans(cards, base, root_data, device, budget_minutes, epochs, arch or {},
                               recipe or {})
        trained = _train_plans(plans, base, progress, should_stop)
        if not trained or not package:
            return [], trained
        flags = rebuild_flags(budget_minutes, epochs, arch or {}, recipe or {})
        with run_folder_lock(base / "package"):  # one process packages the family
            return _package_plans(plans, base, root_data, root, flags), True


def rebuild_flags(budget_minutes: float | None = None, epochs: float | None = None,
                  arch: dict | None = None, recipe: dict | None = None) -> str:
    """The ``ibinn zoo rebuild`` flags that change what the cards' configs train ("" for none).

    Example:
        >>> rebuild_flags(budget_minutes=45, arch={"fc_width": 128}, recipe={"sigma": 0.01})
        '--budget-minutes 45 --arch fc_width=128 --set sigma=0.01'
    """
    words = [f"--budget-minutes {budget_minutes:g}"] if budget_minutes is not None else []
    words += [f"--epochs {epochs:g}"] if epochs is not None else []
    for flag, changes in (("--arch", arch or {}), ("--set", recipe or {})):
        words += [f"{flag} {key}={_flag_value(value)}" for key, value in changes.items()]
    return " ".join(words)


def _flag_value(value) -> str:
    """A setting's value as ``--arch`` / ``--set`` read it: a bare word for a text, else JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _rebuild_plans(cards: list[ModelCard], base: Path, root_data: str | None, device: str | None,
                   budget_minutes: float | None, epochs: float | None, arch: dict,
                   recipe: dict) -> list[tuple[ModelCard, TrainConfig]]:
    """Each card with the training config that rebuilds it in ``base/<name>/run``."""
    replace = {k: v for k, v in (("root", root_data), ("device", device)) if v is not None}
    plans = []
    for card in cards:
        config = TrainConfig.from_json(card.train_config)
        if budget_minutes is not None:
            config = config.with_recipe(budget_minutes=budget_minutes)
        elif epochs is not None:
            config = config.with_recipe(budget_minutes=None, epochs=epochs)
        if arch:
            config = dataclasses.replace(config, model_overrides=config.model_overrides | arch)
        if recipe:
            rate = {"lr": None} if "optimizer" in recipe else {}  # the new optimizer's own rate
            config = dataclasses.replace(config, **rate | recipe)
        plans.append((card, dataclasses.replace(config, out=str(base / card.name / "run"), **replace)))
    return plans


def _train_plans(plans: list[tuple[ModelCard, TrainConfig]], base: Path, progress: bool,
                 should_stop: Callable[[], bool] | None) -> bool:
    """Train (or resume) every model not yet trained; whether all of them now are."""
    trained = True
    for card, config in plans:
        if (base / card.name / DONE_MARK).exists() or (Path(config.out) / METRICS_FILE).exists():
            continue  # packaged, or trained by an earlier segment
        try:
            if not train(config, resume=True, progress=progress, should_stop=should_stop).finished:
                return False
        except RunFolderBusy:  # another process trains it
            trained = False
    return trained


def _package_plans(plans: list[tuple[ModelCard, TrainConfig]], base: Path, root_data: str | None,
                   root: Path, flags: str) -> list[ModelCard]:
    """Add every trained model not yet packaged to the zoo (see :func:`add`); their new cards,
    with the command and notes of the run that made them when the rebuild's ``flags`` changed it."""
    rebuilt = []
    for card, config in plans:
        if (base / card.name / DONE_MARK).exists():
            continue
        command, notes = card.command, card.notes
        if flags:
            command = dataclasses.replace(config, out=f"runs/{card.name}").command()
            notes = _recipe_notes(config, flags)
        rebuilt.append(add(config.out, card.name, command, root_data=root_data, root=root,
                           notes=notes))
        (base / card.name / DONE_MARK).touch()
    return rebuilt


def _recipe_notes(config: TrainConfig, flags: str) -> str:
    """A card's note on the recipe a ``rebuild`` with these ``flags`` trained it with."""
    average = f"an average of the weights (half-life {config.ema:.0%} of the steps)" if config.ema else \
        "no weight average"
    if config.budget_minutes is not None:
        length = f"sized to a budget of {config.budget_minutes:g} minutes from the measured step speed"
    else:
        length = f"{config.epochs:g} epochs for every model of the family, the same compute on any machine"
    network = ", ".join(f"{key}={json.dumps(value, separators=(',', ':'))}"
                        for key, value in config.model_overrides.items())
    return (f"Retrained by `ibinn zoo rebuild {flags}`: "
            f"{config.optimizer} at lr {config.lr:g}, {config.schedule} schedule after a "
            f"{config.warmup:.0%} warm-up, {average}, augmentation "
            f"{config.augment or 'the data set default'}, label smoothing {config.label_smoothing:g}, "
            f"training noise σ = {config.sigma:g}; {length}"
            + (f"; network changes from the preset: {network}." if network else "."))
