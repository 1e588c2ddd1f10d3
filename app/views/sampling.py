"""Sampling: new images drawn from each class's Gaussian (the paper's Figs. 8 and 14)."""

from __future__ import annotations

import common
import figures
import numpy as np
import streamlit as st

st.title("Sampling")
common.explain("""
Each row is one class *y*. A random latent is drawn around its centre, z = μ_y + T·ε with ε
standard normal, and the network is run in reverse to turn it into an image. **T** (temperature)
scales the randomness: T = 0 decodes the class centre itself, T = 1 is the distribution the model
was trained for, and smaller T usually gives cleaner but less varied images. The **seed** fixes ε;
all classes share it, so a column differs only by the class centre, unless **independent noise
per class** is on.

The first column, **μ_y (T = 0)**, decodes each class mean itself: the image the model holds to be
the most typical member of the class (for large γ they need not look like any real image: the model only needs
the centres to tell classes apart).

The default **T = 0.6** was chosen by measurement: it is the largest temperature (in steps of 0.1)
at which at least 85 % of samples, 20 per class with independent noise, are classified as the class
they were drawn from *and* have bits/dim within the 5–95 % range of real demo images
(`explore.recognised_samples`): 89 % for Fashion-MNIST γ = 1 and 95 % for CIFAR-10 γ = 1 at 0.6,
against 67 % and 79 % at 0.8, and 50 % and 34 % at T = 1 (CPU, seed 1). Higher T gives more variety
but more samples that are neither.

What the model generates is what it "thinks" a class looks like: features it never generates do
not help it classify. With **small γ** samples look most like real images; as **γ grows** they
degrade (Fig. 14).

Whether rows differ depends on how far apart the class centres lie compared with the noise: ε has
a length of about √dim (28 for a 28×28 image), so centres only a few units apart give rows that
look nearly alike, even when the model classifies well (it needs only those few directions). The
caption under each grid gives both numbers. The paper saw that for *class-NLL* models on CIFAR-10
(their class components collapse); read the captions to see which of your models it applies to.
""")

chosen = common.require_models()
c1, c2, c3 = st.columns(3)
temperature = c1.slider("Temperature T", 0.0, 1.5, 0.6, 0.05, key="sample_temperature",
                        help="0.6 by default: see “What am I looking at?” for why.")
seed = c2.number_input("Seed", 0, 10_000, 0, key="sample_seed")
n = c3.slider("Samples per class", 2, 12, 8, key="sample_n")
independent = st.toggle("Independent noise per class", value=False, key="sample_independent",
                        help="Off: every row uses the same noise ε, so columns differ only by the "
                             "class centre. On: each class draws its own noise.")

# side by side while two grids of readable (64 px) thumbnails (the samples and the class means)
# fit a wide page, else one below the other
side_by_side = len(chosen) > 1 and (int(n) + 1) * 64 + 130 <= 650
cell_px = 64 if side_by_side else figures.CELL_PX
cols = st.columns(2 if side_by_side else 1)
for k, entry in enumerate(chosen):
    classes = common.model_of(entry).classes
    means = common.samples(entry.path, entry.mtime, 1, 0.0, 0)  # T = 0: μ_y decoded
    grid = common.samples(entry.path, entry.mtime, int(n), float(temperature), int(seed),
                          bool(independent))
    with cols[k % len(cols)]:  # each row: the class mean, then the samples
        st.plotly_chart(common.figure(figures.image_grid, np.concatenate([means, grid], axis=1),
                                      classes, ["μ_y (T = 0)", *map(str, range(1, int(n) + 1))],
                                      title=entry.label, cell_px=cell_px),
                        width="content", key=f"samples_{entry.key}")
        apart, noise = common.separation(entry.path, entry.mtime)
        st.caption(f"Class centres lie {apart:.1f} apart on average; the noise ε is ≈ {noise:.0f} long.")
