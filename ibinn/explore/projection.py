"""2D views of the latent space: PCA of the class means ``μ_y`` (the paper's Fig. 7), the plane
through three class means, PCA of the latents, or UMAP (:func:`fit_projection`); a fitted
:class:`Projection` places new latents too, a shipped UMAP embedding by :func:`knn_embedding`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import limits
from .checks import as_class_indices, as_latents

#: Projection methods of :func:`fit_projection` and their display names.
PROJECTIONS: dict[str, str] = {
    "pca-means": "PCA of the class means μ_y (paper Fig. 7)",
    "class-plane": "Plane through three class means",
    "pca": "PCA of the latents z",
    "umap": "UMAP of the latents z",
}
#: The projections fitted on the class means alone: they place new latents without any data set.
MEAN_PROJECTIONS = ("pca-means", "class-plane")


@dataclass
class Projection:
    """A fitted map from latents ``(N, D)`` to 2D points; :meth:`transform` projects new latents.

    Linear methods hold ``center`` and ``components`` (2, D); UMAP holds its fitted reducer, or,
    when its embedding was shipped with a zoo model (no pickled reducer), the latents it embedded
    (``anchors``) and their 2D points (``anchor_xy``), from which :func:`knn_embedding` places new
    latents. ``titles`` overrides the default axis titles.
    """

    method: str
    center: np.ndarray | None = None
    components: np.ndarray | None = None
    explained: tuple[float, float] | None = None  #: share of variance per axis (linear methods)
    reducer: Any = field(default=None, repr=False)
    anchors: np.ndarray | None = field(default=None, repr=False)
    anchor_xy: np.ndarray | None = field(default=None, repr=False)
    titles: tuple[str, str] | None = None

    def transform(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """2D coordinates ``(N, 2)`` of latents ``(N, D)``."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if self.reducer is not None:
            return np.asarray(self.reducer.transform(z), dtype=np.float64)
        if self.anchors is not None:
            return knn_embedding(self.anchors, self.anchor_xy, z)
        if self.components is None:
            raise ValueError(f"this {self.method} projection holds only its shipped points; it "
                             "cannot place new latents")
        return (z.astype(np.float64) - self.center) @ self.components.T

    @property
    def axis_titles(self) -> tuple[str, str]:
        if self.titles is not None:
            return self.titles
        if self.method == "umap":
            return "UMAP 1", "UMAP 2"
        name = "PC (of μ_y)" if self.method == "pca-means" else "PC"
        if self.explained is None:
            return f"{name} 1", f"{name} 2"
        return tuple(f"{name} {i + 1} ({share:.0%} of variance)"  # type: ignore[return-value]
                     for i, share in enumerate(self.explained))


