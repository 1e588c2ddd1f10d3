"""Latent space: the demo set's latents projected to 2D (the paper's Fig. 7), and two questions to
it: which classes does the model confuse, and what lies near a given image."""

from __future__ import annotations

import math

import figures
import latents
import loading
import numpy as np
import registry
import selection
import streamlit as st
import widgets
from figure_cache import figure

from ibinn import explore

st.title("Latent space")
widgets.explain("""
Every dot is one demo test image, placed where the network sends it in latent space, squashed
from hundreds of dimensions to two. Stars are the class centres **μ_y**.

* **PCA of μ_y** (the paper's Fig. 7) picks the two directions in which the class centres differ
  most: a faithful *linear* view of how the classes are laid out.
* **Plane through three class means** is linear too: it shows the exact plane through three
  centres, so their distances are true latent distances. It starts on the two classes the model
  confuses most and the class most confused with either: there ambiguous images sit *between*
  the centres instead of being hidden behind other classes.
* **PCA of z** picks the directions in which the images themselves vary most.
* **UMAP** is non-linear: it keeps neighbours together, but distances between clusters mean little.
  The bundled models ship it; for others it is fitted once per model (a while the first time).

Hovering a dot shows its true and predicted class, the top posterior and the NLL; **click a dot,
or draw a box or lasso** around several, to see the image itself, its full posterior and its
typicality score below the plot.

Below the plot, ask the latent space a question: the **confusion matrix** of the demo set (pick a
cell to see its images) or the **nearest neighbours** of one image in z (all dimensions, not the
2D view: neighbours that look alike share what the model encodes).

With **small γ** the blobs overlap (the model cares about modelling images, and similar classes
such as shirt / T-shirt share space, which keeps its uncertainty honest). With **large γ** the
blobs are pushed apart and predictions become confident.

**Comparing γ side by side.** The caption under each plot measures the separation: the spread of
the class centroids over the spread of the images around their own class centroid (above 1 the
classes stand apart), in all dimensions and in the picture. Read the all-dimensions number: a
2D picture shows only two of hundreds of directions, so it can look alike for models whose
classes separate very differently, and the models here trained for far fewer epochs than the
paper's (450), so their clusters are less pronounced than in its Fig. 7. At **γ = ∞** the loss
no longer asks the latents to spread like a unit Gaussian around μ_y (only the classification
term is left): each class shrinks into a tight cluster whose centre need not sit on μ_y (the
caption gives the distance), since only which μ_y is nearest decides the class.
""")

chosen = selection.require_models()
c1, c2, c3 = st.columns([2, 1, 1])
method = c1.radio("Projection", list(explore.PROJECTIONS), format_func=explore.PROJECTIONS.get,
                  horizontal=True, key="latent_projection")
color = c2.radio("Colour by", ["true class", "predicted class"], horizontal=True, key="latent_color")
n_show = c3.select_slider("Points", [500, 1000, 2000], value=2000, key="latent_points")
THUMBNAILS = 24  #: images shown at most for a confusion-matrix cell
NN_INDEX = "latent_nn_index"


def thumbnails(data, ids: np.ndarray, captions: list[str]) -> None:
    """Demo images ``ids`` at ≥ 64 px each, with captions."""
    scale = max(1, math.ceil(64 / data.images.shape[-1]))
    st.image([figures.to_rgb(data.images[int(i)].numpy() / 255.0, scale) for i in ids],
             caption=captions)


def plane_picker(entry: registry.ModelEntry) -> tuple[int, int, int]:
    """Three class selectors for the class plane, starting on ``entry``'s most confused classes."""
    names = loading.demo_of(entry).classes
    default = latents.default_plane(entry)
    cols = st.columns(3)
    picked = tuple(int(col.selectbox(f"Class {'ABC'[i]}", range(len(names)), index=default[i],
                                     format_func=names.__getitem__, key=f"latent_plane_{i}"))
                   for i, col in enumerate(cols))
    st.caption(f"The plane through three class means. It starts on **{names[default[0]]}** and "
               f"**{names[default[1]]}**, the pair {entry.label} confuses most, and "
               f"**{names[default[2]]}**, the class most confused with either.")
    if len(set(picked)) < 3:
        st.warning("Choose three different classes: the plane runs through their three means.")
        st.stop()
    return picked  # type: ignore[return-value]


