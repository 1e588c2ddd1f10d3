"""Models: the pretrained zoo (or run folders) as cards, and loading a checkpoint."""

from __future__ import annotations

import math

import pandas as pd
import registry
import sandbox
import selection
import session
import streamlit as st
import widgets

import ibinn
from ibinn.plots import headline

st.title("Models")
widgets.explain("""
Each row of the table is one trained network. An **IB-INN** maps an image *x* to a latent *z* of
the same size; each class *y* owns one Gaussian blob centred on **μ_y** in that latent space. The
network classifies by asking which blob *z* is most likely in (Bayes' rule) and, because it is
invertible, it also knows how likely the image itself is (**bits/dim**: lower = more likely).

**γ** is the knob of the Information-Bottleneck loss. Small γ (→ 0) makes a good *generative*
model (low bits/dim, good calibration, nice samples) but a weaker classifier; large γ (→ ∞) makes a
sharper classifier whose blobs are pushed far apart, with worse likelihoods and over-confident
predictions. *class-NLL* is the standard generative classifier, a ResNet the purely discriminative
baseline.

The numbers in the table are measured on the test set (the full one for the bundled models):
**test error**, **bits/dim** and **calibration**, the geometric mean of three calibration errors
(ECE, MCE, ICE, in %; 0 = the model's confidence matches how often it is right).

Choose one model or several in the sidebar: every page then shows them side by side.
""")

entries = selection.all_entries()
if not entries:
    st.info("No models yet. The pretrained zoo (pretrained/) is empty and no run folder under "
            "runs/ holds a model.safetensors: train one on the **Train** page, or load a checkpoint "
            "below.")


NBSP = "\u00a0"  # keeps "12.34 %" on one line in a narrow table


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}{unit}"


def card(entry: registry.ModelEntry) -> None:
    """The details of one model, under the table."""
    with st.container(border=True):
        st.markdown(f"**{entry.label}**")
        what = (f"{entry.gamma_text} · mode `{entry.mode}`" if entry.kind == "ibinn"
                else f"discriminative baseline (`{entry.kind}`, no likelihood)")
        st.caption(f"{entry.dataset_label} · {what} · preset `{entry.preset}` · from {entry.source}")
        m = headline(entry.metrics)
        # a table, not st.metric: three big metric numbers do not fit a third of the page
        st.markdown("| test error | bits/dim (exact) | calibration |\n|:-:|:-:|:-:|\n"
                    f"| **{_fmt(m['error'], NBSP + '%')}** | **{_fmt(m['bits_per_dim'], '', 3)}** "
                    f"| **{_fmt(m['calibration_geo_mean'], NBSP + '%')}** |")
        table1_bits = (entry.metrics.get("test") or {}).get("bits_per_dim_table1")
        if table1_bits is not None:
            st.caption(f"Bits/dim as Table 1 computes it (official code: no normalisation Jacobian, "
                       f"no Gaussian constant): {table1_bits:.3f}")
        if m["auc"] is not None:
            mean = ("geometric mean over the OoD sets, as Table 1"
                    if "auc_typicality_arithmetic" in entry.metrics.get("ood_average", {})
                    else "mean over the OoD sets")  # cards evaluated before Table 1's conventions
            st.caption(f"OoD detection (typicality ROC-AUC, {mean}): {m['auc']:.1f} %")
        info = entry.info
        bits = []
        if info.get("epochs"):
            bits.append(f"{float(info['epochs']):g} epochs")
        if info.get("train_seconds"):
            bits.append(f"{float(info['train_seconds']) / 60:.1f} min")
        if info.get("device"):
            bits.append(f"on {info['device']}")
        if info.get("parameters"):
            bits.append(f"{info['parameters'] / 1e6:.2f}M parameters")
        if bits:
            st.caption("Compute: " + ", ".join(bits))
        if info.get("command"):
            st.code(str(info["command"]), language="bash", wrap_lines=True)
        if info.get("notes"):
            st.caption(str(info["notes"]))
        selected = st.session_state.get(selection.SELECTED, [])
        if entry.kind != "ibinn":
            st.caption("Listed here and in the γ comparison; the latent pages need an IB-INN.")
        elif entry.key in selected:
            st.caption("✔ selected")
        elif st.button("Select", key=f"select-{entry.key}"):
            selection.select_later(entry.key)
            st.rerun()


