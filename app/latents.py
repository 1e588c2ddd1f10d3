"""The demo set in latent space, cached per model: its latents, their 2D projections, per-image
scores, class centroids and distances, nearest neighbours, and interpolations between images.

A zoo model ships its latent page's first view (``explore.projection_arrays``, in derived.npz):
points and scores load in milliseconds, so that view runs no demo-set inference. Anything that
needs the latents themselves (neighbours, another class plane, an image's posterior) computes
them on first use, as for models outside the zoo.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st
from loading import demo_data, demo_of, derived_arrays, load_model
from registry import ModelEntry

from ibinn import explore


@st.cache_data(show_spinner=False, max_entries=32)
def latent_view(path: str, mtime: float, family: str) -> explore.LatentView:
    """The demo set run through the model once (latents, posteriors, bits/dim, typicality)."""
    data = demo_data(family)
    return explore.summarize(load_model(path, mtime), data.images, data.labels)


def view_of(entry: ModelEntry) -> explore.LatentView:
    demo_of(entry)
    with st.spinner(f"Running the demo set through {entry.label} (once per model)…"):
        return latent_view(entry.path, entry.mtime, entry.family)


@st.cache_resource(show_spinner=False, max_entries=32)
def projection(path: str, mtime: float, family: str, method: str,
               classes: tuple[int, ...] | None = None) -> explore.Projection:
    """A fitted projection (a resource: a UMAP reducer is large and need not be copied).
    ``classes``: the three classes of the class plane. A zoo model's shipped UMAP embedding is
    used as it is, new latents placed by ``explore.knn_embedding`` (no reducer is fitted)."""
    view = latent_view(path, mtime, family)
    shipped_umap = derived_arrays(path, mtime).get("projection/umap/xy")
    if method == "umap" and shipped_umap is not None and len(shipped_umap) == len(view.z):
        return explore.Projection("umap", anchors=view.z, anchor_xy=shipped_umap.astype(np.float64))
    return explore.fit_projection(method, view.z, view.mu, classes=classes)


@st.cache_data(show_spinner=False, max_entries=64)
def projected(path: str, mtime: float, family: str, method: str,
              classes: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2D coordinates of the demo latents and of the class means."""
    proj = projection(path, mtime, family, method, classes)
    view = latent_view(path, mtime, family)
    xy = proj.anchor_xy if proj.anchors is not None else proj.transform(view.z)
    return xy, proj.transform(view.mu)


def projection_of(entry: ModelEntry, method: str, classes: tuple[int, ...] | None = None
                  ) -> tuple[explore.Projection, np.ndarray, np.ndarray]:
    """The fitted projection of ``entry``'s demo latents, their 2D points and the class means'."""
    view_of(entry)
    message = ("Fitting UMAP (the first time on this server: compiling and fitting, this can take "
               "a minute; later views are instant)…" if method == "umap" else "Projecting…")
    with st.spinner(message):
        xy, mu_xy = projected(entry.path, entry.mtime, entry.family, method, classes)
    return projection(entry.path, entry.mtime, entry.family, method, classes), xy, mu_xy


def scores_of(entry: ModelEntry) -> explore.PointScores:
    """Per-image scores of ``entry`` on its demo set: shipped, else from the demo-set pass."""
    data = demo_of(entry)
    scores = explore.shipped_scores(derived_arrays(entry.path, entry.mtime), data.labels.numpy(),
                                    entry.image_shape)
    return scores if scores is not None else explore.PointScores.of(view_of(entry))


def default_plane(entry: ModelEntry) -> tuple[int, int, int]:
    """The class plane shown first: the two classes ``entry`` confuses most, and the class most
    confused with either (``explore.most_confused_triple``)."""
    scores = scores_of(entry)
    n_classes = len(demo_of(entry).classes)
    return explore.most_confused_triple(
        explore.confusion_matrix(scores.labels, scores.predicted, n_classes))


