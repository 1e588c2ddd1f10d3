"""Where the classes lie in latent space: the centroids of their real images
(:func:`class_centroids`), how far those sit from the class means ``μ_y`` (:func:`centroid_offset`),
how far apart the classes are against their spread or the sample noise (:func:`spread_ratio`,
:func:`class_separation`), and how much of a latent path a 2D view shows (:func:`visible_share`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..model import IBINN
from .checks import as_class_indices, as_latents


def class_centroids(z: Any, labels: Any, n_classes: int) -> np.ndarray:
    """The mean latent ``(K, D)`` of each class's images: where the class's real data lies, which
    need not be its ``μ_y`` (the paper, appendix D.3: "the mass of points in latent space is
    offset from the learned μ_y"). Every class needs at least one image."""
    z = as_latents("z", z, 1)
    labels = as_class_indices("labels", labels, n_classes)
    if len(labels) != len(z):
        raise ValueError(f"labels ({len(labels)}) and z ({len(z)}) must have one entry per image")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no images")
    sums = np.zeros((n_classes, z.shape[1]))
    np.add.at(sums, labels, z)
    return sums / counts[:, None]


def spread_ratio(points: Any, labels: Any, n_classes: int) -> float:
    """Between-class over within-class spread of ``points`` ``(N, D)`` (latents, or their 2D
    projection): the RMS distance of the class centroids from their mean, over the RMS distance
    of the points from their own class's centroid. Above 1 the classes stand apart; below 1
    they overlap."""
    points = as_latents("points", points, 2)
    labels = as_class_indices("labels", labels, n_classes)
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
    z = as_latents("path_z", path_z, 2)
    if xy.shape != (len(z), 2):
        raise ValueError(f"path_xy must be ({len(z)}, 2), one point per latent; got {xy.shape}")
    moved = float(np.linalg.norm(z[-1].astype(np.float64) - z[0]))
    return float(np.linalg.norm(xy[-1] - xy[0])) / moved if moved > 0 else 0.0


def centroid_offset(model: IBINN, centroids: Any) -> float:
    """Mean distance ``‖c_y − μ_y‖`` between each class's data centroid (:func:`class_centroids`)
    and its class mean, in latent units: how far the real images sit from where the model's own
    Gaussian is centred."""
    mu = model.mu.detach().double().cpu().numpy()
    centroids = as_latents("centroids", centroids, len(mu), mu.shape[1])
    if len(centroids) != len(mu):
        raise ValueError(f"centroids must have one row per class ({len(mu)}), got {len(centroids)}")
    return float(np.linalg.norm(centroids - mu, axis=1).mean())
