"""Which models this session works with: the discovered models plus the files it loaded, the
sidebar's choice (shared by every page and by the address bar), and the pickers a page adds."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st
from loading import load_checked
from registry import ModelEntry, discover_models, entry_from_file, loadable

import ibinn

SELECTED = "selected_models"
EXTRA = "extra_model_paths"
PENDING = "_selection_pending"
QUERY = "model"  #: ``?model=fashion-mnist/gamma-1&model=...`` opens the app on these models


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
