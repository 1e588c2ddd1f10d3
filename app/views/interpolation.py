"""Interpolation: decoded straight lines in latent space between two images (the paper's Fig. 9)."""

from __future__ import annotations

import figures
import latents
import loading
import numpy as np
import selection
import streamlit as st
import widgets
from figure_cache import figure

st.title("Interpolation")
widgets.explain("""
Two images are encoded to latents *z_A* and *z_B*; the points on the straight line between them,
(1 − t)·z_A + t·z_B, are decoded back into images by running the network in reverse. Each row is
one model (Fig. 9 of the paper). Below, the stacked areas show the class posterior along the path:
where the colour changes, the line crosses from one class's region into another's.

With **small γ** the latent space is smooth and the intermediate images look plausible. With
**large γ** the classes sit far apart with empty space between them, so the middle of the path
decodes to images the network never learned, and the posterior flips abruptly.
""")

chosen = selection.require_models()
ref = chosen[0]
data = loading.demo_of(ref)
same = [e for e in chosen if tuple(e.image_shape) == tuple(ref.image_shape)]
if len(same) < len(chosen):
    st.info("Models of another image size than the first selected one are left out: "
            + ", ".join(e.label for e in chosen if e not in same))

source = st.radio("Choose the two images by", ["class and index", "random pair", "upload"],
                  horizontal=True, key="interp_source")
steps = st.slider("Steps", 3, 15, 9, key="interp_steps")


def uploaded(label: str, key: str) -> np.ndarray | None:
    """An uploaded image in the first model's format, its conversion noted below it."""
    upload = widgets.uploaded_image(label, key, ref.image_shape, stop_on_error=False)
    if upload is None:
        return None
    image, notes = upload
    if notes:
        st.caption("Converted: " + "; ".join(notes))
    return image


if source == "class and index":
    a = data.images[widgets.image_pick(data, "interp_a", 0, "Image A")].numpy()
    b = data.images[widgets.image_pick(data, "interp_b", min(1, len(data.classes) - 1), "Image B")].numpy()
elif source == "random pair":
    if st.button("New random pair", key="interp_random") or "interp_pair" not in st.session_state:
        st.session_state["interp_pair"] = np.random.default_rng().choice(len(data), 2, replace=False)
    i, j = st.session_state["interp_pair"]
    st.caption(f"#{i} ({data.classes[data.labels[i]]}) → #{j} ({data.classes[data.labels[j]]})")
    a, b = data.images[i].numpy(), data.images[j].numpy()
else:
    c1, c2 = st.columns(2)
    with c1:
        a = uploaded("Image A", "interp_up_a")
    with c2:
        b = uploaded("Image B", "interp_up_b")
    if a is None or b is None:
        st.info("Upload two images (any size; they are converted to the model's format).")
        st.stop()

paths = {e.key: latents.interpolation(e.path, e.mtime, a, b, steps) for e in same}
rows = np.stack([paths[e.key].images for e in same])
t = paths[same[0].key].t
names = [e.gamma_text for e in same]
if len(set(names)) < len(names):
    names = [e.label for e in same]
# one row of a few images: as large as the page's width allows (up to 110 px each), for a projector
st.plotly_chart(figure(figures.image_grid, rows, names if len(same) > 1 else [],
                            [f"{x:.2f}" for x in t], title="Decoded latent interpolation, t =",
                            cell_px=min(110, 880 // len(t))),
                width="content", key="interp_grid")
cols = st.columns(min(3, len(same)))
for k, entry in enumerate(same):
    with cols[k % len(cols)]:
        # the title above the chart, not in it: the chart's toolbar would cover it in a narrow column
        # named as the grid's rows (γ, or the model where γ repeats): a long name would wrap in a
        # narrow column and push its chart below its neighbours'
        st.markdown(f"**Posterior along the path**{': ' + names[k] if len(same) > 1 else ''}")
        st.plotly_chart(figure(figures.posterior_path, t, paths[entry.key].proba,
                               loading.model_of(entry).classes, title=""),
                        key=f"interp_post_{entry.key}")
