"""Generative vs discriminative: an IB-INN and a plain classifier of the same data, side by side."""

from __future__ import annotations

import detection
import figures
import loading
import numpy as np
import pandas as pd
import selection
import streamlit as st
import widgets
from figure_cache import figure

import ibinn
from ibinn import explore

#: Each step runs both models; 9 steps keep a warm change of image or strength near 0.3 s on 2 cores.
TRAJECTORY_STEPS = 9

st.title("Generative vs discriminative")
widgets.explain("""
Both models classify the same images. The **IB-INN** is generative: besides the class it gives a
likelihood p(x) of the image itself, so it can tell when an image is unlike its training data
(the *typicality* test: |NLL − mean NLL of real test images|). The **discriminative** model (a
ResNet, or the VIB / i-RevNet where the data set has them) only models q(y | x): its one way to
notice a strange image is to be unsure about it (low top-class confidence, high entropy).

* **Trajectory**: one test image is distorted more and more; watch whether confidence drops and
  whether the typicality score leaves the green band of real images.
* **Reliability diagram**: a calibrated model lies on the diagonal; ECE is its average distance.
* **Entropy histograms**: how unsure each model is on real test images and on each OoD set.
* **OoD detection**: each model's best detector as a ROC-AUC (50 = chance, 100 = perfect): the
  discriminative model's max-softmax confidence (and the VIB's info loss) against the IB-INN's
  typicality test. Neither always wins: the table and the sentences below it say where each does.

Scores of the bundled models are computed once when the zoo is built (2,000 demo test images,
500 images per OoD set); the trajectory and your upload are computed live.
""")

entry = selection.pick_one(selection.require_models(), "versus_model")
family = selection.family_entries(entry.family)
generative = [e for e in family if not explore.is_discriminative(ibinn.MODEL_TYPES[e.kind])]
discriminative = [e for e in family if explore.is_discriminative(ibinn.MODEL_TYPES[e.kind])]
if not discriminative:
    st.info(f"{entry.dataset_label} has no discriminative baseline yet: train one with "
            "`ibinn train --model resnet` (or vib, irevnet) and it appears here.")
    st.stop()

labels = {e.key: e.label for e in family}
c1, c2 = st.columns(2)
gen_options = [e.key for e in generative]
gen_key = c1.selectbox("Generative model (IB-INN)", gen_options, index=gen_options.index(entry.key),
                       format_func=labels.get, key="versus_generative")
disc_options = [e.key for e in discriminative]
default_disc = next((i for i, e in enumerate(discriminative) if e.kind == "resnet"), 0)
disc_key = c2.selectbox("Discriminative baseline", disc_options, index=default_disc,
                        format_func=labels.get, key="versus_discriminative")
gen = next(e for e in generative if e.key == gen_key)
disc = next(e for e in discriminative if e.key == disc_key)
disc_class = ibinn.MODEL_TYPES[disc.kind]
names = {gen.key: f"IB-INN ({gen.gamma_text})", disc.key: disc_class.title.split(" (")[0]}
pair = (gen, disc)
data = loading.demo_of(gen)
scores = {e.key: detection.detectors_of(e) for e in pair}

# ---------------------------------------------------------------- capabilities
st.subheader("What each model can do")
table = explore.capability_table({names[e.key]: ibinn.MODEL_TYPES[e.kind] for e in pair})
st.dataframe(pd.DataFrame({cap: {m: "✓" if has else "✗" for m, has in row.items()}
                           for cap, row in table.items()}).T,
             key="versus_capabilities", width="content")
st.caption("From each model class's declared interface (`ImageClassifier.capabilities()`).")

# ---------------------------------------------------------------- trajectory
st.subheader("One image leaves the training distribution")
channels = int(gen.image_shape[0])
choice = widgets.distortion_controls(data, "versus")
index, name, spec = choice.index, choice.name, choice.spec
strengths = tuple(choice.strengths(TRAJECTORY_STEPS).tolist())
references = {e.key: None if np.isnan(scores[e.key].reference_nll_mean)
              else scores[e.key].reference_nll_mean for e in pair}
trajectories = {e.key: detection.scored_trajectory(e.path, e.mtime, e.family, index, name, strengths,
                                                   references[e.key]) for e in pair}
series = {names[key]: {"top-class confidence": traj.proba.max(1),
                       "prediction entropy (nats)": traj.entropy,
                       "bits/dim": traj.bits_per_dim, "typicality score (nats)": traj.typicality}
          for key, traj in trajectories.items()}
gen_scores = scores[gen.key]
bands = {"typicality score (nats)": explore.in_distribution_range(
    gen_scores.in_distribution["typicality"])}
no_likelihood = "no likelihood p(x), so no "
a, b = st.columns([1, 4])
steps = trajectories[gen.key].images  # both models see the same distorted images
a.image(figures.to_rgb(steps[0], 4), caption="original")
a.image(figures.to_rgb(steps[-1], 4), caption=f"{spec.strength_label} = {strengths[-1]:.3g}")
b.plotly_chart(figure(
    figures.versus_curves, np.asarray(strengths), series, bands, spec.strength_label,
    {"bits/dim": no_likelihood + "bits/dim", "typicality score (nats)": no_likelihood + "typicality"}),
    key="versus_trajectory")
