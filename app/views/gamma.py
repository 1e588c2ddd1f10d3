"""γ comparison: metrics against γ from the model cards, calibration and OoD histograms."""

from __future__ import annotations

import math

import detection
import figures
import paper
import registry
import selection
import streamlit as st
import widgets
from figure_cache import figure

from ibinn import ood

st.title("γ comparison")
widgets.explain("""
The Information-Bottleneck loss L = L_X − γ·L_Y trades two goals. **L_X** asks the network to model
the images well (low bits/dim); **L_Y** asks it to classify well. The curves show every model of
one data set against γ on a log axis; γ = 0 (images only) and γ = ∞ (labels only) are drawn at the
ends, the standard generative classifier (*class-NLL*) at γ = 1/dim where the paper places it.

* **error** falls as γ grows: the classifier gets sharper;
* **bits/dim** rises: the model of the images gets worse;
* **calibration error** (ECE, MCE, ICE, their geometric mean) usually rises: large-γ models are
  over-confident. The **reliability diagram** shows it directly: a calibrated model lies on the
  diagonal (of all predictions made with 80 % confidence, 80 % are right).
* **OoD detection** (ROC-AUC of the typicality test, averaged over Table 1's OoD sets by the
  geometric mean as the paper does): how well bits/dim separate real test images from distorted
  ones; the histograms show the two distributions for the selected models.

Dashed lines (in the curves and the reliability diagram) are discriminative baselines, plain
classifiers without a likelihood, when the zoo holds one: they have no bits/dim and no typicality
test. The curves read the metrics stored in the model cards (measured on the full test set);
nothing is evaluated here unless you ask for it for models without a card.
""")

chosen = selection.require_models()
families = sorted({e.family for e in chosen})
family = families[0] if len(families) == 1 else st.radio("Data set", families, horizontal=True,
                                                         key="gamma_family")
members = [e for e in selection.all_entries() if e.family == family]
ibinns = [e for e in members if e.kind == "ibinn"]
baselines = [e for e in members if e.kind != "ibinn"]

fill = st.toggle("Evaluate models without card metrics on 500 demo images", value=False,
                 key="gamma_fill", help="Run-folder models only know their test error and bits/dim; "
                 "this computes calibration and OoD scores for them (once per model, then cached).")


def metrics_of(entry: registry.ModelEntry) -> tuple[dict, str]:
    """The card's metrics; an evaluation on the demo set only where the card lacks them."""
    if "reliability" in entry.metrics or not fill:
        return entry.metrics, "card" if entry.source == "zoo" else "run folder"
    with st.spinner(f"Evaluating {entry.label} on the demo set (once)…"):
        return paper.evaluation(entry.path, entry.mtime, entry.family), "500 demo images"


rows, sources = [], {}
dim = math.prod(ibinns[0].image_shape) if ibinns else 1
for e in ibinns:
    m, sources[e.label] = metrics_of(e)
    rows.append({"name": e.label, "mode": e.mode, "gamma": e.gamma, "dim": dim, "report": m})
lines = {e.label: e.metrics for e in baselines}
st.plotly_chart(figure(figures.gamma_curves, rows, lines), key="gamma_curves")
st.caption(f"{len(rows)} IB-INN models of {family}; metrics from "
           + ", ".join(f"{k}: {v}" for k, v in sources.items())
           + ". “Calibration geo. mean” is the geometric mean of three calibration errors (ECE, MCE "
             "and ICE, the paper's appendix C), not the ECE alone that the Generative vs "
             "discriminative page shows: the two numbers differ for the same model.")
if len(rows) < 2:
    st.info("Only one model of this data set so far: train more γ values on the **Train** page "
            "(or wait for the pretrained sweep) to see a curve.")

st.subheader("Selected models")
selected = [e for e in chosen if e.family == family]
diagrams, dashed = {}, set()
for e in [*selected, *baselines]:
    m, _ = metrics_of(e)
    if "reliability" in m:
        diagrams[e.label] = m["reliability"]
        if e.kind != "ibinn":
            dashed.add(e.label)
# full width, one above the other: on a projector the diagram's curves and the histograms' bars
# need the room
if diagrams:
    st.plotly_chart(figure(figures.reliability_diagrams, diagrams, dashed, height=480),
                    key="gamma_reliability")
else:
    st.info("No reliability diagram: the selected models' cards hold none. Switch on the "
            "evaluation above to compute them on the demo set.")
detectors = {e.key: detection.detectors_of(e) for e in selected}  # shipped with zoo models
sets = list(detectors[selected[0].key].ood)
which = st.selectbox("OoD set for the histograms", sets, format_func=ood.set_label,
                     key="gamma_ood_set")
bits = {e.key: {"demo test images": detectors[e.key].in_distribution["bits_per_dim"],
                ood.set_label(which): detectors[e.key].ood[which]["bits_per_dim"]} for e in selected}
shared_range = figures.value_range(*(v for values in bits.values() for v in values.values()))
hist_cols = st.columns(min(2, len(selected)))
for j, e in enumerate(selected):
    with hist_cols[j % len(hist_cols)]:
        st.plotly_chart(figure(figures.histograms, bits[e.key], "bits/dim", title=e.label,
                               height=380, x_range=shared_range),
                        key=f"gamma_hist_{e.key}")
st.caption("The demo set's 2,000 test images against 500 images of the OoD set (the sets of "
           "Table 1, and the paper's uniform noise), on one bits/dim scale for every model.")

st.subheader("The paper's claims on these cards")
claims_table, stale = paper.zoo_claims(family)
if claims_table:
    st.caption("Each qualitative claim of the paper (its figures: Table 1, CIFAR-10), checked on the "
               "cards of this data set by the rule beside it, and below the table one sentence to say in "
               "class for each claim that does not hold; `ibinn zoo --claims` prints the same.")
    st.markdown(claims_table)
    if stale:
        st.warning(stale)
else:
    st.info("The pretrained zoo holds no card of this data set: the claims are checked on cards only.")
