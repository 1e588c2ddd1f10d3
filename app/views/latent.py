"""Latent space: the demo set's latents projected to 2D (the paper's Fig. 7)."""

from __future__ import annotations

import common
import figures
import numpy as np
import streamlit as st

from ibinn import explore

st.title("Latent space")
common.explain("""
Every dot is one demo test image, placed where the network sends it in latent space, squashed
from hundreds of dimensions to two. Stars are the class centres **μ_y**.

* **PCA of μ_y** (the paper's Fig. 7) picks the two directions in which the class centres differ
  most: a faithful *linear* view of how the classes are laid out.
* **PCA of z** picks the directions in which the images themselves vary most.
* **UMAP** is non-linear: it keeps neighbours together, but distances between clusters mean little.
  It is fitted once per model (up to a minute the first time), then cached.

Hovering a dot shows its true and predicted class, the top posterior and the NLL; **click a dot,
or draw a box or lasso** around several, to see the image itself, its full posterior and its
typicality score below the plot.

With **small γ** the blobs overlap (the model cares about modelling images, and similar classes
such as shirt / T-shirt share space, which keeps its uncertainty honest). With **large γ** the
blobs are pushed apart and predictions become confident.
""")

chosen = common.require_models()
c1, c2, c3 = st.columns([2, 1, 1])
method = c1.radio("Projection", list(explore.PROJECTIONS), format_func=explore.PROJECTIONS.get,
                  horizontal=True, key="latent_projection")
color = c2.radio("Colour by", ["true class", "predicted class"], horizontal=True, key="latent_color")
n_show = c3.select_slider("Points", [500, 1000, 2000], value=2000, key="latent_points")


def selected_ids(event) -> list[int]:
    """Demo-set indices of the selected points (only image points carry customdata, the class
    means do not)."""
    points = event.get("selection", {}).get("points", []) if event else []
    return [int(p["customdata"][0]) for p in points if p.get("customdata")]


def panel(entry: common.ModelEntry, height: int, single: bool, axis_ranges=None) -> None:
    view = common.view_of(entry)
    data = common.demo_of(entry)
    proj, xy, mu_xy = common.projection_of(entry, method)
    by = view.labels if color == "true class" else view.predicted
    if n_show < len(xy):  # an evenly spaced subset; the others are not drawn
        hidden = np.ones(len(xy), bool)
        hidden[np.linspace(0, len(xy) - 1, n_show).astype(int)] = False
        by = np.where(hidden, -1, by)
    if not single:  # the title above the chart, not in it: the toolbar would cover it
        st.markdown(f"**{entry.label}**")
    fig = common.figure(
        figures.latent_scatter, xy, by, data.classes, mu_xy, view.confidence, -view.log_likelihood,
        view.bits_per_dim, view.labels, view.predicted, proj.axis_titles,
        title="", height=height, legend_below=not single, axis_ranges=axis_ranges)
    # The figure must not depend on the selection: a changed figure is a new widget, which would
    # drop the selection it was made with.
    event = st.plotly_chart(fig, key=f"sel-{entry.key}-{method}", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), width="stretch")
    st.caption(f"{entry.label}: accuracy on the {len(view)} demo images {view.accuracy:.1%}, "
               f"mean {view.bits_per_dim.mean():.3f} bits/dim")
    ids = selected_ids(event)
    if ids:
        detail(entry, view, data, ids)
    elif single:
        st.caption("Click a point, or draw a box / lasso, to see the image and its posterior.")


def detail(entry: common.ModelEntry, view: explore.LatentView, data, ids: list[int]) -> None:
    """The first selected image with its scores; thumbnails of the others."""
    i = ids[0]
    with st.container(border=True):
        if len(ids) > 1:
            st.markdown(f"**{len(ids)} points selected**: mean max posterior "
                        f"{view.confidence[ids].mean():.3f}, mean {view.bits_per_dim[ids].mean():.3f} "
                        f"bits/dim; showing #{i}.")
        a, b = st.columns([1, 3])
        a.image(figures.to_rgb(data.images[i].numpy() / 255.0, 4),
                caption=f"#{i}: {data.classes[view.labels[i]]}, predicted "
                        f"{data.classes[view.predicted[i]]}")
        lo, hi = explore.in_distribution_range(view.typicality)
        a.metric("NLL", f"{-view.log_likelihood[i]:.1f} nats", f"{view.bits_per_dim[i]:.3f} bits/dim",
                 delta_color="off")
        a.metric("typicality score", f"{view.typicality[i]:.1f}",
                 help=f"|NLL − mean NLL| in nats; 90 % of demo images lie in [{lo:.1f}, {hi:.1f}]")
        b.plotly_chart(common.figure(figures.posterior_bars, view.proba[i], data.classes,
                                     int(view.labels[i])), key=f"bars-{entry.key}")
        if len(ids) > 1:
            thumbs = data.images[ids[:12]].numpy() / 255.0
            b.plotly_chart(common.figure(figures.image_grid, thumbs[None],
                                         col_labels=[f"#{j}" for j in ids[:12]]),
                           width="content", key=f"thumbs-{entry.key}")


if len(chosen) == 1:
    panel(chosen[0], 620, True)
else:
    # Every model's latents are in the same units (each class a unit Gaussian around its μ_y), so
    # linear projections are comparable on one scale: the spread of the classes across γ then
    # reads correctly. UMAP's axes have no units, so its panels keep their own.
    linear = method != "umap"
    shared = st.toggle("Same axes for every model", value=linear, disabled=not linear,
                       key="latent_shared_axes",
                       help="Linear projections share one scale, so that cluster separation can be "
                            "compared across models; UMAP's axes have no units and are never shared.")
    ranges = None
    if shared and linear:
        ranges = figures.shared_ranges(*(part for entry in chosen
                                         for part in common.projection_of(entry, method)[1:]))
    cols = st.columns(min(3, len(chosen)))
    for j, entry in enumerate(chosen):
        with cols[j % len(cols)]:
            panel(entry, 580, False, ranges)  # the legend below takes ~120 px