def selected_ids(event) -> list[int]:
    """Demo-set indices of the selected points (only image points carry customdata, the class
    means do not)."""
    points = event.get("selection", {}).get("points", []) if event else []
    return [int(p["customdata"][0]) for p in points if p.get("customdata")]


def panel(entry: registry.ModelEntry, height: int, single: bool, plane, axis_ranges=None,
          plot_width: int = 800) -> None:
    """One model's latent scatter; ``plot_width``: about how wide its plot area is (px)."""
    data = loading.demo_of(entry)
    if plane is not None and max(plane) >= len(data.classes):
        st.warning(f"{entry.label} has only {len(data.classes)} classes: no plane through these.")
        return
    scores = latents.scores_of(entry)
    proj, xy, mu_xy = latents.points_of(entry, method, plane)
    by = scores.labels if color == "true class" else scores.predicted
    if n_show < len(xy):  # an evenly spaced subset; the others are not drawn
        hidden = np.ones(len(xy), bool)
        hidden[np.linspace(0, len(xy) - 1, n_show).astype(int)] = False
        by = np.where(hidden, -1, by)
    if not single:  # the title above the chart, not in it: the toolbar would cover it
        st.markdown(f"**{entry.label}**")
    fig = figure(
        figures.latent_scatter, xy, by, data.classes, mu_xy, scores.confidence,
        -scores.log_likelihood, scores.bits_per_dim, scores.labels, scores.predicted,
        proj.axis_titles, title="", height=height, legend_below=not single, axis_ranges=axis_ranges,
        plot_width=plot_width)
    # The figure must not depend on the selection: a changed figure is a new widget, which would
    # drop the selection it was made with.
    suffix = "" if plane is None else "-" + "-".join(map(str, plane))
    event = st.plotly_chart(fig, key=f"sel-{entry.key}-{method}{suffix}", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), width="stretch")
    n_classes = len(data.classes)
    shown = explore.spread_ratio(xy, scores.labels, n_classes) if plane is None else None
    offset = latents.separation(entry.path, entry.mtime, entry.family)[2]
    st.caption(f"{entry.label}: accuracy on the {len(scores)} demo images {scores.accuracy:.1%}, "
               f"mean {scores.bits_per_dim.mean():.3f} bits/dim. Between- over within-class spread: "
               f"**{latents.spread_in_all_dimensions(entry.path, entry.mtime, entry.family):.2f}** in all "
               f"{math.prod(entry.image_shape)} dimensions"
               + (f", {shown:.2f} in this picture" if shown is not None else "")
               + f"; the real images' class centroids lie {offset:.1f} from μ_y.")
    ids = selected_ids(event)
    if ids:
        if single and st.session_state.get("_latent_last_pick") != ids[0]:
            # a new click also becomes the image whose neighbours are asked for below
            st.session_state["_latent_last_pick"] = st.session_state[NN_INDEX] = ids[0]
        detail(entry, data, ids)
    elif single:
        st.caption("Click a point, or draw a box / lasso, to see the image and its posterior.")


def detail(entry: registry.ModelEntry, data, ids: list[int]) -> None:
    """The first selected image with its scores; thumbnails of the others."""
    view = latents.view_of(entry)
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
        b.plotly_chart(figure(figures.posterior_bars, view.proba[i], data.classes,
                              int(view.labels[i])), key=f"bars-{entry.key}")
        if len(ids) > 1:
            thumbs = data.images[ids[:12]].numpy() / 255.0
            b.plotly_chart(figure(figures.image_grid, thumbs[None],
                                  col_labels=[f"#{j}" for j in ids[:12]]),
                           width="content", key=f"thumbs-{entry.key}")


