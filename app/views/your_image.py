"""Your image: classify any uploaded image and test whether it looks in-distribution."""

from __future__ import annotations

import detection
import figures
import latents
import loading
import numpy as np
import selection
import streamlit as st
import widgets
from figure_cache import figure

from ibinn import explore

st.title("Your image")
widgets.explain("""
Upload any picture. It is converted to what the model was trained on (size, grey or colour), and
the model gives two answers: **which class** it thinks it is (posterior bars) and **how typical**
it is of the training data. The second answer is what a generative classifier adds: the
typicality score |NLL − mean NLL of real test images| is compared with the 95th percentile of the
demo images' scores, so 5 % of real images would be flagged too.

Fashion-MNIST shows light clothes on a black background: a photo of dark clothes on white will
look out-of-distribution unless you tick **invert**. Models with **small γ** have better
likelihoods, so their verdicts are more reliable; large-γ models may classify confidently even
when the image is nothing like the training data.
""")

chosen = selection.require_models()
entry = selection.pick_one(chosen, "yours_model")
data = loading.demo_of(entry)
view = latents.scores_of(entry)  # the demo set's scores: shipped with zoo models

upload = widgets.uploaded_image("An image (PNG, JPEG, …)", "yours_upload", entry.image_shape)
c1, c2 = st.columns(2)
invert = c1.checkbox("Invert colours (dark object on light background → light on dark)",
                     key="yours_invert")
quantile = c2.slider("Threshold percentile of the demo set", 80.0, 99.5, 95.0, 0.5, format="%g",
                     key="yours_quantile")
image, notes = widgets.image_or_demo(upload, data, "yours_demo")
if invert:
    image = 255 - image
    notes = [*notes, "colours inverted"]
widgets.conversion_note(notes)

result = detection.classify_against(entry.path, entry.mtime, image, view.reference_nll_mean)
verdict = explore.ood_verdict(float(result.typicality[0]), view.typicality, quantile)
a, b = st.columns([1, 3])
with a:
    st.image(figures.to_rgb(image / 255.0, 6), caption=f"as the model sees it "
             f"({entry.image_shape[1]}×{entry.image_shape[2]})")
    st.metric("prediction", data.classes[int(result.predicted[0])],
              f"{result.confidence[0]:.1%} posterior", delta_color="off")
    # the delta is the difference from the demo median, so its arrow points the right way
    median = float(np.median(view.bits_per_dim))
    st.metric("bits/dim", f"{result.bits_per_dim[0]:.3f}",
              f"{result.bits_per_dim[0] - median:+.3f} from the demo median {median:.3f}",
              delta_color="off")
    # A warning, not an error: an out-of-distribution verdict is a result, not a failure.
    (st.success if verdict.in_distribution else st.warning)(
        f"**{verdict.label}**: typicality score {verdict.score:.1f} "
        f"{'≤' if verdict.in_distribution else '>'} threshold {verdict.threshold:.1f} "
        f"({verdict.quantile:g}th percentile of {len(view)} demo images; higher than "
        f"{verdict.percentile_of_score:.1f} % of them)")
with b:
    st.plotly_chart(figure(figures.posterior_bars, result.proba[0], data.classes), key="yours_bars")
    st.plotly_chart(figure(figures.histograms, {"demo test images": view.typicality},
                           "typicality score |NLL − mean NLL| (nats)",
                           vlines={"your image": verdict.score, "threshold": verdict.threshold},
                           height=260),
                    key="yours_hist")
