"""Shared pieces of the dashboard: the model registry, cached loaders and the model selector.

No maths lives here: everything numerical comes from :mod:`ibinn` and :mod:`ibinn.explore`;
this module only finds models, caches what ``ibinn`` computes, and holds the session state.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import figures
import numpy as np
import plotly.graph_objects as go
import sandbox
import streamlit as st

import ibinn
from ibinn import explore, images, zoo
from ibinn.data import DATASET_LABELS, dataset_label
from ibinn.train import SNAPSHOTS_FILE, load_snapshots

# What ibinn imports on first use (FrEIA, scikit-learn: about 2 s together) is imported here, once
# per server, so that the first visitor to open a page that builds a network or fits a PCA does not
# wait for it. Not in a background thread: code that finds a module half-imported by another thread
# in sys.modules fails (plotly's validators met a half-imported pandas that way).
ibinn.preload()

# Streamlit ends every script run with a full garbage collection (``runner.postScriptGC``) that holds
# the GIL while it walks every tracked object, so every other session waits for it: with the ~240,000
# objects torch, plotly and streamlit create on import it took 0.6 s here (2 busy cores), 0.13 s once
# they were left out. They live as long as the server, so the collector skips them from now on.
gc.freeze()

REPO = sandbox.REPO
#: Where run folders live; the Train page writes to ``<runs>/app/<name>``.
RUNS = sandbox.runs_dir()
APP_RUNS = RUNS / "app"
PathNotAllowed = sandbox.PathNotAllowed
allowed_path = sandbox.allowed_path
hide_paths = sandbox.hide_paths
SELECTED = "selected_models"
EXTRA = "extra_model_paths"
PENDING = "_selection_pending"
QUERY = "model"  #: ``?model=fashion-mnist/gamma-1&model=...`` opens the app on these models

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


def all_entries() -> list[ModelEntry]:
    """Discovered models plus the ones loaded in this session (path or upload)."""
    entries = list(discover_models())
    known = {e.path for e in entries}
    for path, label in st.session_state.get(EXTRA, {}).items():
        if path not in known:
            try:
                entries.append(entry_from_file(path, "upload", label=label))
            except ibinn.CheckpointError:
                continue
    return entries


def loadable(entries: list[ModelEntry]) -> list[ModelEntry]:
    return [e for e in entries if e.kind == "ibinn"]


def add_model_file(path: str | Path, label: str | None = None) -> ModelEntry:
    """Validate a model file by loading it, then add it to this session's model list."""
    path = Path(path)
    load_checked(path)  # raises CheckpointError with a clear message
    entry = entry_from_file(path, "upload", label=label)
    known = next((e for e in discover_models() if e.path == entry.path), None)
    if known is not None:  # already listed (zoo or run folder): select that entry
        entry = known
    else:
        st.session_state.setdefault(EXTRA, {})[entry.path] = entry.label
    if entry.kind == "ibinn":  # baselines have no latent to explore
        select_later(entry.key)
    return entry


def select_later(key: str) -> None:
    """Add a model to the sidebar selection from the next run on (call ``st.rerun()`` after): a
    widget's state cannot change once the widget is drawn in a run."""
    st.session_state.setdefault(PENDING, []).append(key)


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository where it lies inside it (messages show no server paths)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return Path(path).name


def session_id() -> str:
    """A random token of this browser session (kept in its state): its jobs belong to it."""
    if "_owner" not in st.session_state:
        st.session_state["_owner"] = secrets.token_hex(16)
    return st.session_state["_owner"]


def session_folder() -> Path:
    """A temporary folder of this session's own, deleted when the session ends (its state is
    garbage-collected) or the server stops."""
    if "_session_folder" not in st.session_state:
        st.session_state["_session_folder"] = tempfile.TemporaryDirectory(prefix="ibinn-session-")
    return Path(st.session_state["_session_folder"].name)


def save_upload(data: bytes, name: str) -> Path:
    """Store an uploaded model file in this session's folder, named by its content."""
    path = session_folder() / f"{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    if not path.exists():
        path.write_bytes(data)
    return path


