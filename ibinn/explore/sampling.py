"""Generation from the latent space: decoding a straight line between two images' latents
(:func:`interpolation`, the paper's Fig. 9), class-conditional samples ``μ_y + T·ε``
(:func:`sample_grid`, Figs. 8 and 14), and whether an independent classifier recognises the
samples as their class (:func:`recognised_by`, :func:`sample_recognition`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import limits
from ..model import IBINN, ImageClassifier


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
