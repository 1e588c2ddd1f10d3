"""Sampling: new images drawn from each class's Gaussian (the paper's Figs. 8 and 14)."""

from __future__ import annotations

import figures
import generation
import loading
import numpy as np
import selection
import streamlit as st
import widgets
from figure_cache import figure

st.title("Sampling")
widgets.explain("""
Each row is one class *y*. A random latent is drawn around a centre, z = centre + T·ε with ε
standard normal, and the network is run in reverse to turn it into an image. **T** (temperature)
scales the randomness: T = 0 decodes the centre itself (the first column), larger T gives more
varied but less clean images. The **seed** fixes ε; all classes share it, so a column differs only
by the centre, unless **independent noise per class** is on.

**Which centre.** The model's own generative distribution is a Gaussian around each class mean
μ_y. But the real images of a class do not sit at μ_y: their latents are offset from it, and the
region right around μ_y has seen little training data (the paper notes this in appendix D.3, under
Fig. 14). Decoded, μ_y and its surroundings are dark, faint blobs that hardly differ by class. So
by default the page samples around the **centroid of the class's real images** (the mean latent
of its 200 demo images): the samples then look like the class. Switch to **μ_y** to see the model's
own Gaussian. The caption under each grid measures both: the share of the samples shown that a
separate classifier, the family's ResNet baseline, recognises as their row's class (10 % is
chance), and how far the centroids lie from μ_y.

**Where it is the model.** If the ResNet recognises few samples even around the centroids, the
model itself generates poorly: with small γ samples look most like real images, as γ grows they
degrade (the paper's Fig. 14), and a model that classifies badly (see its test error in the
caption) has not learned its classes' looks either. `python benchmarks/sample_recognition.py`
measures every bundled model at several temperatures; the README lists the results.

What the model generates is what it "thinks" a class looks like: features it never generates do
not help it classify (the paper's Fig. 8: only texture for frogs).
""")

chosen = selection.require_models()
c1, c2, c3 = st.columns(3)
temperature = c1.slider("Temperature T", 0.0, 1.5, 0.6, 0.05, key="sample_temperature",
                        help="0.6 by default: around the data centroids, the ResNet recognises "
                             "about as many samples at 0.3 as at 0.6 (see the README's table), "
                             "and 0.6 gives more variety.")
seed = c2.number_input("Seed", 0, 10_000, 0, key="sample_seed")
n = c3.slider("Samples per class", 2, 12, 8, key="sample_n")
CENTRES = {"data": "Centroid of the class's real images", "mu": "The model's class mean μ_y"}
around = st.radio("Sample around", list(CENTRES), format_func=CENTRES.get, horizontal=True,
                  key="sample_around", help="See “What am I looking at?”: the real images of a class "
                                            "lie away from its μ_y.")
independent = st.toggle("Independent noise per class", value=False, key="sample_independent",
                        help="Off: every row uses the same noise ε, so columns differ only by the "
                             "class centre. On: each class draws its own noise.")

# side by side while two grids of readable (64 px) thumbnails (the samples and the class means)
# fit a wide page, else one below the other
side_by_side = len(chosen) > 1 and (int(n) + 1) * 64 + 130 <= 650
cell_px = 64 if side_by_side else figures.CELL_PX
cols = st.columns(2 if side_by_side else 1)
for k, entry in enumerate(chosen):
    classes = loading.model_of(entry).classes
    family = entry.family if loading.demo_data(entry.family) is not None else None
    if around == "data" and family is None:
        st.info(f"{entry.label}: no demo images of its family to take centroids from; sampling "
                "around μ_y.")
    centred = family if around == "data" else None
    with st.spinner(f"Sampling {entry.label}…"):
        means = generation.samples(entry.path, entry.mtime, 1, 0.0, 0, False, centred)  # T = 0: the centres
        grid = generation.samples(entry.path, entry.mtime, int(n), float(temperature), int(seed),
                                  bool(independent), centred)
    centre = "centroid" if centred else "μ_y"
    with cols[k % len(cols)]:  # each row: the centre decoded, then the samples
        st.plotly_chart(figure(figures.image_grid, np.concatenate([means, grid], axis=1),
                               classes, [f"{centre} (T = 0)", *map(str, range(1, int(n) + 1))],
                               title=entry.label, cell_px=cell_px),
                        width="content", key=f"samples_{entry.key}")
        st.caption(generation.sample_caption(entry, int(n), float(temperature), int(seed),
                                             bool(independent), centred))
