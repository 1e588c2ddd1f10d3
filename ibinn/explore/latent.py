"""A data set seen through a model: its latents, posteriors and likelihood scores
(:class:`LatentView`, from :func:`summarize`), the part of them a zoo model ships without the
latents (:class:`PointScores`), and the nearest neighbours of one image among the latents."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import limits
from ..metrics import entropy, typicality_score
from ..model import IBINN, ImageClassifier
from .checks import as_latents


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


def nearest_neighbours(z: Any, index: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` latents nearest to ``z[index]`` (Euclidean, the point itself left out): their
    indices and distances, nearest first (ties: lower index first).

    >>> nearest_neighbours([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]], 0, 2)
    (array([2, 3]), array([1., 2.]))
    """
    z = as_latents("z", z, 2)
    index = limits.integer("index", index, 0, len(z) - 1)
    k = limits.integer("k", k, 1, len(z) - 1)
    distances = np.sqrt(((z.astype(np.float64) - z[index]) ** 2).sum(1))
    distances[index] = np.inf
    order = np.argsort(distances, kind="stable")[:k]
    return order, distances[order]
