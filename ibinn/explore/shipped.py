"""What a zoo model ships so that the dashboard's first views need no inference: the latent page's
projections and per-image scores (:func:`projection_arrays`, read back by :func:`shipped_scores`
and :func:`shipped_projection`) and, with the OoD detectors' scores, every derived array
(:func:`derived_arrays`, written by :func:`ibinn.zoo.write_derived`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import metrics
from ..data import ImageData
from ..model import IBINN, ImageClassifier
from .confusion import confusion_matrix, most_confused_triple
from .detectors import detector_arrays
from .geometry import class_centroids, spread_ratio
from .latent import LatentView, PointScores, summarize
from .projection import Projection, fit_projection, plane_titles

#: Projections shipped with zoo models, by :func:`projection_arrays`.
SHIPPED_PROJECTIONS = ("pca-means", "class-plane", "pca", "umap")


def projection_arrays(model: IBINN, demo: ImageData,
                      methods: Sequence[str] = SHIPPED_PROJECTIONS,
                      view: LatentView | None = None) -> dict[str, np.ndarray]:
    """The latent page's first view of ``model`` on its demo set, precomputed for the zoo.

    For every method of ``methods`` (by default :data:`SHIPPED_PROJECTIONS`):
    ``projection/<method>/xy`` (the demo latents in 2D) and ``projection/<method>/mu_xy`` (the
    class means), float16; the share of variance of the linear axes (``.../explained``); the
    class plane's default classes
    (:func:`most_confused_triple`, ``projection/class-plane/classes``); and the scatter's
    per-image scores (``projection/scores/...``, see :class:`PointScores`; bits/dim follow from
    the log-likelihood). About 45 KB compressed for 2,000 demo images: no (2, D) components are
    shipped, since placing new latents needs the model or the demo latents anyway. Besides,
    ``latent/centroids``, the mean latent of each class's demo images (:func:`class_centroids`,
    what the Sampling page samples around), and ``latent/spread_ratio``, the latents'
    :func:`spread_ratio` in all ``D`` dimensions. ``view``: :func:`summarize` of ``model`` on
    ``demo``, when already at hand.
    """
    view = summarize(model, demo.images, demo.labels) if view is None else view
    triple = most_confused_triple(confusion_matrix(view.labels, view.predicted, len(view.mu)))
    arrays: dict[str, np.ndarray] = {
        "latent/centroids": class_centroids(view.z, view.labels, len(view.mu)).astype(np.float32),
        "latent/spread_ratio": np.asarray(spread_ratio(view.z, view.labels, len(view.mu))),
        "projection/class-plane/classes": np.asarray(triple, dtype=np.int16),
        "projection/scores/predicted": view.predicted.astype(np.uint8 if len(view.mu) <= 256
                                                              else np.int32),
        "projection/scores/confidence": view.confidence.astype(np.float16),
        "projection/scores/entropy": view.entropy.astype(np.float16),
        "projection/scores/log_likelihood": view.log_likelihood.astype(np.float32),  # ~1e3 nats
    }
    for method in methods:
        proj = fit_projection(method, view.z, view.mu, classes=triple)
        arrays[f"projection/{method}/xy"] = proj.transform(view.z).astype(np.float16)
        arrays[f"projection/{method}/mu_xy"] = proj.transform(view.mu).astype(np.float16)
        if proj.explained is not None:
            arrays[f"projection/{method}/explained"] = np.asarray(proj.explained, dtype=np.float32)
    return arrays


def shipped_scores(arrays: dict[str, np.ndarray], labels: Any, image_shape: Sequence[int]
                   ) -> PointScores | None:
    """The :class:`PointScores` in a zoo model's derived ``arrays`` (None when it ships none);
    ``labels`` and ``image_shape`` are the demo set's."""
    if "projection/scores/entropy" not in arrays or len(
            arrays["projection/scores/predicted"]) != len(labels):  # absent, older, or another demo set's
        return None
    log_likelihood = arrays["projection/scores/log_likelihood"].astype(np.float64)
    bits = metrics.bits_per_dim(torch.from_numpy(log_likelihood), math.prod(image_shape)).numpy()
    return PointScores(np.asarray(labels, dtype=np.int64),
                       arrays["projection/scores/predicted"].astype(np.int64),
                       arrays["projection/scores/confidence"].astype(np.float64),
                       arrays["projection/scores/entropy"].astype(np.float64), log_likelihood, bits)


def shipped_projection(arrays: dict[str, np.ndarray], method: str,
                       names: Sequence[str] | None = None
                       ) -> tuple[Projection, np.ndarray, np.ndarray] | None:
    """A projection shipped in a zoo model's derived ``arrays``: ``(projection, xy, mu_xy)``, or
    None when it ships none. The projection names its axes but cannot place new latents: that
    needs the model's ``μ`` or the demo latents (:func:`fit_projection`; for UMAP,
    :attr:`Projection.anchors` with :func:`knn_embedding`)."""
    if f"projection/{method}/xy" not in arrays:
        return None
    explained = arrays.get(f"projection/{method}/explained")
    proj = Projection(method, explained=None if explained is None else
                      tuple(float(v) for v in explained))  # type: ignore[arg-type]
    if method == "class-plane":
        proj.titles = plane_titles([int(k) for k in arrays["projection/class-plane/classes"]], names)
    xy = arrays[f"projection/{method}/xy"].astype(np.float64)
    return proj, xy, arrays[f"projection/{method}/mu_xy"].astype(np.float64)


def derived_arrays(model: ImageClassifier, demo: ImageData) -> dict[str, np.ndarray]:
    """Every array the dashboard would otherwise compute from ``model`` and its family's demo set
    on first view; :func:`ibinn.zoo.write_derived` ships them with each zoo model. Keys are
    namespaced by their producer (``projection/...``, ``detector/...``); values are plain NumPy
    arrays (no objects), so they load with ``allow_pickle=False``."""
    arrays: dict[str, np.ndarray] = {}
    if isinstance(model, IBINN):  # discriminative baselines have no latent space to project
        arrays.update(projection_arrays(model, demo))
    arrays.update(detector_arrays(model, demo))
    return arrays
