"""Models and demo sets, loaded once per server, and the arrays the zoo ships with its models.

Models are cached per server (``cache_resource``); everything computed from a model is cached by
(model file, modification time, arguments), so reruns of a page and returning to it are instant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import warmup  # noqa: F401 - the server's one-time set-up, before any model is built
from registry import ModelEntry

import ibinn
from ibinn import zoo


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
