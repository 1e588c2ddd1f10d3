"""Latent-space exploration: what the dashboard shows, as plain functions on a model and arrays.

Everything here takes an :class:`ibinn.IBINN` and images (uint8 or float in [0, 1], any layout the
model accepts) and returns NumPy arrays in small dataclasses, so that results can be cached and
plotted without touching torch again.

- :func:`summarize` runs a data set through the model once: latents, posteriors, likelihoods,
  bits/dim, prediction entropy and the typicality score of every image.
- :func:`fit_projection` fits a 2D view of the latent space: PCA of the class means ``μ_y``
  (the paper's Fig. 7), the plane through three class means (:func:`class_plane`), PCA of the
  latents, or UMAP. The result projects new latents too.
- :func:`confusion_matrix`, :func:`most_confused_triple` and :func:`nearest_neighbours` answer
  "which classes does the model confuse" and "what lies near this image";
  :func:`projection_arrays` precomputes the latent views a zoo model ships.
- :func:`trajectory` applies a growing distortion to one image (RGB rotation, noise, inversion)
  and records where it goes in latent space and how its scores change (the paper's Fig. 12).
- :func:`interpolation` decodes a straight line between two latents and the posterior along it
  (Fig. 9); :func:`sample_grid` draws classes x samples (Figs. 8, 14).
- :func:`fit_image` turns any PIL image into the model's size and channels, saying what it did;
  :func:`ood_verdict` tests one image against the typicality range of a reference set.

Example:
    >>> import ibinn
    >>> from ibinn import explore
    >>> model = ibinn.load("fashion-mnist/gamma-1", device="cpu")
    >>> data = ibinn.load_dataset("demo:fashion-mnist")
    >>> view = explore.summarize(model, data.images[:500], data.labels[:500])
    >>> proj = explore.fit_projection("pca-means", view.z, view.mu)
    >>> proj.transform(view.z).shape
    (500, 2)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import limits, metrics, ood
from .data import ImageData
from .images import fit_image  # noqa: F401  (part of this module's API, as before)
from .metrics import (
    CALIBRATION_BIN_EDGES,
    calibration,
    entropy,
    reliability_diagram,
    roc_auc,
    typicality_score,
)
from .model import IBINN, ImageClassifier

__all__ = [
    "PROJECTIONS", "TRANSFORMS", "LatentView", "PointScores", "Projection", "Trajectory", "Transform",
    "Verdict", "apply_transform", "class_plane", "confusion_matrix", "fit_image", "fit_projection",
    "in_distribution_range", "interpolation", "knn_embedding", "most_confused_triple",
    "nearest_neighbours", "ood_verdict", "plane_titles", "projection_arrays", "recognised_by",
    "sample_grid", "sample_recognition", "spread_ratio", "class_centroids", "centroid_offset",
    "visible_share",
    "shipped_projection",
    "shipped_scores", "summarize", "transforms_for",
    "SnapshotFrame", "align_frames", "snapshot_frame",  # training snapshots
]

#: Projection methods of :func:`fit_projection` and their display names.
PROJECTIONS: dict[str, str] = {
    "pca-means": "PCA of the class means μ_y (paper Fig. 7)",
    "class-plane": "Plane through three class means",
    "pca": "PCA of the latents z",
    "umap": "UMAP of the latents z",
}
#: The projections fitted on the class means alone: they place new latents without any data set.
MEAN_PROJECTIONS = ("pca-means", "class-plane")


# --------------------------------------------------------------------------- scores

def in_distribution_range(values: np.ndarray, low: float = 5.0, high: float = 95.0
                          ) -> tuple[float, float]:
    """The ``low``-th to ``high``-th percentile of reference values: the band drawn as "typical"."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [low, high])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- data-set summary

def _accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of correct predictions among the labelled images (label ≥ 0); NaN without any."""
    known = labels >= 0
    return float((predicted[known] == labels[known]).mean()) if known.any() else math.nan


@dataclass
class LatentView:
    """One pass of a labelled image set through a model (NumPy arrays, N images, K classes, D dims).

    Attributes:
        z: latents ``(N, D)``, float32.
        proba: posteriors ``q(y | x)``, ``(N, K)``.
        labels: true labels ``(N,)`` (-1 when unknown).
        predicted: argmax of ``proba``.
        log_likelihood: ``log p(x)`` in nats.
        bits_per_dim: bits per dimension of the 8-bit images.
        entropy: prediction entropy in nats.
        typicality: ``|NLL − reference mean NLL|`` in nats.
        mu: class means ``(K, D)``.
        reference_nll_mean: the mean NLL the typicality score is measured from.
    """

    z: np.ndarray
    proba: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    log_likelihood: np.ndarray
    bits_per_dim: np.ndarray
    entropy: np.ndarray
    typicality: np.ndarray
    mu: np.ndarray
    reference_nll_mean: float

    def __len__(self) -> int:
        return len(self.z)

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions (NaN without labels)."""
        return _accuracy(self.labels, self.predicted)

    @property
    def confidence(self) -> np.ndarray:
        """Top posterior probability per image."""
        return self.proba.max(1)