if channels == 1:
    st.caption("Grey images: the paper's RGB rotation needs colour. The OoD trajectories page "
               "offers the CIFAR-10 counterpart of this IB-INN in one click.")

# ---------------------------------------------------------------- calibration and entropy
st.subheader("Calibration and uncertainty on the demo set")
left, right = st.columns(2)
diagrams = {f"{names[e.key]} (ECE {scores[e.key].ece:.1%})": scores[e.key].reliability for e in pair}
left.plotly_chart(figure(figures.reliability_diagrams, diagrams,
                         {f"{names[disc.key]} (ECE {scores[disc.key].ece:.1%})"}),
                  key="versus_reliability")
left.caption("ECE here is the *expected calibration error*: the bins' mean gap between confidence "
             "and accuracy, weighted by how many predictions fall in each, on the 2,000 demo test "
             "images. The γ page plots another figure, the *geometric mean of ECE, MCE and ICE* "
             "(the paper's appendix C) on the full test set: it is larger by construction.")
entropies = {e.key: {"demo test images": scores[e.key].in_distribution["entropy"],
                     **{ood_set: out["entropy"] for ood_set, out in scores[e.key].ood.items()}}
             for e in pair}
shared_range = figures.value_range(*(v for values in entropies.values() for v in values.values()))
with right:  # one x range for both, so that the two models' uncertainty compares at a glance
    for e in pair:
        st.plotly_chart(figure(figures.histograms, entropies[e.key], "prediction entropy (nats)",
                               title=names[e.key], height=330, x_range=shared_range,
                               legend_below=True),
                        key=f"versus_entropy_{e.kind}")

# ---------------------------------------------------------------- OoD detection
st.subheader("Out-of-distribution detection: each model's own best score")
aucs = {names[e.key]: scores[e.key].aucs for e in pair}
auc_columns: dict[str, dict[str, float]] = {}
for model, by_set in aucs.items():
    for ood_set, row in by_set.items():
        for detector, auc in row.items():
            auc_columns.setdefault(f"{model} · {detector}", {})[ood_set] = auc
st.dataframe(pd.DataFrame(auc_columns).round(1), key="versus_aucs")
duels = explore.detector_duels(aucs)
st.markdown(explore.duel_summary(duels) + "\n\n" + "\n".join(f"- {d.sentence}" for d in duels))
st.caption("ROC-AUC in %, demo test images against 500 images of each OoD set; max-softmax flags "
           "low top-class confidence, typicality a likelihood far from the real images' mean. "
           f"Differences within {explore.TIE_POINTS:g} point count as ties.")

# ---------------------------------------------------------------- an upload
st.subheader("Your image, answered by both")
upload = widgets.uploaded_image("An image (PNG, JPEG, …); without one, the image picked above",
                                "versus_upload", gen.image_shape)
image, notes = widgets.image_or_demo(upload, data, "versus_demo", picked=index)
widgets.conversion_note(notes, "the models")
columns = st.columns([1, 2, 2])
columns[0].image(figures.to_rgb(image / 255.0, 5), caption="as the models see it")
for column, e in zip(columns[1:], pair, strict=True):
    s = scores[e.key]
    if upload is None:  # the picked demo image: the trajectory's undistorted first step
        proba, typicality = trajectories[e.key].proba[0], trajectories[e.key].typicality[0]
    else:
        result = detection.classify_against(e.path, e.mtime, image, references[e.key])
        proba, typicality = result.proba[0], result.typicality[0]
    column.metric(names[e.key], data.classes[int(proba.argmax())], f"{proba.max():.1%} confidence",
                  delta_color="off")
    if e is gen:
        verdict = explore.ood_verdict(float(typicality), s.in_distribution["typicality"])
        detail = f"typicality {verdict.score:.1f} vs threshold {verdict.threshold:.1f}"
    else:  # its own detector: confidence below the demo set's 5th percentile
        verdict = explore.ood_verdict(-float(proba.max()), -s.in_distribution["confidence"])
        detail = f"confidence {-verdict.score:.1%} vs threshold {-verdict.threshold:.1%}"
    (column.success if verdict.in_distribution else column.warning)(
        f"**{verdict.label}** ({detail}; 5 % of demo images are flagged)")
    column.plotly_chart(figure(figures.posterior_bars, proba, data.classes),
                        key=f"versus_bars_{e.kind}")

with st.expander("How to demo this in class"):
    st.markdown(f"""
1. **Capabilities first.** Point at the table: both classify, only the IB-INN has a likelihood,
   samples and an exact inverse. *The audience sees what "generative" buys before any number.*
2. **Distort one image** ({'RGB rotation on CIFAR-10' if channels == 3 else 'noise, then inversion'}):
   drag the largest strength up. *The {names[disc.key]} often stays confident while the IB-INN's
   typicality score leaves the green band; sometimes the IB-INN's confidence stays high too, which
   is the point: confidence is not an OoD test.*
3. **Reliability diagrams.** *Both curves near the diagonal at γ = 1; pick a larger-γ IB-INN to
   show over-confidence growing.*
4. **The OoD table.** Read the sentences under it aloud. *The typicality test wins where the
   image statistics change; max-softmax can win on semantically different images: each detector
   has a blind spot.* Finish by uploading a photo of your own.
""")
