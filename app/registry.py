"""The models the dashboard can show, and where it finds them: the pretrained zoo and run folders
(``$IBINN_MODELS``, the runs folder). A :class:`ModelEntry` describes one from its file's metadata,
without loading its weights; one unusable file is listed with its reason, never fatal.

No maths lives in the app: everything numerical comes from :mod:`ibinn` and :mod:`ibinn.explore`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import sandbox
import streamlit as st

import ibinn
from ibinn import zoo
from ibinn.data import DATASET_LABELS, dataset_label

REPO = sandbox.REPO
#: Where run folders live; the Train page writes to ``<runs>/app/<name>``.
RUNS = sandbox.runs_dir()
APP_RUNS = RUNS / "app"


@dataclass(frozen=True)
class ModelEntry:
    """A model the dashboard can show: from the zoo, a run folder, or an upload."""

    key: str
    label: str
    path: str  #: the model.safetensors file
    family: str  #: demo-set family, e.g. "fashion-mnist"
    dataset_label: str
    mode: str
    gamma: float
    preset: str
    image_shape: tuple[int, ...]
    source: str  #: "zoo", "run", "upload"
    kind: str = "ibinn"
    metrics: dict = field(default_factory=dict, hash=False, compare=False)
    info: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def mtime(self) -> float:
        try:
            return os.path.getmtime(self.path)
        except OSError:
            return 0.0

    @property
    def gamma_text(self) -> str:
        return gamma_text(self.mode, self.gamma)


def gamma_text(mode: str, gamma: float) -> str:
    if mode == "ib":
        return "γ = ∞" if math.isinf(gamma) else f"γ = {gamma:g}"
    return {"lx-only": "γ = 0 (L_X only)", "ly-only": "γ = ∞ (L_Y only)"}.get(mode, mode)


def family_of(dataset: str, image_shape) -> str:
    """The demo-set family of a model trained on ``dataset``."""
    name = dataset.split(":", 1)[1] if dataset.startswith("demo:") else dataset
    if name in DATASET_LABELS:
        return name
    if "cifar" in name.lower() or tuple(image_shape) == (3, 32, 32):
        return "cifar10"
    if tuple(image_shape) == (1, 28, 28):
        return "fashion-mnist"
    return name


def _read_config(path: Path) -> dict:
    """A model file's config, checked (``ibinn.ModelConfig.from_json``) without loading weights.

    Raises ``ibinn.CheckpointError`` with a plain reason for any file that is not a valid model.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        cfg = json.loads(meta.get("config", "null"))
    except Exception as err:  # noqa: BLE001 - any unreadable file is a CheckpointError to the user
        raise ibinn.CheckpointError(f"not a readable model file ({type(err).__name__})") from err
    if not isinstance(cfg, dict):
        raise ibinn.CheckpointError("holds no ibinn model config")
    kind = cfg.get("model_type", "ibinn")
    if kind not in ibinn.MODEL_TYPES:
        raise ibinn.CheckpointError(f"holds a model of unknown type {str(kind)[:40]!r}")
    checked = ibinn.ModelConfig.from_json({k: v for k, v in cfg.items() if k != "model_type"})
    return {**checked.to_json(), "model_type": kind}


def _run_metrics(folder: Path) -> tuple[dict, dict]:
    """A run folder's metrics.json in the zoo card's layout (percent), and compute info."""
    try:
        raw = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}, {}
    test = {}
    if "test_error" in raw:
        test["error"] = 100 * float(raw["test_error"])
    if "test_bits_per_dim" in raw:
        test["bits_per_dim"] = float(raw["test_bits_per_dim"])
    info = {k: raw[k] for k in ("epochs", "device", "train_seconds", "parameters") if k in raw}
    return ({"test": test} if test else {}), info