def summarize(model: ImageClassifier, images: Any, labels: Any = None,
              reference_nll_mean: float | None = None, batch_size: int = 500) -> LatentView:
    """Run ``images`` through ``model`` once and collect everything the dashboard plots.

    Args:
        model: the IB-INN, or any classifier: one without a likelihood (a discriminative baseline)
            gets NaN log-likelihoods, bits/dim and typicality scores, and no class means.
        images: a batch the model accepts (see :meth:`ibinn.IBINN.as_unit_batch`).
        labels: true labels, or None.
        reference_nll_mean: mean in-distribution NLL for the typicality score; by default the
            mean over ``images`` themselves (right for an in-distribution reference set).
    """
    if reference_nll_mean is not None:
        reference_nll_mean = limits.real("reference_nll_mean", reference_nll_mean)
    out = model.infer(images, batch_size)
    n = len(out.z)
    ll = out.log_likelihood.double().numpy() if model.has_likelihood else np.full(n, np.nan)
    bits = out.bits_per_dim.double().numpy() if model.has_likelihood else np.full(n, np.nan)
    proba = out.proba.double().numpy()
    ref = float(np.mean(-ll)) if reference_nll_mean is None else reference_nll_mean
    mu = model.mu.detach().float().cpu().numpy() if isinstance(model, IBINN) else np.zeros((0, 0))
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    return LatentView(
        z=out.z.float().numpy(), proba=proba, labels=lab, predicted=proba.argmax(1),
        log_likelihood=ll, bits_per_dim=bits, entropy=entropy(proba),
        typicality=typicality_score(-ll, ref), mu=mu, reference_nll_mean=ref)


# --------------------------------------------------------------------------- projections

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


