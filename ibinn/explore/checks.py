"""The checks every latent or class-index argument of :mod:`ibinn.explore` passes: arrays of any
kind in, a clean NumPy array or a ``ValueError`` naming the argument out."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_latents(name: str, value, min_rows: int, dim: int | None = None) -> np.ndarray:
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


def as_class_indices(name: str, values: Any, n_classes: int) -> np.ndarray:
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
