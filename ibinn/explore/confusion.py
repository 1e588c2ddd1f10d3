"""Which classes a model confuses: the confusion matrix of its predictions and the three classes
mistaken for each other most often (the class plane the latent page shows first)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import limits
from .checks import as_class_indices


def confusion_matrix(labels: Any, predicted: Any, n_classes: int) -> np.ndarray:
    """Counts ``(K, K)`` of images of true class ``i`` (row) predicted as class ``j`` (column).

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    """
    n_classes = limits.integer("n_classes", n_classes, 1, limits.current().max_classes)
    labels = as_class_indices("labels", labels, n_classes)
    predicted = as_class_indices("predicted", predicted, n_classes)
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