def _default_selection(entries: list[ModelEntry]) -> list[str]:
    """A bundled γ = 1 model, the smallest images first (the quickest start on a laptop); else
    any γ = 1 model; else the first one."""
    gamma_1 = [e for e in entries if e.mode == "ib" and e.gamma == 1.0]
    first = sorted(gamma_1, key=lambda e: (e.source != "zoo", math.prod(e.image_shape))) or entries
    return [first[0].key] if first else []


def model_selector() -> list[ModelEntry]:
    """The sidebar multiselect shared by every page (``st.session_state["selected_models"]``)."""
    entries = loadable(all_entries())
    by_key = {e.key: e for e in entries}
    if SELECTED not in st.session_state:  # a new session: the link's models, else the default
        linked = [k for k in st.query_params.get_all(QUERY) if k in by_key]
        st.session_state[SELECTED] = linked or _default_selection(entries)
    wanted = [*st.session_state[SELECTED], *st.session_state.pop(PENDING, [])]
    # keep only models that still exist, each once
    st.session_state[SELECTED] = [k for k in dict.fromkeys(wanted) if k in by_key]
    if st.query_params.get_all(QUERY) != st.session_state[SELECTED]:
        st.query_params[QUERY] = st.session_state[SELECTED]  # the address bar shares this choice
    st.sidebar.multiselect(
        "Models", options=list(by_key), key=SELECTED, format_func=lambda k: by_key[k].label,
        help="One model, or several to compare side by side. Every page uses this choice.")
    if not entries:
        st.sidebar.warning("No models found. Train one on the **Train** page or load a "
                           "checkpoint on the **Models** page.")
    return selected_entries()


def selected_entries() -> list[ModelEntry]:
    by_key = {e.key: e for e in loadable(all_entries())}
    return [by_key[k] for k in st.session_state.get(SELECTED, []) if k in by_key]


def require_models(max_models: int | None = None) -> list[ModelEntry]:
    """The selected models, or a message and a stop when none is selected."""
    chosen = selected_entries()
    if not chosen:
        st.info("Choose a model in the sidebar (**Models**) to use this page.")
        st.stop()
    return chosen[:max_models] if max_models else chosen


def pick_one(chosen: list[ModelEntry], key: str) -> ModelEntry:
    if len(chosen) == 1:
        return chosen[0]
    labels = {e.key: e.label for e in chosen}
    k = st.selectbox("Model for this page", list(labels), format_func=labels.get, key=key)
    return next(e for e in chosen if e.key == k)


def explain(markdown: str) -> None:
    with st.expander("What am I looking at?"):
        st.markdown(markdown)


# --------------------------------------------------------------------------- caches
# Models are cached per server (``cache_resource``); everything computed from a model is cached by
# (model file, modification time, arguments), so reruns of a page and returning to it are instant.

def load_checked(path: str | Path, device: str = "cpu"):
    """``ibinn.load``, with every failure a ``CheckpointError`` in plain words (no traceback).
    A bundled model is loaded by its zoo name, so that its files are checked against the manifest."""
    try:
        name = zoo.name_of(str(path), zoo.PRETRAINED_DIR)
        if name is not None:
            return zoo.load(name, device=device, root=zoo.PRETRAINED_DIR)
        return ibinn.load(path, device=device)
    except ibinn.CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - e.g. a file that vanished or cannot be read
        raise ibinn.CheckpointError(f"{Path(path).name} cannot be loaded ({type(err).__name__}: "
                                    f"{str(err)[:200]})") from err


@st.cache_resource(show_spinner=False, max_entries=16)
def load_model(path: str, mtime: float) -> ibinn.IBINN:
    """The model at ``path`` on the best device (CUDA when present), loaded once per server."""
    return load_checked(path, device="auto")


def model_of(entry: ModelEntry) -> ibinn.IBINN:
    return load_model(entry.path, entry.mtime)


@st.cache_resource(show_spinner=False)
def demo_data(family: str) -> ibinn.ImageData | None:
    """The shipped demo set of a family, or None when it is not shipped."""
    try:
        return ibinn.load_dataset(f"demo:{family}")
    except ibinn.DataError:
        return None


