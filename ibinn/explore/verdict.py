"""Is one image typical of a reference set? The band of typical scores (:func:`in_distribution_range`)
and the in/out-of-distribution call on one score (:func:`ood_verdict`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def in_distribution_range(values: np.ndarray, low: float = 5.0, high: float = 95.0
                          ) -> tuple[float, float]:
    """The ``low``-th to ``high``-th percentile of reference values: the band drawn as "typical"."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [low, high])
    return float(lo), float(hi)


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