def entry_from_file(path: str | Path, source: str, label: str | None = None, name: str | None = None
                    ) -> ModelEntry:
    """Describe a model file from its metadata, without loading its weights.

    ``label`` names it in the UI; by default ``"<name> · <data set> · <γ>"``, ``name`` being the
    run folder's (or the file's) name.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    cfg = _read_config(path)
    shape = tuple(cfg["image_shape"])
    dataset = cfg["dataset"]
    family = family_of(dataset, shape)
    gamma = float(cfg["gamma"])
    mode = cfg["mode"]
    kind = cfg["model_type"]  # baselines (ibinn.baselines) save their type here
    metrics, info = _run_metrics(path.parent)
    if label is None:
        name = name or (path.parent.name if path.name == "model.safetensors" else path.stem)
        what = gamma_text(mode, gamma) if kind == "ibinn" else kind
        label = f"{name} · {dataset_label(dataset or family)} · {what}"
    return ModelEntry(key=str(path.resolve()), label=label, path=str(path.resolve()), family=family,
                      dataset_label=dataset_label(dataset or family), mode=mode,
                      gamma=gamma, preset=cfg.get("preset", "?"), image_shape=shape,
                      source=source, kind=kind, metrics=metrics, info=info)


def _zoo_entries() -> list[ModelEntry]:
    """The zoo's models, read again only when its manifest changes (every change to the zoo
    rewrites it): reading every model's header took about 50 ms that each rescan made every
    session wait for."""
    try:
        stamp = (zoo.PRETRAINED_DIR / zoo.MANIFEST).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _zoo_entries_at(str(zoo.PRETRAINED_DIR), stamp)


@st.cache_data(show_spinner=False, max_entries=4)
def _zoo_entries_at(root: str, stamp: int) -> list[ModelEntry]:
    entries = []
    for card in zoo.list_models(Path(root)):
        label = f"{card.name} ({card.kind})" if card.kind != "ibinn" else card.name
        info = {k: getattr(card, k, None) for k in ("epochs", "device", "train_seconds", "parameters",
                                                      "command", "notes")}
        try:
            shape = tuple(_read_config(Path(card.path)).get("image_shape", ()))
        except Exception:  # noqa: BLE001 - a broken zoo file is skipped, not fatal
            continue
        entries.append(ModelEntry(
            key=card.name, label=label, path=str(card.path), family=card.family,
            dataset_label=card.dataset_label, mode=card.mode, gamma=float(card.gamma),
            preset=card.preset, image_shape=shape, source="zoo", kind=card.kind,
            metrics=dict(card.metrics or {}), info=info))
    return entries


def _folders() -> list[Path]:
    folders = [APP_RUNS, RUNS]
    for part in os.environ.get("IBINN_MODELS", "").split(os.pathsep):
        if part.strip():
            folders.insert(0, Path(part.strip()).expanduser())
    return folders


def _run_name(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(RUNS.resolve()))
    except ValueError:
        return folder.name


@st.cache_data(ttl=5, show_spinner=False)
def scan_models() -> tuple[list[ModelEntry], list[tuple[str, str]]]:
    """All models: the pretrained zoo, then run folders (``$IBINN_MODELS``, ``runs/``); and the
    model files that cannot be used, as ``(run name, plain reason)``: one bad file never stops
    the others from being listed.

    Re-read every 5 s, so that models finished by the Train page (or by hand) appear.
    """
    entries = _zoo_entries()
    broken: list[tuple[str, str]] = []
    seen = {Path(e.path).resolve() for e in entries}
    for folder in _folders():
        if not folder.is_dir():
            continue
        files = sorted(folder.glob("model.safetensors")) + sorted(folder.glob("*/model.safetensors")) \
            + sorted(folder.glob("*/*/model.safetensors"))
        for f in files:
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            name = _run_name(f.parent)
            try:
                entries.append(entry_from_file(f, "run", name=name))
            except Exception as err:  # noqa: BLE001 - listed as unusable, with its reason
                broken.append((name, str(err) if isinstance(err, ValueError) else type(err).__name__))
    return entries, broken


def discover_models() -> list[ModelEntry]:
    """The usable models of :func:`scan_models`."""
    return scan_models()[0]


def loadable(entries: list[ModelEntry]) -> list[ModelEntry]:
    return [e for e in entries if e.kind == "ibinn"]


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository where it lies inside it (messages show no server paths)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return Path(path).name