def _pca(x: np.ndarray, method: str) -> Projection:
    """A two-component PCA (scikit-learn, deterministic signs) as a linear :class:`Projection`."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full").fit(np.asarray(x, dtype=np.float64))
    share = tuple(float(v) for v in pca.explained_variance_ratio_)
    return Projection(method, pca.mean_, pca.components_, share)  # type: ignore[arg-type]


def _latents(name: str, value, min_rows: int, dim: int | None = None) -> np.ndarray:
    """``value`` as finite float32 latents ``(N, D)`` with ``N ≥ min_rows`` and ``D ≥ 2`` (or
    ``dim``), or a ``ValueError`` naming ``name``."""
    try:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below
            array = np.asarray(value, dtype=np.float32) if value is not None else None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be latents (N, D) of numbers: {err}"[:300]) from err
    if (array is None or array.ndim != 2 or len(array) < min_rows or array.shape[1] < 2
            or (dim and array.shape[1] != dim)):
        raise ValueError(f"{name} must be latents (N, {dim or 'D'}) with N ≥ {min_rows} and D ≥ 2, "
                         f"got {'None' if array is None else tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


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
    z = _latents("z", z, 1 if method == "pca-means" else 2)  # a 2D fit needs 2 points, 2 dimensions
    mu = _latents("mu", mu, 2, z.shape[1])
    if len(z) > max_points:
        z = z[np.linspace(0, len(z) - 1, max_points).astype(int)]
    if method == "pca-means":
        return _pca(mu, method)
    if method == "class-plane":
        if classes is None:
            raise ValueError("the class-plane projection needs three classes")
        return class_plane(mu, classes)
    if method == "pca":
        return _pca(z, method)
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("UMAP needs the umap-learn package: pip install umap-learn") from err
    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.1)
    with warnings.catch_warnings():  # "n_jobs overridden": a seed makes UMAP single-threaded
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reducer.fit(z)
    return Projection(method, reducer=reducer)


# --------------------------------------------------------------------------- distortions

Transform = Callable[[torch.Tensor, float, int], torch.Tensor]


def _rgb_rotation(x: torch.Tensor, alpha: float, seed: int) -> torch.Tensor:
    return ood.rgb_rotation(x, alpha, seed)


def _noise(x: torch.Tensor, amplitude: float, seed: int) -> torch.Tensor:
    return ood.uniform_noise(x, amplitude, seed)


def _inversion(x: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
    return ood.invert(x, amount).clamp(0, 1)  # a blend beyond t = 1 leaves [0, 1]


@dataclass(frozen=True)
class TransformSpec:
    """A family of distortions indexed by a strength ``s`` (0 = the original image)."""

    name: str
    label: str
    strength_label: str
    max_strength: float
    channels: tuple[int, ...]
    apply: Transform
    help: str


#: The distortions of :func:`trajectory`, by name.
TRANSFORMS: dict[str, TransformSpec] = {
    "rgb-rotation": TransformSpec(
        "rgb-rotation", "RGB rotation", "rotation angle α (rad)", math.pi, (3,), _rgb_rotation,
        "Every pixel's colour vector is rotated about the grey axis centre by α around a fixed "
        "random 3D axis (the paper's OoD set uses α = 0.3π). Shapes stay, colours become unnatural."),
    "noise": TransformSpec(
        "noise", "Uniform noise", "noise amplitude", 0.5, (1, 3), _noise,
        "Uniform noise of growing amplitude (one fixed noise pattern, scaled up) is added to every "
        "pixel: the content stays, the image statistics change."),
    "inversion": TransformSpec(
        "inversion", "Inversion blend", "blend t (0 = original, 1 = inverted)", 1.0, (1, 3),
        _inversion,
        "The image is blended with its negative, x → (1 − t)·x + t·(1 − x): at t = 1 bright objects "
        "on a dark background become dark objects on a bright one."),
}


def transforms_for(channels: int) -> list[str]:
    """Names of the distortions that make sense for images with ``channels`` channels."""
    return [name for name, spec in TRANSFORMS.items() if channels in spec.channels]


def apply_transform(model: ImageClassifier, images: Any, name: str, strength: float, seed: int = 0
                    ) -> torch.Tensor:
    """``images`` (a batch, or one image) distorted by :data:`TRANSFORMS` ``[name]`` at ``strength``.

    Returns float images ``(N, C, H, W)`` in [0, 1].
    """
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}"[:300])
    spec = TRANSFORMS[name]
    strength = limits.real("strength", strength, low=0, high=1e3)
    seed = limits.integer("seed", seed, 0, 2**63 - 1)
    x = model.as_batch(images)
    if x.shape[1] not in spec.channels:
        raise ValueError(f"{spec.label} needs images with {spec.channels} channels, "
                         f"got {x.shape[1]}; use one of {transforms_for(x.shape[1])}")
    return spec.apply(x, float(strength), seed) if strength > 0 else x


# --------------------------------------------------------------------------- trajectories

@dataclass
class Trajectory:
    """One image under a growing distortion: ``S`` strengths, images and scores per step."""

    transform: str
    strengths: np.ndarray
    images: np.ndarray  #: float (S, C, H, W) in [0, 1]
    z: np.ndarray
    proba: np.ndarray
    bits_per_dim: np.ndarray
    log_likelihood: np.ndarray
    entropy: np.ndarray
    typicality: np.ndarray


def trajectory(model: ImageClassifier, image: Any, transform: str, strengths: Sequence[float],
               reference_nll_mean: float | None, seed: int = 0) -> Trajectory:
    """Distort one image by ``transform`` at each of ``strengths`` and run every step through the model.

    Args:
        model: the IB-INN, or any classifier (without a likelihood, bits/dim and typicality are NaN).
        image: one image (with or without the batch axis).
        transform: a key of :data:`TRANSFORMS` valid for the image's channels.
        strengths: distortion strengths, e.g. ``np.linspace(0, π, 13)`` for RGB rotation.
        reference_nll_mean: mean NLL of in-distribution images, for the typicality score (None
            for a model without a likelihood).
        seed: fixes the rotation axis / noise pattern, so all steps share it.
    """
    x = model.as_batch(image)
    if len(x) != 1:
        raise ValueError(f"expected one image, got {len(x)}")
    if strengths is None or isinstance(strengths, str | bytes):  # numpy would read "0.5" as [0.5]
        raise ValueError(f"strengths must be a sequence of numbers, got {type(strengths).__name__}")
    try:
        strengths = np.asarray(strengths, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"strengths must be a sequence of numbers: {err}") from err
    limits.integer("len(strengths)", len(strengths), 1, limits.current().max_steps)
    steps = torch.cat([apply_transform(model, x, transform, float(s), seed) for s in strengths])
    view = summarize(model, steps, reference_nll_mean=reference_nll_mean)
    return Trajectory(transform, strengths, steps.numpy(), view.z, view.proba, view.bits_per_dim,
                      view.log_likelihood, view.entropy, view.typicality)


# --------------------------------------------------------------------------- generation

@dataclass
class Interpolation:
    """A straight latent path between two images, decoded, with the posterior at each step."""

    t: np.ndarray  #: (S,) from 0 to 1
    images: np.ndarray  #: float (S, C, H, W) in [0, 1]
    proba: np.ndarray  #: (S, K)
    z: np.ndarray  #: (S, D)


@torch.no_grad()
def interpolation(model: IBINN, x_a: Any, x_b: Any, steps: int = 9) -> Interpolation:
    """Decode ``(1 − t)·z_a + t·z_b`` for ``steps`` values of ``t`` and classify each latent.

    The posterior along the path comes from the latents directly (Bayes' rule on the GMM),
    so it shows where the line crosses from one class region into another.
    """
    steps = limits.integer("steps", steps, 2, limits.current().max_steps)
    ends = torch.cat([model.as_batch(x) for x in (x_a, x_b)])
    if len(ends) != 2:
        raise ValueError("x_a and x_b must be single images")
    z = model.encode(ends)
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    path = (1 - t) * z[0] + t * z[1]
    images = model.decode(path).clamp(0, 1)
    proba = model.log_posterior_from(path.to(model.device)).exp().cpu()
    return Interpolation(t[:, 0].numpy(), images.numpy(), proba.double().numpy(), path.numpy())


def sample_grid(model: IBINN, n_per_class: int, temperature: float = 1.0, seed: int = 0,
                classes: Sequence[int] | None = None, independent: bool = False,
                centres: Any = None) -> np.ndarray:
    """Samples ``(K, n_per_class, C, H, W)`` in [0, 1], one row per class, from ``μ_y + T·ε``.

    By default every class uses the same seed, so the rows share their noise ``ε`` and differ only
    by ``μ_y``; ``independent=True`` draws each class's noise from its own seed (derived from
    ``seed`` and the class). ``temperature=0`` decodes the class means themselves. ``centres``:
    ``(K, D)`` latents to sample around instead of the ``μ_y``, one per class of the model (e.g.
    :func:`class_centroids` of real images).
    """
    if classes is not None and (isinstance(classes, str | bytes) or not hasattr(classes, "__iter__")):
        raise ValueError(f"classes must be a list of class indices, got {type(classes).__name__}")
    classes = range(model.config.n_classes) if classes is None else list(classes)
    limits.integer("n_per_class × classes", len(classes) * limits.integer("n_per_class", n_per_class, 1),
                   1, limits.current().max_samples)
    if centres is not None:
        centres = np.asarray(centres, dtype=np.float32)
        if centres.shape != (model.config.n_classes, model.config.dim):
            raise ValueError(f"centres must be ({model.config.n_classes}, {model.config.dim}), one "
                             f"latent per class; got {centres.shape}")

    def seed_of(k: int) -> int:
        return int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) if independent else seed

    rows = [model.sample(k, n_per_class, temperature=temperature, seed=seed_of(k),
                         centre=None if centres is None else centres[k]).numpy()
            for k in classes]
    return np.stack(rows)


def class_centroids(z: Any, labels: Any, n_classes: int) -> np.ndarray:
    """The mean latent ``(K, D)`` of each class's images: where the class's real data lies, which
    need not be its ``μ_y`` (the paper, appendix D.3: "the mass of points in latent space is
    offset from the learned μ_y"). Every class needs at least one image."""
    z = _latents("z", z, 1)
    labels = _class_indices("labels", labels, n_classes)
    if len(labels) != len(z):
        raise ValueError(f"labels ({len(labels)}) and z ({len(z)}) must have one entry per image")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no images")
    sums = np.zeros((n_classes, z.shape[1]))
    np.add.at(sums, labels, z)
    return sums / counts[:, None]


def recognised_by(classifier: ImageClassifier, grid: Any, classes: Sequence[int] | None = None
                  ) -> np.ndarray:
    """The share of each row of ``grid`` (:func:`sample_grid`'s ``(K, S, C, H, W)`` in [0, 1])
    that ``classifier`` (e.g. the family's ResNet) assigns to the row's class, ``(K,)``. The
    samples are rounded to 8 bits first, as a saved image would be. ``classes``: the class of
    each row (by default row ``k`` is class ``k``)."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 5:
        raise ValueError(f"grid must be (classes, samples, C, H, W), got shape {grid.shape}")
    k, s = grid.shape[:2]
    classes = np.arange(k) if classes is None else np.asarray(classes)
    if classes.shape != (k,):
        raise ValueError(f"classes must name the class of each of the {k} rows")
    as_8bit = np.round(np.clip(grid.reshape(k * s, *grid.shape[2:]), 0, 1) * 255).astype(np.uint8)
    predicted = classifier.infer(as_8bit).proba.numpy().argmax(1).reshape(k, s)
    return (predicted == classes[:, None]).mean(1)


def sample_recognition(model: IBINN, classifier: ImageClassifier, temperatures: Sequence[float],
                       centres: Any = None, n_per_class: int = 20, seed: int = 1) -> np.ndarray:
    """For each temperature, the share of samples (``n_per_class`` per class, independent noise,
    around ``centres`` or the ``μ_y``) that ``classifier`` recognises as the class they were
    drawn from (:func:`recognised_by`). An independent classifier (the ResNet baseline), not the
    model itself, says whether a sample looks like its class to anyone but its maker."""
    return np.asarray([recognised_by(classifier, sample_grid(model, n_per_class, t, seed,
                                                             independent=True, centres=centres)).mean()
                       for t in temperatures])


def spread_ratio(points: Any, labels: Any, n_classes: int) -> float:
    """Between-class over within-class spread of ``points`` ``(N, D)`` (latents, or their 2D
    projection): the RMS distance of the class centroids from their mean, over the RMS distance
    of the points from their own class's centroid. Above 1 the classes stand apart; below 1
    they overlap."""
    points = _latents("points", points, 2)
    labels = _class_indices("labels", labels, n_classes)
    centroids = class_centroids(points, labels, n_classes)
    between = np.sqrt(np.mean(np.sum((centroids - centroids.mean(0)) ** 2, 1)))
    within = np.sqrt(np.mean(np.sum((points - centroids[labels]) ** 2, 1)))
    return float(between / within)


def class_separation(model: IBINN) -> tuple[float, float]:
    """Mean distance between two class centres ``‖μ_i − μ_j‖``, and the typical norm of the sample
    noise ``‖ε‖ ≈ √dim``, both in latent units: sampled rows differ visibly by class only when the
    first is not small against the second."""
    mu = model.mu.detach().double().cpu()
    distances = torch.pdist(mu)
    return float(distances.mean()), math.sqrt(mu.shape[1])


def visible_share(path_xy: Any, path_z: Any) -> float:
    """How much of a latent path's movement a linear 2D view shows: the distance from its first
    to its last point in the plane ``path_xy`` ``(S, 2)`` over the same distance in the latent
    space ``path_z`` ``(S, D)``. For a projection on orthonormal axes (the PCAs) it is at most 1;
    a small share means the path leaves its class in directions the picture does not show."""
    xy = np.asarray(path_xy, dtype=np.float64)
    z = _latents("path_z", path_z, 2)
    if xy.shape != (len(z), 2):
        raise ValueError(f"path_xy must be ({len(z)}, 2), one point per latent; got {xy.shape}")
    moved = float(np.linalg.norm(z[-1].astype(np.float64) - z[0]))
    return float(np.linalg.norm(xy[-1] - xy[0])) / moved if moved > 0 else 0.0


def centroid_offset(model: IBINN, centroids: Any) -> float:
    """Mean distance ``‖c_y − μ_y‖`` between each class's data centroid (:func:`class_centroids`)
    and its class mean, in latent units: how far the real images sit from where the model's own
    Gaussian is centred."""
    mu = model.mu.detach().double().cpu().numpy()
    centroids = _latents("centroids", centroids, len(mu), mu.shape[1])
    if len(centroids) != len(mu):
        raise ValueError(f"centroids must have one row per class ({len(mu)}), got {len(centroids)}")
    return float(np.linalg.norm(centroids - mu, axis=1).mean())


# --------------------------------------------------------------------------- user images

# fit_image lives in ibinn.images (with the safe decoder, open_image); imported above.


@dataclass
class Verdict:
    """An in/out-of-distribution decision for one image."""

    in_distribution: bool
    score: float  #: typicality score of the image
    threshold: float  #: the reference set's ``quantile``-th percentile of typicality scores
    quantile: float
    percentile_of_score: float  #: share of reference images with a lower score, in percent

    @property
    def label(self) -> str:
        return "in-distribution" if self.in_distribution else "out-of-distribution"


def ood_verdict(score: float, reference_scores: np.ndarray, quantile: float = 95.0) -> Verdict:
    """Call an image out-of-distribution when its typicality score exceeds the ``quantile``-th
    percentile of in-distribution scores (so ``100 − quantile`` % of real test images are flagged)."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    threshold = float(np.percentile(ref, quantile))
    return Verdict(bool(score <= threshold), float(score), threshold, float(quantile),
                   float((ref < score).mean() * 100))


# --------------------------------------------------------------------------- questions to the latent space

def _class_indices(name: str, values: Any, n_classes: int) -> np.ndarray:
    """``values`` as a 1D int64 array of class indices in ``[0, n_classes)``, or a ValueError."""
    if values is None or isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a sequence of class indices, got {type(values).__name__}")
    array = np.asarray(values)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"{name} must be a 1D sequence of integers, got shape {array.shape} "
                         f"of {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got values from {array.min()} "
                         f"to {array.max()}")
    return array.astype(np.int64)