def pca_projection(x: np.ndarray, method: str) -> Projection:
    """A two-component PCA (scikit-learn, deterministic signs) as a linear :class:`Projection`."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full").fit(np.asarray(x, dtype=np.float64))
    share = tuple(float(v) for v in pca.explained_variance_ratio_)
    return Projection(method, pca.mean_, pca.components_, share)  # type: ignore[arg-type]


def fit_projection(method: str, z: np.ndarray, mu: np.ndarray, seed: int = 0,
                   max_points: int = 5000, classes: Sequence[int] | None = None) -> Projection:
    """Fit a 2D projection of the latent space.

    Args:
        method: ``"pca-means"`` (PCA fitted on the K class means, so the axes are the directions
            that separate the classes, as in the paper's Fig. 7), ``"class-plane"`` (the plane
            through three class means, :func:`class_plane`), ``"pca"`` (PCA of ``z``) or
            ``"umap"`` (non-linear; needs ``umap-learn``; its first call compiles and takes a while).
        z: latents ``(N, D)``.
        mu: class means ``(K, D)``.
        seed: UMAP's random state.
        max_points: fit on at most this many latents (an evenly spaced subset).
        classes: the three classes of ``"class-plane"`` (ignored by the other methods).
    """
    if not isinstance(method, str) or method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; known: {', '.join(PROJECTIONS)}"[:300])
    max_points = limits.integer("max_points", max_points, 2)
    z = as_latents("z", z, 1 if method == "pca-means" else 2)  # a 2D fit needs 2 points, 2 dimensions
    mu = as_latents("mu", mu, 2, z.shape[1])
    if len(z) > max_points:
        z = z[np.linspace(0, len(z) - 1, max_points).astype(int)]
    if method == "pca-means":
        return pca_projection(mu, method)
    if method == "class-plane":
        if classes is None:
            raise ValueError("the class-plane projection needs three classes")
        return class_plane(mu, classes)
    if method == "pca":
        return pca_projection(z, method)
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("UMAP needs the umap-learn package: pip install umap-learn") from err
    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.1)
    with warnings.catch_warnings():  # "n_jobs overridden": a seed makes UMAP single-threaded
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reducer.fit(z)
    return Projection(method, reducer=reducer)


def class_plane(mu: Any, classes: Sequence[int], names: Sequence[str] | None = None) -> Projection:
    """The linear projection onto the plane through three class means ``μ_a, μ_b, μ_c``.

    The origin is the triangle's centre; axis 1 runs from ``μ_a`` to ``μ_b``, axis 2 is the
    orthogonal direction within the plane towards ``μ_c`` (Gram-Schmidt). Distances within the
    plane are true latent distances, so how far apart the three classes lie reads off directly;
    every other direction is dropped. ``names`` labels the axes with class names.

    >>> proj = class_plane(np.eye(4) * 2.0, (0, 1, 2))
    >>> np.round(proj.transform(np.eye(4)[[0, 1]] * 2.0), 3).tolist()
    [[-1.414, -0.816], [1.414, -0.816]]
    """
    mu = as_latents("mu", mu, 3)
    chosen = as_class_indices("classes", classes, len(mu))
    if len(chosen) != 3 or len(set(chosen.tolist())) != 3:
        raise ValueError(f"classes must be three different class indices, got {chosen.tolist()}"[:300])
    a, b, c = chosen.tolist()
    ends = mu[[a, b, c]].astype(np.float64)
    first = ends[1] - ends[0]
    second = ends[2] - ends[0]
    first_norm = np.linalg.norm(first)
    second = second - (second @ first) / max(first_norm**2, 1e-300) * first
    second_norm = np.linalg.norm(second)
    if min(first_norm, second_norm) <= 1e-9 * max(np.linalg.norm(ends, axis=1).max(), 1.0):
        raise ValueError(f"the means of classes {a}, {b}, {c} lie on one line: they span no plane")
    return Projection("class-plane", ends.mean(0), np.stack([first / first_norm, second / second_norm]),
                      titles=plane_titles((a, b, c), names))


def plane_titles(classes: Sequence[int], names: Sequence[str] | None = None) -> tuple[str, str]:
    """Axis titles of :func:`class_plane` through classes ``(a, b, c)``: "a → b" and "⊥, towards c"."""
    a, b, c = (str(names[k]) if names is not None else f"class {k}" for k in classes)
    return f"{a} → {b}", f"⊥, towards {c}"


def knn_embedding(anchors: Any, anchor_xy: Any, z: Any, k: int = 15) -> np.ndarray:
    """Place new latents ``z`` in an embedding known only by its points ``anchor_xy`` of the
    latents ``anchors``: each lands at the mean of the points of its ``k`` nearest anchors,
    weighted by UMAP's fuzzy membership ``exp(−(d − ρ) / σ)`` (``ρ`` the nearest distance, ``σ``
    set so that the weights sum to ``log2 k``, as UMAP's ``smooth_knn_dist`` does).

    This is how umap-learn's own ``transform`` initialises new points (without its refinement
    epochs), so it needs no pickled reducer: a zoo model ships only ``anchor_xy``. A latent equal
    to an anchor lands near, not exactly on, that anchor's point (its neighbours pull too).
    """
    anchors = as_latents("anchors", anchors, 2)
    anchor_xy = np.asarray(anchor_xy, dtype=np.float64)
    if anchor_xy.shape != (len(anchors), 2):
        raise ValueError(f"anchor_xy must be ({len(anchors)}, 2), got {anchor_xy.shape}")
    z = as_latents("z", np.atleast_2d(np.asarray(z, dtype=np.float32)), 1, anchors.shape[1])
    k = min(limits.integer("k", k, 2), len(anchors))
    z, anchors = z.astype(np.float64), anchors.astype(np.float64)
    squared = (z**2).sum(1)[:, None] - 2 * z @ anchors.T + (anchors**2).sum(1)[None]
    distances = np.sqrt(np.maximum(squared, 0))
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    excess = np.take_along_axis(distances, nearest, 1)
    excess -= excess[:, :1]
    # bisection on log σ: the weights' sum grows from 1 (σ → 0) to k (σ → ∞)
    scale = np.maximum(excess.mean(1, keepdims=True), 1e-12)
    low, high = np.log(scale) - 20, np.log(scale) + 20
    for _ in range(50):
        mid = (low + high) / 2
        too_small = np.exp(-excess / np.exp(mid)).sum(1, keepdims=True) < math.log2(k)
        low, high = np.where(too_small, mid, low), np.where(too_small, high, mid)
    weights = np.exp(-excess / np.exp((low + high) / 2))
    return (weights[..., None] * anchor_xy[nearest]).sum(1) / weights.sum(1, keepdims=True)