def demo_of(entry: ModelEntry) -> ibinn.ImageData:
    """The demo set that fits ``entry``, or a warning and a stop when none is shipped."""
    data = demo_data(entry.family)
    if data is None or tuple(data.image_shape) != tuple(entry.image_shape):
        st.warning(f"No demo images for {entry.label} (family {entry.family!r}, "
                   f"shape {entry.image_shape}) are shipped in pretrained/.")
        st.stop()
    return data


@st.cache_data(show_spinner=False, max_entries=32)
def latent_view(path: str, mtime: float, family: str) -> explore.LatentView:
    """The demo set run through the model once (latents, posteriors, bits/dim, typicality)."""
    data = demo_data(family)
    return explore.summarize(load_model(path, mtime), data.images, data.labels)


def view_of(entry: ModelEntry) -> explore.LatentView:
    demo_of(entry)
    with st.spinner(f"Running the demo set through {entry.label} (once per model)…"):
        return latent_view(entry.path, entry.mtime, entry.family)


@st.cache_resource(show_spinner=False, max_entries=32)
def projection(path: str, mtime: float, family: str, method: str,
               classes: tuple[int, ...] | None = None) -> explore.Projection:
    """A fitted projection (a resource: a UMAP reducer is large and need not be copied).
    ``classes``: the three classes of the class plane. A zoo model's shipped UMAP embedding is
    used as it is, new latents placed by ``explore.knn_embedding`` (no reducer is fitted)."""
    view = latent_view(path, mtime, family)
    shipped_umap = derived_arrays(path, mtime).get("projection/umap/xy")
    if method == "umap" and shipped_umap is not None and len(shipped_umap) == len(view.z):
        return explore.Projection("umap", anchors=view.z, anchor_xy=shipped_umap.astype(np.float64))
    return explore.fit_projection(method, view.z, view.mu, classes=classes)


