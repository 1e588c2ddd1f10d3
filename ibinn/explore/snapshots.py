"""The latent space forming during training: one frame per snapshot, the images' latents on the
plane of the class means' first two principal components (:func:`snapshot_frame`, the paper's
Fig. 7 view), and frames aligned into one animation (:func:`align_frames`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import IBINN
from .checks import as_latents
from .projection import pca_projection


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
    mu = as_latents("mu", model.mu.detach().float().cpu().numpy(), 2)
    plane = pca_projection(mu, "pca-means")
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