def confusion_matrix(labels: Any, predicted: Any, n_classes: int) -> np.ndarray:
    """Counts ``(K, K)`` of images of true class ``i`` (row) predicted as class ``j`` (column).

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    """
    n_classes = limits.integer("n_classes", n_classes, 1, limits.current().max_classes)
    labels = _class_indices("labels", labels, n_classes)
    predicted = _class_indices("predicted", predicted, n_classes)
    if len(labels) != len(predicted):
        raise ValueError(f"labels and predicted differ in length: {len(labels)} != {len(predicted)}")
    counts = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def most_confused_triple(confusion: Any) -> tuple[int, int, int]:
    """The two classes mistaken for each other most often (both directions added up), then the
    class mistaken most often for, or with, either of them; ties go to the lower index.

    >>> most_confused_triple([[9, 0, 1], [0, 8, 2], [3, 4, 5]])
    (1, 2, 0)
    """
    counts = np.asarray(confusion, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 3:
        raise ValueError(f"confusion must be a square matrix of at least 3 classes, got shape "
                         f"{counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("confusion must hold finite, non-negative counts")
    mistakes = counts + counts.T
    np.fill_diagonal(mistakes, -1)  # a class is never its own partner
    a, b = np.unravel_index(int(np.argmax(mistakes)), mistakes.shape)
    with_either = mistakes[a] + mistakes[b]
    with_either[[a, b]] = -np.inf
    return int(min(a, b)), int(max(a, b)), int(np.argmax(with_either))


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
    mu = _latents("mu", mu, 3)
    chosen = _class_indices("classes", classes, len(mu))
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


def nearest_neighbours(z: Any, index: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` latents nearest to ``z[index]`` (Euclidean, the point itself left out): their
    indices and distances, nearest first (ties: lower index first).

    >>> nearest_neighbours([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]], 0, 2)
    (array([2, 3]), array([1., 2.]))
    """
    z = _latents("z", z, 2)
    index = limits.integer("index", index, 0, len(z) - 1)
    k = limits.integer("k", k, 1, len(z) - 1)
    distances = np.sqrt(((z.astype(np.float64) - z[index]) ** 2).sum(1))
    distances[index] = np.inf
    order = np.argsort(distances, kind="stable")[:k]
    return order, distances[order]


def knn_embedding(anchors: Any, anchor_xy: Any, z: Any, k: int = 15) -> np.ndarray:
    """Place new latents ``z`` in an embedding known only by its points ``anchor_xy`` of the
    latents ``anchors``: each lands at the mean of the points of its ``k`` nearest anchors,
    weighted by UMAP's fuzzy membership ``exp(−(d − ρ) / σ)`` (``ρ`` the nearest distance, ``σ``
    set so that the weights sum to ``log2 k``, as UMAP's ``smooth_knn_dist`` does).

    This is how umap-learn's own ``transform`` initialises new points (without its refinement
    epochs), so it needs no pickled reducer: a zoo model ships only ``anchor_xy``. A latent equal
    to an anchor lands near, not exactly on, that anchor's point (its neighbours pull too).
    """
    anchors = _latents("anchors", anchors, 2)
    anchor_xy = np.asarray(anchor_xy, dtype=np.float64)
    if anchor_xy.shape != (len(anchors), 2):
        raise ValueError(f"anchor_xy must be ({len(anchors)}, 2), got {anchor_xy.shape}")
    z = _latents("z", np.atleast_2d(np.asarray(z, dtype=np.float32)), 1, anchors.shape[1])
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


@dataclass
class PointScores:
    """What the latent scatter shows of each demo image besides its position: the scores of
    :class:`LatentView` without latents or posteriors, so that a zoo model can ship them."""

    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    log_likelihood: np.ndarray
    bits_per_dim: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions (NaN without labels)."""
        return _accuracy(self.labels, self.predicted)

    @property
    def reference_nll_mean(self) -> float:
        """The mean NLL of these images: the centre of the typicality test for new images."""
        return float(-self.log_likelihood.astype(np.float64).mean())

    @property
    def typicality(self) -> np.ndarray:
        """``|NLL − mean NLL|`` in nats, the demo set being its own reference (as in
        :func:`summarize`)."""
        return typicality_score(-self.log_likelihood.astype(np.float64), self.reference_nll_mean)

    @classmethod
    def of(cls, view: LatentView) -> PointScores:
        return cls(view.labels, view.predicted, view.confidence, view.entropy, view.log_likelihood,
                   view.bits_per_dim)


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


# --------------------------------------------------------------------------- shipped with the zoo


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


# --------------------------------------------------------------------------- training snapshots

@dataclass
class SnapshotFrame:
    """One frame of the latent space forming during training (see :func:`snapshot_frame`)."""

    xy: np.ndarray  #: ``(N, 2)`` the images' latents on the plane of the class means' two PCs
    mu_xy: np.ndarray  #: ``(K, 2)`` the class means on that plane
    accuracy: float  #: share of the images classified correctly
    explained: tuple[float, float]  #: share of the class means' variance along each axis


def snapshot_frame(model: IBINN, images: Any, labels: Any) -> SnapshotFrame:
    """Project a model's latents of ``images`` onto the plane of its class means' first two
    principal components (the paper's Fig. 7 view), as it stands now; eval mode for the pass,
    the model's mode restored after.

    Each frame has its own plane (the means move while training); :func:`align_frames` turns a
    sequence of frames into one readable animation. A non-finite latent, possible early in a
    run, becomes a NaN point (not drawn) rather than an error.

    Example:
        >>> model = ibinn.load("fashion-mnist/gamma-1", device="cpu")  # doctest: +SKIP
        >>> data = ibinn.load_dataset("demo:fashion-mnist", "test")  # doctest: +SKIP
        >>> snapshot_frame(model, data.images[:300], data.labels[:300]).xy.shape  # doctest: +SKIP
        (300, 2)
    """
    out = model.infer(images)
    labels = np.asarray(labels, dtype=np.int64)
    mu = _latents("mu", model.mu.detach().float().cpu().numpy(), 2)
    plane = _pca(mu, "pca-means")
    with np.errstate(invalid="ignore", over="ignore"):
        xy = plane.transform(out.z.numpy())
    accuracy = float((out.log_posterior.argmax(1).numpy() == labels).mean())
    return SnapshotFrame(np.where(np.isfinite(xy), xy, np.nan), plane.transform(mu), accuracy,
                         plane.explained)  # type: ignore[arg-type]


def align_frames(xy: np.ndarray, mu_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (or reflect) every frame onto the next, from the last frame back, so that an
    animation of :func:`snapshot_frame` frames moves only where the latent space moves.

    Each frame's principal axes are defined up to sign and order, and the means' plane turns as
    training goes; an orthogonal Procrustes fit of each frame's points (images and means) to the
    already aligned next frame removes that, keeping distances (no scaling: clusters are seen to
    grow apart). The last frame is left as it is, so the animation ends on the live view.

    Args:
        xy: ``(F, N, 2)`` image points per frame (NaN: not drawn, ignored by the fit).
        mu_xy: ``(F, K, 2)`` class means per frame.

    Returns:
        Aligned copies of ``xy`` and ``mu_xy``.

    Example:
        >>> last = np.array([[[1.0, 0.0], [0.0, 2.0]]])
        >>> flipped = last * [-1.0, 1.0]  # the first frame's x axis points the other way
        >>> aligned, _ = align_frames(np.concatenate([flipped, last]), np.zeros((2, 1, 2)))
        >>> np.allclose(aligned[0], last[0])
        True
    """
    xy, mu_xy = np.array(xy, dtype=np.float64), np.array(mu_xy, dtype=np.float64)
    if xy.ndim != 3 or mu_xy.ndim != 3 or xy.shape[2] != 2 or mu_xy.shape[2] != 2 \
            or len(xy) != len(mu_xy):
        raise ValueError(f"frames must be (F, N, 2) and (F, K, 2) arrays, got {xy.shape} and "
                         f"{mu_xy.shape}")
    for i in range(len(xy) - 2, -1, -1):
        source = np.concatenate([xy[i], mu_xy[i]])
        target = np.concatenate([xy[i + 1], mu_xy[i + 1]])
        both = np.isfinite(source).all(1) & np.isfinite(target).all(1)
        u, _, vt = np.linalg.svd(source[both].T @ target[both])
        rotation = u @ vt  # the orthogonal map taking source closest to target
        xy[i], mu_xy[i] = xy[i] @ rotation, mu_xy[i] @ rotation
    return xy, mu_xy


# --------------------------------------------------------------------------- generative vs discriminative

#: Per-image scores of :class:`DetectorScores`: the prediction's own and, where the model has them,
#: its likelihood's (bits/dim, typicality: likelihood models) and the VIB's info loss.
SCORE_NAMES = ("confidence", "entropy", "bits_per_dim", "typicality", "info_loss")

#: OoD detectors: display name → (score, sign). ``sign · score`` grows with "out of distribution":
#: a discriminative model's best guess is its own low max-softmax confidence (Hendrycks & Gimpel, 2017).
DETECTORS: dict[str, tuple[str, int]] = {
    "max-softmax": ("confidence", -1),
    "typicality": ("typicality", 1),
    "info loss": ("info_loss", 1),
}

_DETECTOR_PREFIX = "detector/"
_HALF_MAX = float(np.finfo(np.float16).max)


def is_discriminative(model: ImageClassifier | type[ImageClassifier]) -> bool:
    """A classifier without a likelihood ``p(x)``: it models ``q(y | x)`` only.

    Example:
        >>> import ibinn
        >>> is_discriminative(ibinn.MODEL_TYPES["resnet"]), is_discriminative(ibinn.IBINN)
        (True, False)
    """
    return not model.capabilities()["likelihood"]


def capability_table(models: dict[str, ImageClassifier | type[ImageClassifier]]
                     ) -> dict[str, dict[str, bool]]:
    """Capability → {model label → declared or not}, from each model's (class's)
    :meth:`~ibinn.model.ImageClassifier.capabilities`; rows in the order they declare them.

    Example:
        >>> import ibinn
        >>> table = capability_table({"IB-INN": ibinn.IBINN, "ResNet": ibinn.MODEL_TYPES["resnet"]})
        >>> table["likelihood"], table["classify"]
        ({'IB-INN': True, 'ResNet': False}, {'IB-INN': True, 'ResNet': True})
    """
    declared = {label: model.capabilities() for label, model in models.items()}
    rows = next(iter(declared.values()), {})
    return {row: {label: caps[row] for label, caps in declared.items()} for row in rows}


def image_scores(model: ImageClassifier, images: Any, reference_nll_mean: float | None = None,
                 batch_size: int = 500) -> dict[str, np.ndarray]:
    """Per-image scores of :data:`SCORE_NAMES` that ``model`` has: top-class confidence and
    prediction entropy always; bits/dim and the typicality score ``|NLL − reference_nll_mean|``
    for a model with a likelihood (the reference defaults to the images' own mean NLL); the VIB's
    info loss."""
    return _output_scores(model, model.infer(images, batch_size), reference_nll_mean)


def _output_scores(model: ImageClassifier, out: Any, reference_nll_mean: float | None
                   ) -> dict[str, np.ndarray]:
    """:func:`image_scores` of ``out = model.infer(images)``."""
    proba = out.proba.double().numpy()
    scores = {"confidence": proba.max(1), "entropy": entropy(proba)}
    if model.has_likelihood:
        nll = -out.log_likelihood.double().numpy()
        ref = float(nll.mean()) if reference_nll_mean is None else limits.real(
            "reference_nll_mean", reference_nll_mean)
        scores["bits_per_dim"] = out.bits_per_dim.double().numpy()
        scores["typicality"] = typicality_score(nll, ref)
    if getattr(out, "info_loss", None) is not None:
        scores["info_loss"] = out.info_loss.double().numpy()
    return scores


def _half(values: np.ndarray) -> np.ndarray:
    """float16 for storage, clipped to its range (a huge typicality score would become ∞)."""
    return np.clip(np.asarray(values, dtype=np.float64), -_HALF_MAX, _HALF_MAX).astype(np.float16)


@dataclass
class DetectorScores:
    """What the "Generative vs discriminative" page shows of one model, beyond single images.

    Attributes:
        in_distribution: score name → values on the demo (test) images.
        ood: OoD set name (:func:`ibinn.ood.default_sets`) → score name → values on that set.
        reliability: :func:`ibinn.metrics.reliability_diagram` of the demo images.
        ece: expected calibration error on the demo images (fraction).
        reference_nll_mean: the demo images' mean NLL, the typicality test's centre (NaN without
            a likelihood).
        aucs: :func:`detector_aucs` of these scores; computed when not given (shipped with zoo
            models, so that the page needs no scikit-learn, whose import alone takes a second).
    """

    in_distribution: dict[str, np.ndarray]
    ood: dict[str, dict[str, np.ndarray]]
    reliability: dict[str, np.ndarray]
    ece: float
    reference_nll_mean: float
    aucs: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.aucs:
            self.aucs = detector_aucs(self)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays under ``detector/...`` (scores float16), for :func:`derived_arrays`."""
        arrays = {f"{_DETECTOR_PREFIX}in/{k}": _half(v) for k, v in self.in_distribution.items()}
        for name, scores in self.ood.items():
            arrays.update({f"{_DETECTOR_PREFIX}ood/{name}/{k}": _half(v) for k, v in scores.items()})
        arrays[f"{_DETECTOR_PREFIX}reliability/counts"] = self.reliability["counts"].astype(np.int32)
        arrays[f"{_DETECTOR_PREFIX}reliability/correct"] = self.reliability["correct"].astype(np.int32)
        arrays[f"{_DETECTOR_PREFIX}ece"] = np.float64(self.ece)
        arrays[f"{_DETECTOR_PREFIX}reference_nll_mean"] = np.float64(self.reference_nll_mean)
        for name, row in self.aucs.items():
            arrays.update({f"{_DETECTOR_PREFIX}auc/{name}/{d}": np.float64(v) for d, v in row.items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DetectorScores | None:
        """The scores stored by :meth:`to_arrays` (other keys ignored), or None when there are none
        or they predate a score this version ships (the likelihood's bits/dim)."""
        older = (f"{_DETECTOR_PREFIX}in/typicality" in arrays
                 and f"{_DETECTOR_PREFIX}in/bits_per_dim" not in arrays)
        if f"{_DETECTOR_PREFIX}ece" not in arrays or older:
            return None
        in_distribution: dict[str, np.ndarray] = {}
        ood_scores: dict[str, dict[str, np.ndarray]] = {}
        aucs: dict[str, dict[str, float]] = {}
        for key, value in arrays.items():
            parts = key.split("/")
            name = "/".join(parts[2:-1])  # a set name may itself contain "/" (a folder)
            if parts[:2] == ["detector", "in"]:
                in_distribution[parts[2]] = value.astype(np.float64)
            elif parts[:2] == ["detector", "ood"]:
                ood_scores.setdefault(name, {})[parts[-1]] = value.astype(np.float64)
            elif parts[:2] == ["detector", "auc"]:
                aucs.setdefault(name, {})[parts[-1]] = float(value)
        counts = arrays[f"{_DETECTOR_PREFIX}reliability/counts"].astype(np.int64)
        correct = arrays[f"{_DETECTOR_PREFIX}reliability/correct"].astype(np.float64)
        edges = CALIBRATION_BIN_EDGES
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
        reliability = {"bin_edges": edges, "confidence": 0.5 * (edges[1:] + edges[:-1]),
                       "accuracy": accuracy, "counts": counts, "correct": correct}
        return cls(in_distribution, ood_scores, reliability,
                   float(arrays[f"{_DETECTOR_PREFIX}ece"]),
                   float(arrays[f"{_DETECTOR_PREFIX}reference_nll_mean"]), aucs)


def detector_scores(model: ImageClassifier, demo: ImageData, ood_limit: int = 500) -> DetectorScores:
    """:class:`DetectorScores` of ``model``: every demo image, and the first ``ood_limit`` images
    of each of its default OoD sets (:func:`ibinn.ood.default_sets`)."""
    ood_limit = limits.integer("ood_limit", ood_limit, 1, limits.current().max_samples)
    out = model.infer(demo.images)
    proba = out.proba.double().numpy()
    labels = demo.labels.numpy()
    reference = float(-out.log_likelihood.double().mean()) if model.has_likelihood else math.nan
    in_distribution = _output_scores(model, out, reference if model.has_likelihood else None)
    sets = {name: image_scores(model, ood.make_ood_set(name, demo, limit=ood_limit),
                               reference if model.has_likelihood else None)
            for name in ood.default_sets(tuple(demo.image_shape))}
    return DetectorScores(in_distribution, sets, reliability_diagram(proba, labels),
                          calibration(proba, labels)["ece"], reference)


def detector_arrays(model: ImageClassifier, demo: ImageData, ood_limit: int = 500
                    ) -> dict[str, np.ndarray]:
    """:func:`detector_scores` as plain ``detector/...`` arrays, shipped with each zoo model."""
    return detector_scores(model, demo, ood_limit).to_arrays()


def detector_aucs(scores: DetectorScores) -> dict[str, dict[str, float]]:
    """OoD set → detector (:data:`DETECTORS` the model has) → ROC-AUC in percent of telling the
    set from the demo images (50 = chance, 100 = perfect)."""
    table: dict[str, dict[str, float]] = {}
    for name, out in scores.ood.items():
        table[name] = {detector: 100 * roc_auc(sign * scores.in_distribution[score], sign * out[score])
                       for detector, (score, sign) in DETECTORS.items()
                       if score in out and score in scores.in_distribution}
    return table


#: Two ROC-AUCs this close (in points) are not told apart: the OoD sets hold a few hundred images.
TIE_POINTS = 1.0


@dataclass(frozen=True)
class DetectorDuel:
    """The best OoD detector of two models on one OoD set."""

    ood_set: str
    best: tuple[tuple[str, str, float], tuple[str, str, float]]  #: (model, detector, AUC) each
    margin: float  #: first AUC − second AUC, in points

    @property
    def winner(self) -> str | None:
        """The model whose best detector is ahead by more than ``TIE_POINTS``, else None."""
        if abs(self.margin) <= TIE_POINTS:
            return None
        return self.best[0][0] if self.margin > 0 else self.best[1][0]

    @property
    def sentence(self) -> str:
        (m1, d1, a1), (m2, d2, a2) = self.best
        scores = f"{m1} {d1} {a1:.1f} vs {m2} {d2} {a2:.1f}"
        if self.winner is None:
            return f"**{self.ood_set}**: a tie ({scores}, within {TIE_POINTS:g} points)."
        return f"**{self.ood_set}**: {self.winner} ahead by {abs(self.margin):.1f} points ({scores})."


def detector_duels(aucs: dict[str, dict[str, dict[str, float]]]) -> list[DetectorDuel]:
    """For two models' :func:`detector_aucs` (model label → table), the best detector of each on
    every OoD set both were tested on, and by how much the first model's is ahead."""
    if len(aucs) != 2:
        raise ValueError(f"detector_duels compares two models, got {len(aucs)}")
    (name_a, table_a), (name_b, table_b) = aucs.items()
    duels = []
    for ood_set in [s for s in table_a if s in table_b and table_a[s] and table_b[s]]:
        best_a = max(table_a[ood_set].items(), key=lambda item: item[1])
        best_b = max(table_b[ood_set].items(), key=lambda item: item[1])
        duels.append(DetectorDuel(ood_set, ((name_a, *best_a), (name_b, *best_b)),
                                  best_a[1] - best_b[1]))
    return duels


def duel_summary(duels: Sequence[DetectorDuel]) -> str:
    """One sentence counting the OoD sets each model's best detector wins, e.g.
    ``"IB-INN wins on 2 of 3 OoD sets, ResNet on 1, 0 ties."``."""
    if not duels:
        return "No OoD set was tested on both models."
    names = [duels[0].best[0][0], duels[0].best[1][0]]
    wins = [sum(d.winner == name for d in duels) for name in names]
    ties = sum(d.winner is None for d in duels)
    return (f"{names[0]} wins on {wins[0]} of {len(duels)} OoD sets, {names[1]} on {wins[1]}, "
            f"{ties} tie{'s' if ties != 1 else ''}.")
