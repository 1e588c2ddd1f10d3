"""Latent-space exploration: what the dashboard shows, as plain functions on a model and arrays.

Everything here takes an :class:`ibinn.IBINN` and images (uint8 or float in [0, 1], any layout the
model accepts) and returns NumPy arrays in small dataclasses, so that results can be cached and
plotted without touching torch again.

- :func:`summarize` runs a data set through the model once: latents, posteriors, likelihoods,
  bits/dim, prediction entropy and the typicality score of every image.
- :func:`fit_projection` fits a 2D view of the latent space: PCA of the class means ``μ_y``
  (the paper's Fig. 7), PCA of the latents, or UMAP. The result projects new latents too.
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

from . import limits, ood
from .data import ImageData
from .images import fit_image  # noqa: F401  (part of this module's API, as before)
from .metrics import entropy, typicality_score
from .model import IBINN, ImageClassifier

__all__ = [
    "PROJECTIONS", "TRANSFORMS", "LatentView", "Projection", "Trajectory", "Transform", "Verdict",
    "apply_transform", "fit_image", "fit_projection", "in_distribution_range", "interpolation",
    "ood_verdict", "sample_grid", "summarize", "transforms_for",
]

#: Projection methods of :func:`fit_projection` and their display names.
PROJECTIONS: dict[str, str] = {
    "pca-means": "PCA of the class means μ_y (paper Fig. 7)",
    "pca": "PCA of the latents z",
    "umap": "UMAP of the latents z",
}


# --------------------------------------------------------------------------- scores

def in_distribution_range(values: np.ndarray, low: float = 5.0, high: float = 95.0
                          ) -> tuple[float, float]:
    """The ``low``-th to ``high``-th percentile of reference values: the band drawn as "typical"."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [low, high])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- data-set summary

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
        known = self.labels >= 0
        return float((self.predicted[known] == self.labels[known]).mean()) if known.any() else math.nan

    @property
    def confidence(self) -> np.ndarray:
        """Top posterior probability per image."""
        return self.proba.max(1)


def summarize(model: IBINN, images: Any, labels: Any = None,
              reference_nll_mean: float | None = None, batch_size: int = 500) -> LatentView:
    """Run ``images`` through ``model`` once and collect everything the dashboard plots.

    Args:
        model: the IB-INN.
        images: a batch the model accepts (see :meth:`ibinn.IBINN.as_unit_batch`).
        labels: true labels, or None.
        reference_nll_mean: mean in-distribution NLL for the typicality score; by default the
            mean over ``images`` themselves (right for an in-distribution reference set).
    """
    if reference_nll_mean is not None:
        reference_nll_mean = limits.real("reference_nll_mean", reference_nll_mean)
    out = model.infer(images, batch_size)
    ll = out.log_likelihood.double().numpy()
    proba = out.proba.double().numpy()
    ref = float(np.mean(-ll)) if reference_nll_mean is None else reference_nll_mean
    n = len(ll)
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    return LatentView(
        z=out.z.float().numpy(), proba=proba, labels=lab, predicted=proba.argmax(1),
        log_likelihood=ll, bits_per_dim=out.bits_per_dim.double().numpy(),
        entropy=entropy(proba), typicality=typicality_score(-ll, ref),
        mu=model.mu.detach().float().cpu().numpy(), reference_nll_mean=ref)


# --------------------------------------------------------------------------- projections

@dataclass
class Projection:
    """A fitted map from latents ``(N, D)`` to 2D points; :meth:`transform` projects new latents.

    Linear methods hold ``center`` and ``components`` (2, D); UMAP holds its fitted reducer.
    """

    method: str
    center: np.ndarray | None = None
    components: np.ndarray | None = None
    explained: tuple[float, float] | None = None  #: share of variance per axis (linear methods)
    reducer: Any = field(default=None, repr=False)

    def transform(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """2D coordinates ``(N, 2)`` of latents ``(N, D)``."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        if self.reducer is not None:
            return np.asarray(self.reducer.transform(z), dtype=np.float64)
        return (z.astype(np.float64) - self.center) @ self.components.T

    @property
    def axis_titles(self) -> tuple[str, str]:
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
                   max_points: int = 5000) -> Projection:
    """Fit a 2D projection of the latent space.

    Args:
        method: ``"pca-means"`` (PCA fitted on the K class means, so the axes are the directions
            that separate the classes, as in the paper's Fig. 7), ``"pca"`` (PCA of ``z``) or
            ``"umap"`` (non-linear; needs ``umap-learn``; its first call compiles and takes a while).
        z: latents ``(N, D)``.
        mu: class means ``(K, D)``.
        seed: UMAP's random state.
        max_points: fit on at most this many latents (an evenly spaced subset).
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


def apply_transform(model: IBINN, images: Any, name: str, strength: float, seed: int = 0
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


def trajectory(model: IBINN, image: Any, transform: str, strengths: Sequence[float],
               reference_nll_mean: float, seed: int = 0) -> Trajectory:
    """Distort one image by ``transform`` at each of ``strengths`` and run every step through the model.

    Args:
        model: the IB-INN.
        image: one image (with or without the batch axis).
        transform: a key of :data:`TRANSFORMS` valid for the image's channels.
        strengths: distortion strengths, e.g. ``np.linspace(0, π, 13)`` for RGB rotation.
        reference_nll_mean: mean NLL of in-distribution images, for the typicality score.
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
                classes: Sequence[int] | None = None) -> np.ndarray:
    """Samples ``(K, n_per_class, C, H, W)`` in [0, 1], one row per class, from ``μ_y + T·ε``.

    Every class uses the same seed, so the rows share their noise ``ε`` and differ only by ``μ_y``.
    """
    if classes is not None and (isinstance(classes, str | bytes) or not hasattr(classes, "__iter__")):
        raise ValueError(f"classes must be a list of class indices, got {type(classes).__name__}")
    classes = range(model.config.n_classes) if classes is None else list(classes)
    limits.integer("n_per_class × classes", len(classes) * limits.integer("n_per_class", n_per_class, 1),
                   1, limits.current().max_samples)
    rows = [model.sample(k, n_per_class, temperature=temperature, seed=seed).numpy()
            for k in classes]
    return np.stack(rows)


def class_separation(model: IBINN) -> tuple[float, float]:
    """Mean distance between two class centres ``‖μ_i − μ_j‖``, and the typical norm of the sample
    noise ``‖ε‖ ≈ √dim``, both in latent units: sampled rows differ visibly by class only when the
    first is not small against the second."""
    mu = model.mu.detach().double().cpu()
    distances = torch.pdist(mu)
    return float(distances.mean()), math.sqrt(mu.shape[1])


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


# --------------------------------------------------------------------------- shipped with the zoo


def derived_arrays(model: ImageClassifier, demo: ImageData) -> dict[str, np.ndarray]:
    """Every array the dashboard would otherwise compute from ``model`` and its family's demo set
    on first view; :func:`ibinn.zoo.write_derived` ships them with each zoo model. Keys are
    namespaced by their producer (``projection/...``, ``detector/...``); values are plain NumPy
    arrays (no objects), so they load with ``allow_pickle=False``."""
    return {}