def row(entry: registry.ModelEntry) -> dict:
    """One line of the models table: what tells models apart, numbers as numbers (so they sort)."""
    m = headline(entry.metrics)
    return {"data set": entry.dataset_label, "model": entry.label,
            "kind": entry.gamma_text if entry.kind == "ibinn" else f"{entry.kind} (no likelihood)",
            "test error %": m["error"], "bits/dim": m["bits_per_dim"],
            "calibration %": m["calibration_geo_mean"], "OoD AUC %": m["auc"],
            "epochs": entry.info.get("epochs"), "source": entry.source}


ordered = sorted(entries, key=lambda e: (e.dataset_label, e.kind != "ibinn", e.mode != "ib", e.gamma))
if ordered:
    st.caption("Click a column's name to sort by it. Calibration: geometric mean of ECE, MCE and ICE; "
               "OoD AUC: typicality ROC-AUC averaged over the OoD sets.")
    # every row at once (no scrolling inside the table), a dash where a model has no such figure
    st.dataframe(pd.DataFrame([row(e) for e in ordered]), hide_index=True, key="models_table",
                 height="content", placeholder="–",
                 column_config={"test error %": st.column_config.NumberColumn(format="%.2f"),
                                "bits/dim": st.column_config.NumberColumn(format="%.3f"),
                                "calibration %": st.column_config.NumberColumn(format="%.2f"),
                                "OoD AUC %": st.column_config.NumberColumn(format="%.1f"),
                                "epochs": st.column_config.NumberColumn(format="%g")})
    by_key = {e.key: e for e in ordered}
    selected_now = [k for k in st.session_state.get(selection.SELECTED, []) if k in by_key]
    first = list(by_key).index(selected_now[0]) if selected_now else 0
    shown = st.selectbox("Details of", list(by_key), index=first, key="models_details",
                         format_func=lambda k: f"{by_key[k].dataset_label} · {by_key[k].label}",
                         help="Training command, compute, notes, and a button to select the model.")
    card(by_key[shown])

broken = registry.scan_models()[1]
if broken:
    with st.expander(f"{len(broken)} model file{'s' if len(broken) > 1 else ''} under runs/ cannot be "
                     f"used"):
        st.markdown("\n".join(f"- `{name}`: {sandbox.hide_paths(reason)}" for name, reason in broken))

st.subheader("Load a checkpoint")
FLASH = "_models_flash"


def load_file(path, label: str | None = None) -> None:
    """Add a model file to the session's list; say what happened after the rerun that shows it."""
    try:
        entry = selection.add_model_file(path, label=label)
    except ibinn.CheckpointError as err:  # named as the visitor knows it, not by the server's path
        shown = label.removeprefix("upload · ") if label else registry.display_path(path)
        st.error(f"Could not load the checkpoint: {sandbox.hide_paths(str(err), {str(path): shown})}")
        return
    st.session_state[FLASH] = f"Loaded {entry.label}" + (
        "; it is now selected in the sidebar." if entry.kind == "ibinn" else " (a baseline: listed above).")
    st.rerun()  # so that the sidebar lists the new model


if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))
left, right = st.columns(2)
with left:
    path = st.text_input("Path to a run folder or a .safetensors file", key="load_path",
                         help="under pretrained/, runs/, data/ or $IBINN_DATA on this server")
    if st.button("Load from path", key="load_path_button") and path:
        try:
            load_file(sandbox.allowed_path(path, "model file"))
        except sandbox.PathNotAllowed as err:
            st.error(f"Could not load the checkpoint: {err}")
with right:
    upload = st.file_uploader("…or upload a model.safetensors", key="upload_model")
    if upload is not None:
        saved = session.save_upload(upload.getvalue(), upload.name)
        if st.session_state.get("_last_upload") != str(saved):
            st.session_state["_last_upload"] = str(saved)  # load_file reruns on success
            load_file(saved, label=f"upload · {upload.name}")
            del st.session_state["_last_upload"]  # failed: try again (and say why) on the next run
        else:
            st.caption(f"{upload.name} is loaded.")