@st.cache_data(show_spinner=False, max_entries=64)
def projected(path: str, mtime: float, family: str, method: str,
              classes: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2D coordinates of the demo latents and of the class means."""
    proj = projection(path, mtime, family, method, classes)
    view = latent_view(path, mtime, family)
    xy = proj.anchor_xy if proj.anchors is not None else proj.transform(view.z)
    return xy, proj.transform(view.mu)


def projection_of(entry: ModelEntry, method: str, classes: tuple[int, ...] | None = None
                  ) -> tuple[explore.Projection, np.ndarray, np.ndarray]:
    """The fitted projection of ``entry``'s demo latents, their 2D points and the class means'."""
    view_of(entry)
    message = ("Fitting UMAP (the first time on this server: compiling and fitting, this can take "
               "a minute; later views are instant)…" if method == "umap" else "Projecting…")
    with st.spinner(message):
        xy, mu_xy = projected(entry.path, entry.mtime, entry.family, method, classes)
    return projection(entry.path, entry.mtime, entry.family, method, classes), xy, mu_xy


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation(path: str, mtime: float, family: str, limit: int = 500) -> dict:
    """Table-1 metrics of a model on (part of) its demo set and the default OoD sets."""
    from ibinn.evaluate import evaluate

    data = demo_data(family)
    per_class = max(1, limit // len(data.classes))
    index = np.concatenate([np.flatnonzero(data.labels.numpy() == c)[:per_class]
                            for c in range(len(data.classes))])
    return evaluate(load_model(path, mtime), data.subset(index), progress=False)


@st.cache_data(show_spinner=False, max_entries=64)
def samples(path: str, mtime: float, n: int, temperature: float, seed: int,
            independent: bool = False, family: str | None = None) -> np.ndarray:
    """``explore.sample_grid``: classes x ``n`` samples, around the class means ``μ_y``, or, given
    the demo-set ``family``, around the mean latent of each class's demo images (:func:`centroids`)."""
    centres = None if family is None else centroids(path, mtime, family)
    return explore.sample_grid(load_model(path, mtime), n, temperature=temperature, seed=seed,
                               independent=independent, centres=centres)


@st.cache_data(show_spinner=False, max_entries=64)
def centroids(path: str, mtime: float, family: str) -> np.ndarray:
    """``explore.class_centroids`` of the demo latents: shipped with a zoo model, else from the
    demo-set pass."""
    shipped = derived_arrays(path, mtime).get("latent/centroids")
    if shipped is not None:
        return shipped.astype(np.float64)
    view = latent_view(path, mtime, family)
    return explore.class_centroids(view.z, view.labels, len(view.mu))


@st.cache_data(show_spinner=False, max_entries=64)
def recognised(judge_path: str, judge_mtime: float, path: str, mtime: float, n: int,
               temperature: float, seed: int, independent: bool = False,
               family: str | None = None) -> np.ndarray:
    """``explore.recognised_by``: the share of each row of :func:`samples` that the classifier at
    ``judge_path`` assigns to the row's class."""
    grid = samples(path, mtime, n, temperature, seed, independent, family)
    return explore.recognised_by(load_model(judge_path, judge_mtime), grid)


@st.cache_data(show_spinner=False, max_entries=64)
def separation(path: str, mtime: float, family: str) -> tuple[float, float, float]:
    """``explore.class_separation`` (mean distance between class means, and the noise's length)
    and ``explore.centroid_offset`` (mean distance of the data centroids from the class means)."""
    model = load_model(path, mtime)
    return (*explore.class_separation(model), explore.centroid_offset(model, centroids(path, mtime, family)))


@st.cache_data(show_spinner=False, max_entries=64)
def spread_in_all_dimensions(path: str, mtime: float, family: str) -> float:
    """``explore.spread_ratio`` of the demo latents in all their dimensions: shipped with a zoo
    model, else from the demo-set pass."""
    shipped = derived_arrays(path, mtime).get("latent/spread_ratio")
    if shipped is not None:
        return float(shipped)
    view = latent_view(path, mtime, family)
    return explore.spread_ratio(view.z, view.labels, len(view.mu))


def sample_caption(entry: ModelEntry, n: int, temperature: float, seed: int, independent: bool,
                   family: str | None) -> str:
    """What the Sampling page says under a grid: the share of its samples the family's ResNet
    recognises (and, for comparison, the share around the other centre), how far the data
    centroids lie from the class means, and the model's test error."""
    words = []
    judge = next((e for e in family_entries(entry.family) if e.kind == "resnet"), None)
    other = None if family is not None or demo_data(entry.family) is None else entry.family
    if judge is not None:
        args = (judge.path, judge.mtime, entry.path, entry.mtime, n, temperature, seed, independent)
        with st.spinner("Asking the ResNet…"):
            here, there = (recognised(*args, centre).mean() for centre in (family, other))
        where = "μ_y" if family is not None else "the data centroids"
        words.append(f"The ResNet recognises **{here:.0%}** of these samples as their row's class "
                     f"({there:.0%} around {where}, same noise; chance is "
                     f"{1 / len(model_of(entry).classes):.0%}).")
    if demo_data(entry.family) is not None:
        apart, noise, offset = separation(entry.path, entry.mtime, entry.family)
        words.append(f"The centroids of real images lie {offset:.1f} from μ_y; class means lie "
                     f"{apart:.1f} apart; the noise ε is ≈ {noise:.0f} long.")
    error = entry.metrics.get("test", {}).get("error")
    if error is not None:
        words.append(f"Test error {error:.1f} %.")
    return " ".join(words)


@st.cache_data(show_spinner=False, max_entries=64)
def interpolation(path: str, mtime: float, a: np.ndarray, b: np.ndarray, steps: int
                  ) -> explore.Interpolation:
    """``explore.interpolation`` between two uint8 images."""
    return explore.interpolation(load_model(path, mtime), a, b, steps)


class _BuiltFigure(go.Figure):
    """A figure that is drawn as it was built: :meth:`to_dict`, which ``st.plotly_chart`` calls on
    every rerun (a deep copy, every array encoded as base64: a fifth of a warm rerun of the OoD
    page), is computed once."""

    def to_dict(self) -> dict:
        if getattr(self, "_built_dict", None) is None:
            self._built_dict = super().to_dict()
        return self._built_dict


@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(name: str, *args, **kwargs) -> go.Figure:
    fig = getattr(figures, name)(*args, **kwargs)
    fig.__class__ = _BuiltFigure  # not _BuiltFigure(fig): that copy would validate it all again
    return fig


def figure(builder: Callable[..., go.Figure], *args, **kwargs) -> go.Figure:
    """``builder(*args, **kwargs)`` from :mod:`figures`, built once per distinct arguments:
    plotly validates every property it is given, which costs tenths of a second per figure on a
    slow CPU and would be paid again on every rerun. (Shared and drawn from its first
    ``to_dict``, so never modify the result.)"""
    return _figure(builder.__name__, *args, **kwargs)


# --------------------------------------------------------------------------- widgets

def image_pick(data: ibinn.ImageData, key: str, default_class: int = 0, label: str = "Image"
               ) -> int:
    """Class + index pickers for one demo image; returns its index in ``data``."""
    c1, c2 = st.columns(2)
    cls = c1.selectbox(f"{label}: class", range(len(data.classes)), index=default_class,
                       format_func=lambda i: data.classes[i], key=f"{key}_class")
    members = np.flatnonzero(data.labels.numpy() == cls)
    i = c2.number_input(f"{label}: index within class", 0, len(members) - 1, 0, key=f"{key}_index")
    return int(members[int(i)])


@dataclass(frozen=True)
class Distortion:
    """What :func:`distortion_controls` chose."""

    index: int  #: the demo image
    name: str  #: the transform (``explore.TRANSFORMS``)
    top: float  #: its largest strength
    steps: int | None  #: the number of strengths, where the page asked for a slider

    @property
    def spec(self) -> explore.TransformSpec:
        return explore.TRANSFORMS[self.name]


def distortion_controls(data: ibinn.ImageData, key: str, transforms: list[str],
                        steps: int | None = None) -> Distortion:
    """One demo image, a distortion of ``transforms`` and its largest strength, in three columns
    (widget keys ``<key>_image_*``, ``<key>_transform``, ``<key>_max_<transform>``); a "Steps"
    slider (``<key>_steps``) with default ``steps`` where given."""
    c1, c2, c3 = st.columns([1.2, 1, 1])
    with c1:
        index = image_pick(data, f"{key}_image", 0, "Image")
    with c2:
        name = st.radio("Distortion", transforms, format_func=lambda n: explore.TRANSFORMS[n].label,
                        key=f"{key}_transform", horizontal=True)
        spec = explore.TRANSFORMS[name]
        st.caption(spec.help)
    with c3:
        top = st.slider(f"Largest {spec.strength_label}", 0.05 * spec.max_strength, spec.max_strength,
                        spec.max_strength if name != "noise" else 0.3, key=f"{key}_max_{name}")
        if steps is not None:
            steps = st.slider("Steps", 5, 25, steps, key=f"{key}_steps")
    return Distortion(index, name, float(top), steps)


def uploaded_image(label: str, key: str, image_shape, stop_on_error: bool = True
                   ) -> tuple[np.ndarray, list[str]] | None:
    """A file uploader: its image converted to ``image_shape`` (:func:`read_image`) with the
    conversion notes, or None without an upload. An unreadable upload shows why and stops the page
    (or, with ``stop_on_error=False``, counts as no upload)."""
    upload = st.file_uploader(label, key=key)
    if upload is None:
        return None
    try:
        return read_image(upload.getvalue(), upload.name, image_shape)
    except ValueError as err:
        st.error(str(err))
        if stop_on_error:
            st.stop()
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def _decode_image(data: bytes, image_shape: tuple) -> tuple[np.ndarray | None, list[str], str]:
    """``images.load_image`` of an upload, once per distinct content and shape (Streamlit hashes
    the bytes), so that reruns do not decode it again: ``(array, notes, "")``, or
    ``(None, [], message)`` for a file that is refused (cached too, so that a hostile upload
    costs one decode, not one per rerun)."""
    try:
        array, notes = images.load_image(data, image_shape)
    except images.ImageError as err:
        return None, [], str(err)
    return array, notes, ""


def read_image(data: bytes, name: str, image_shape) -> tuple[np.ndarray, list[str]]:
    """Decode uploaded bytes safely and convert them to the model's format
    (``ibinn.images.load_image``, capped at ``ibinn.limits``' ``max_image_pixels``).

    Raises ValueError (an ``images.ImageError``) with a message for the user that names the file
    when the bytes are not a readable image.
    """
    array, notes, error = _decode_image(bytes(data), tuple(int(s) for s in image_shape))
    if array is None:
        raise images.ImageError(f"{name} is not an image this app can read: {error}.")
    return array, notes


# --------------------------------------------------------------------------- training snapshots

@st.cache_data(show_spinner=False, max_entries=32)
def _aligned_snapshots(out: str, mtime_ns: int) -> dict[str, np.ndarray]:
    snaps = load_snapshots(out)
    if snaps:
        snaps["xy"], snaps["mu_xy"] = explore.align_frames(snaps["xy"], snaps["mu_xy"])
    return snaps


def training_snapshots(out: str | Path) -> dict[str, np.ndarray]:
    """A run's latent snapshots (:func:`ibinn.train.load_snapshots`), frames aligned by
    :func:`ibinn.explore.align_frames`; empty when it has none. Cached per version of the file, so
    that the Train page's polling reads it again only when the job has written a new frame."""
    path = Path(out) / SNAPSHOTS_FILE
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return _aligned_snapshots(str(out), mtime_ns)


# --------------------------------------------------------------------------- shipped latent views
# numba reads its cache folder once, when first imported (by umap, lazily): set it before that.
os.environ.setdefault("NUMBA_CACHE_DIR", str(sandbox.numba_cache_dir()))

# A zoo model ships its latent page's first view (``explore.projection_arrays``, in derived.npz):
# points and scores load in milliseconds, so that view runs no demo-set inference. Anything that
# needs the latents themselves (neighbours, another class plane, an image's posterior) computes
# them on first use, as for models outside the zoo.

@st.cache_data(show_spinner=False, max_entries=64)
def derived_arrays(path: str, mtime: float) -> dict[str, np.ndarray]:
    """``zoo.derived`` of the zoo model at ``path``; empty for other models, and for a zoo model
    whose derived.npz is missing or damaged (its views are then computed, as before)."""
    name = zoo.name_of(path, zoo.PRETRAINED_DIR)
    if name is None:
        return {}
    try:
        return zoo.derived(name)
    except ibinn.CheckpointError:
        return {}


def scores_of(entry: ModelEntry) -> explore.PointScores:
    """Per-image scores of ``entry`` on its demo set: shipped, else from the demo-set pass."""
    data = demo_of(entry)
    scores = explore.shipped_scores(derived_arrays(entry.path, entry.mtime), data.labels.numpy(),
                                    entry.image_shape)
    return scores if scores is not None else explore.PointScores.of(view_of(entry))


def default_plane(entry: ModelEntry) -> tuple[int, int, int]:
    """The class plane shown first: the two classes ``entry`` confuses most, and the class most
    confused with either (``explore.most_confused_triple``)."""
    scores = scores_of(entry)
    n_classes = len(demo_of(entry).classes)
    return explore.most_confused_triple(
        explore.confusion_matrix(scores.labels, scores.predicted, n_classes))


def points_of(entry: ModelEntry, method: str, classes: tuple[int, ...] | None = None
              ) -> tuple[explore.Projection, np.ndarray, np.ndarray]:
    """Like :func:`projection_of`, from the shipped arrays where the zoo ships this view (its
    projection then names the axes but places no new latents)."""
    arrays = derived_arrays(entry.path, entry.mtime)
    shipped_plane = tuple(int(k) for k in arrays.get("projection/class-plane/classes", ()))
    if method != "class-plane" or classes == shipped_plane:
        found = explore.shipped_projection(arrays, method, demo_of(entry).classes)
        if found is not None and len(found[1]) == len(demo_of(entry).labels):
            return found
    proj, xy, mu_xy = projection_of(entry, method, classes)
    if method == "class-plane":  # a copy: the cached projection is shared
        proj = dataclasses.replace(proj, titles=explore.plane_titles(classes, demo_of(entry).classes))
    return proj, xy, mu_xy


@st.cache_resource(show_spinner=False, max_entries=64)
def mean_projection(path: str, mtime: float, method: str, classes: tuple[int, ...] | None = None
                    ) -> explore.Projection:
    """A projection of ``explore.MEAN_PROJECTIONS``, fitted on the model's class means alone (no
    demo-set pass): the one a zoo model's shipped points were drawn in."""
    mu = load_model(path, mtime).mu.detach().float().cpu().numpy()
    return explore.fit_projection(method, mu, mu, classes=classes)


def place(entry: ModelEntry, method: str, z: np.ndarray, classes: tuple[int, ...] | None = None
          ) -> np.ndarray:
    """2D points of new latents ``z`` in the projection that :func:`points_of` shows for ``entry``."""
    if method in explore.MEAN_PROJECTIONS:
        return mean_projection(entry.path, entry.mtime, method, classes).transform(z)
    return projection_of(entry, method, classes)[0].transform(z)


@st.cache_data(show_spinner=False, max_entries=256)
def neighbours(path: str, mtime: float, family: str, index: int, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``explore.nearest_neighbours`` of demo image ``index`` among the demo latents."""
    return explore.nearest_neighbours(latent_view(path, mtime, family).z, index, k)


# --------------------------------------------------------------------------- generative vs discriminative
# A zoo model ships its OoD-detector scores (``explore.detector_arrays``, in derived.npz), so the
# "Generative vs discriminative" page opens without running any OoD set through two models.

def family_entries(family: str) -> list[ModelEntry]:
    """Every model of one demo-set family, IB-INNs and baselines alike (the sidebar lists only
    IB-INNs)."""
    return [e for e in all_entries() if e.family == family]


def counterpart(entry: ModelEntry, family: str = "cifar10") -> ModelEntry | None:
    """The IB-INN of ``family`` trained as ``entry`` was (same mode and γ), zoo models first;
    None when there is none."""
    same = [e for e in loadable(family_entries(family))
            if e.mode == entry.mode and e.gamma == entry.gamma]
    return min(same, key=lambda e: e.source != "zoo", default=None)


@st.cache_data(show_spinner=False, max_entries=32)
def detector_scores(path: str, mtime: float, family: str) -> explore.DetectorScores:
    """``explore.detector_scores`` of a model on its family's demo set: shipped with zoo models,
    computed (tens of seconds) for others."""
    shipped = explore.DetectorScores.from_arrays(derived_arrays(path, mtime))
    return shipped or explore.detector_scores(load_model(path, mtime), demo_data(family))


def detectors_of(entry: ModelEntry) -> explore.DetectorScores:
    """:func:`detector_scores` of ``entry``, with a spinner for the models that compute them."""
    demo_of(entry)
    with st.spinner(f"Scoring the demo set and its OoD sets with {entry.label} (once per model)…"):
        return detector_scores(entry.path, entry.mtime, entry.family)


@st.cache_data(show_spinner=False, max_entries=64)
def scored_trajectory(path: str, mtime: float, family: str, index: int, transform: str,
                      strengths: tuple[float, ...], reference_nll_mean: float | None
                      ) -> explore.Trajectory:
    """``explore.trajectory`` of demo image ``index`` against a given mean NLL (None for a
    model without a likelihood): no demo-set pass, unlike :func:`trajectory`."""
    return explore.trajectory(load_model(path, mtime), demo_data(family).images[index], transform,
                              np.asarray(strengths), reference_nll_mean)


@st.cache_data(show_spinner=False, max_entries=64)
def classify_against(path: str, mtime: float, image: np.ndarray, reference_nll_mean: float | None
                     ) -> explore.LatentView:
    """One uint8 image ``(C, H, W)`` through any classifier, typicality against a given mean NLL."""
    return explore.summarize(load_model(path, mtime), image[None],
                             reference_nll_mean=reference_nll_mean)


# --------------------------------------------------------------------------- the paper's claims
@st.cache_data(ttl=5, show_spinner=False)  # as scan_models: a re-evaluated card shows up soon
def zoo_claims(family: str) -> tuple[str, str]:
    """The paper's claims checked on the zoo cards of ``family`` as a Markdown table
    (:mod:`ibinn.claims`; empty when the zoo has no card of it), and a note when some of its cards
    predate Table 1's conventions."""
    from ibinn import claims  # here: only the γ page needs it

    cards = [c for c in zoo.list_models() if c.family == family]
    if not cards:
        return "", ""
    return claims.markdown_claims(claims.check_claims(cards, family)), claims.stale_note(cards, family)