def points_of(entry: ModelEntry, method: str, classes: tuple[int, ...] | None = None
              ) -> tuple[explore.Projection, np.ndarray, np.ndarray]:
    """Like :func:`projection_of`, from the shipped arrays where the zoo ships this view (its
    projection then names the axes but places no new latents)."""
    arrays = derived_arrays(entry.path, entry.mtime)
    shipped_plane = tuple(int(k) for k in arrays.get("projection/class-plane/classes", ()))
    if method != "class-plane" or classes == shipped_plane:
        found = explore.shipped_projection(arrays, method, demo_of(entry).classes)
        if found is not None and len(found[1]) == len(demo_of(entry).labels):
            return found
    proj, xy, mu_xy = projection_of(entry, method, classes)
    if method == "class-plane":  # a copy: the cached projection is shared
        proj = dataclasses.replace(proj, titles=explore.plane_titles(classes, demo_of(entry).classes))
    return proj, xy, mu_xy


@st.cache_resource(show_spinner=False, max_entries=64)
def mean_projection(path: str, mtime: float, method: str, classes: tuple[int, ...] | None = None
                    ) -> explore.Projection:
    """A projection of ``explore.MEAN_PROJECTIONS``, fitted on the model's class means alone (no
    demo-set pass): the one a zoo model's shipped points were drawn in."""
    mu = load_model(path, mtime).mu.detach().float().cpu().numpy()
    return explore.fit_projection(method, mu, mu, classes=classes)


def place(entry: ModelEntry, method: str, z: np.ndarray, classes: tuple[int, ...] | None = None
          ) -> np.ndarray:
    """2D points of new latents ``z`` in the projection that :func:`points_of` shows for ``entry``."""
    if method in explore.MEAN_PROJECTIONS:
        return mean_projection(entry.path, entry.mtime, method, classes).transform(z)
    return projection_of(entry, method, classes)[0].transform(z)


@st.cache_data(show_spinner=False, max_entries=256)
def neighbours(path: str, mtime: float, family: str, index: int, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``explore.nearest_neighbours`` of demo image ``index`` among the demo latents."""
    return explore.nearest_neighbours(latent_view(path, mtime, family).z, index, k)


@st.cache_data(show_spinner=False, max_entries=64)
def centroids(path: str, mtime: float, family: str) -> np.ndarray:
    """``explore.class_centroids`` of the demo latents: shipped with a zoo model, else from the
    demo-set pass."""
    shipped = derived_arrays(path, mtime).get("latent/centroids")
    if shipped is not None:
        return shipped.astype(np.float64)
    view = latent_view(path, mtime, family)
    return explore.class_centroids(view.z, view.labels, len(view.mu))


@st.cache_data(show_spinner=False, max_entries=64)
def separation(path: str, mtime: float, family: str) -> tuple[float, float, float]:
    """``explore.class_separation`` (mean distance between class means, and the noise's length)
    and ``explore.centroid_offset`` (mean distance of the data centroids from the class means)."""
    model = load_model(path, mtime)
    return (*explore.class_separation(model), explore.centroid_offset(model, centroids(path, mtime, family)))


@st.cache_data(show_spinner=False, max_entries=64)
def spread_in_all_dimensions(path: str, mtime: float, family: str) -> float:
    """``explore.spread_ratio`` of the demo latents in all their dimensions: shipped with a zoo
    model, else from the demo-set pass."""
    shipped = derived_arrays(path, mtime).get("latent/spread_ratio")
    if shipped is not None:
        return float(shipped)
    view = latent_view(path, mtime, family)
    return explore.spread_ratio(view.z, view.labels, len(view.mu))


@st.cache_data(show_spinner=False, max_entries=64)
def interpolation(path: str, mtime: float, a: np.ndarray, b: np.ndarray, steps: int
                  ) -> explore.Interpolation:
    """``explore.interpolation`` between two uint8 images."""
    return explore.interpolation(load_model(path, mtime), a, b, steps)