def confusion(entry: registry.ModelEntry) -> None:
    """The demo set's confusion matrix; the images of one chosen cell."""
    data = loading.demo_of(entry)
    scores = latents.scores_of(entry)
    counts = explore.confusion_matrix(scores.labels, scores.predicted, len(data.classes))
    st.plotly_chart(figure(figures.confusion_heatmap, counts, data.classes),
                    key=f"confusion-{entry.key}")
    a, b, _ = latents.default_plane(entry)
    c1, c2 = st.columns(2)
    true = c1.selectbox("True class", range(len(data.classes)), index=a,
                        format_func=data.classes.__getitem__, key="latent_cm_true")
    predicted = c2.selectbox("Predicted class", range(len(data.classes)), index=b,
                             format_func=data.classes.__getitem__, key="latent_cm_pred")
    members = np.flatnonzero((scores.labels == true) & (scores.predicted == predicted))
    shown = f", the first {THUMBNAILS} shown" if len(members) > THUMBNAILS else ""
    st.caption(f"{len(members)} demo images of class **{data.classes[true]}** predicted as "
               f"**{data.classes[predicted]}**{shown}; under each its index and top posterior.")
    members = members[:THUMBNAILS]
    thumbnails(data, members, [f"#{i} · {scores.confidence[i]:.2f}" for i in members])


def neighbours(entry: registry.ModelEntry) -> None:
    """The nearest demo images to one demo image, in the full latent space."""
    data = loading.demo_of(entry)
    st.session_state.setdefault(NN_INDEX, 0)
    c1, c2 = st.columns(2)
    index = int(c1.number_input("Demo image #", 0, len(data.labels) - 1, key=NN_INDEX,
                                help="Any index of the demo set, or click a point in the plot."))
    k = int(c2.slider("Neighbours k", 1, 24, 8, key="latent_nn_k"))
    view = latents.view_of(entry)  # the latents themselves: the demo set's pass, once per model
    ids, distances = latents.neighbours(entry.path, entry.mtime, entry.family, index, k)
    q = int(view.labels[index])
    st.caption(f"Image #{index} ({data.classes[q]}, predicted {data.classes[view.predicted[index]]} "
               f"with {view.confidence[index]:.2f}) and its {k} nearest neighbours in z, nearest "
               f"first: class, top posterior, distance (the class means lie "
               f"{latents.separation(entry.path, entry.mtime, entry.family)[0]:.1f} apart on average).")
    thumbnails(data, np.concatenate([[index], ids]),
               [f"#{index} (query)"] + [
                   f"{data.classes[view.labels[j]]} · {view.confidence[j]:.2f} · d {d:.1f}"
                   for j, d in zip(ids, distances, strict=True)])


plane = plane_picker(chosen[0]) if method == "class-plane" else None
if len(chosen) == 1:
    panel(chosen[0], 620, True, plane)
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
                                         for part in latents.points_of(entry, method, plane)[1:]))
    cols = st.columns(min(3, len(chosen)))
    for j, entry in enumerate(chosen):
        with cols[j % len(cols)]:
            panel(entry, 580, False, plane, ranges, 900 // len(cols) - 60)  # the legend below: ~120 px

st.divider()
asked = selection.pick_one(chosen, "latent_question_model")
QUESTIONS = {"confusion": "Which classes does it confuse?", "neighbours": "What is near an image?"}
question = st.radio("Ask the latent space", list(QUESTIONS), format_func=QUESTIONS.get, index=None,
                    horizontal=True, key="latent_question",
                    help="Nothing is computed until you ask; the neighbours need the latents "
                         "themselves (the demo set's pass through the model, once per model).")
if question == "confusion":
    confusion(asked)
elif question == "neighbours":
    neighbours(asked)
