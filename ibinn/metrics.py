"""The paper's metrics, as plain functions on arrays or tensors.

Units follow the paper's Table 1: error, calibration errors and ROC-AUC come back as fractions
from these functions (multiply by 100 for the table, as :mod:`ibinn.evaluate` does); entropies are
in nats; bits/dim per dimension of 8-bit images.

References: calibration measures, appendix C of Ardizzone et al. (NeurIPS 2020) and Guo et al.
(2017); overconfidence, v1 of the same paper; typicality test, Nalisnick et al. (2019).

Example:
    >>> import numpy as np
    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> classification_error(proba, np.array([0, 0]))
    0.5
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Appendix C's bin edges: 0.00-0.05 in steps of 0.01, 0.05-0.95 in steps of 0.1, 0.95-1.00 in 0.01.
CALIBRATION_BIN_EDGES = np.round(np.concatenate([
    np.arange(0, 5) * 0.01, 0.05 + np.arange(0, 9) * 0.1, 0.95 + np.arange(0, 6) * 0.01]), 10)

#: v1 paper: a prediction is "confident" when its top probability exceeds 1 − this threshold.
OVERCONFIDENCE_THRESHOLD = 0.003


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def bits_per_dim(log_likelihood: torch.Tensor, dim: int) -> torch.Tensor:
    """Bits per dimension of 8-bit images from ``log p(x)`` of images scaled to [0, 1].

    A density on [0, 1]-scaled pixels becomes a probability of the 8-bit value by multiplying with
    the bin volume ``(1/256)^D`` (the dequantisation noise is uniform over one bin), so
    ``bits/dim = −(log p(x) − D·log 256) / (D·ln 2) = 8 − log p(x) / (D·ln 2)``.
    ``log p(x)`` must include every Jacobian from [0, 1] pixels to the latent, the normalisation's
    included (:meth:`ibinn.IBINN.log_likelihood` does).
    """
    return (dim * math.log(256.0) - log_likelihood) / (dim * math.log(2.0))


def classification_error(proba, labels) -> float:
    """Fraction of argmax predictions that differ from ``labels``."""
    return float((_np(proba).argmax(1) != _np(labels)).mean())


def reliability_diagram(proba, labels, bin_edges: np.ndarray = CALIBRATION_BIN_EDGES) -> dict:
    """Appendix C's binning: every class probability of every image goes into a confidence bin.

    A binned probability ``p(y'|x)`` counts as correct when ``y'`` is the true class of ``x``.
    Bins are half-open ``[b_i, b_{i+1})``, the last one closed at 1.

    Returns a dict of arrays: ``bin_edges``, ``confidence`` (P, bin centres), ``accuracy`` (Q,
    NaN for empty bins), ``counts`` (n), ``correct`` (n_c).
    """
    p = _np(proba).astype(np.float64)
    labels = _np(labels)
    is_true = np.zeros_like(p, dtype=bool)
    is_true[np.arange(len(p)), labels] = True
    idx = np.clip(np.searchsorted(bin_edges, p.ravel(), side="right") - 1, 0, len(bin_edges) - 2)
    counts = np.bincount(idx, minlength=len(bin_edges) - 1)
    correct = np.bincount(idx, weights=is_true.ravel(), minlength=len(bin_edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return {"bin_edges": bin_edges, "confidence": 0.5 * (bin_edges[1:] + bin_edges[:-1]),
            "accuracy": accuracy, "counts": counts, "correct": correct}


def calibration(proba, labels, bin_edges: np.ndarray = CALIBRATION_BIN_EDGES) -> dict:
    """ECE, MCE, ICE (appendix C, Eq. 62-64), their geometric mean, and v1's overconfidence.

    ECE = Σ n_i/n |P_i − Q_i|; MCE = max_i |P_i − Q_i|; ICE = Σ (b_{i+1} − b_i) |P_i − Q_i|, over
    non-empty bins. Overconfidence: error rate among predictions whose top probability exceeds
    ``1 − 0.003``, divided by 0.003 (NaN when there are none). All as fractions.
    """
    diagram = reliability_diagram(proba, labels, bin_edges)
    used = diagram["counts"] > 0
    gap = np.abs(diagram["confidence"] - diagram["accuracy"])[used]
    counts = diagram["counts"][used]
    widths = np.diff(bin_edges)[used]
    ece = float((gap * counts).sum() / counts.sum())
    mce = float(gap.max())
    ice = float((gap * widths).sum())
    p = _np(proba)
    confident = p.max(1) > 1 - OVERCONFIDENCE_THRESHOLD
    wrong = p.argmax(1) != _np(labels)
    overconfidence = (float(wrong[confident].mean()) / OVERCONFIDENCE_THRESHOLD
                      if confident.any() else float("nan"))
    return {"ece": ece, "mce": mce, "ice": ice, "geometric_mean": float(np.cbrt(ece * mce * ice)),
            "overconfidence": overconfidence}


def entropy(proba) -> np.ndarray:
    """Discrete entropy ``H(Y | x)`` of each row of class probabilities, in nats."""
    p = _np(proba).astype(np.float64)
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(1)


def entropy_increase(proba_ood, proba_in) -> float:
    """Increase of the mean prediction entropy on OoD data over in-distribution test data (nats)."""
    return float(entropy(proba_ood).mean() - entropy(proba_in).mean())


def typicality_score(nll, reference_mean: float) -> np.ndarray:
    """The typicality test at batch size 1: ``|NLL(x) − mean in-distribution NLL|``.

    Large scores are atypical (out of distribution), whether the likelihood is too low or too high.
    """
    return np.abs(_np(nll).astype(np.float64) - reference_mean)


def roc_auc(score_in, score_out) -> float:
    """ROC-AUC of separating OoD (positive) from in-distribution data by a score (higher = OoD)."""
    s_in, s_out = _np(score_in).ravel(), _np(score_out).ravel()
    y = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))])
    from sklearn.metrics import roc_auc_score  # here, not at the top: `import ibinn` stays quick

    return float(roc_auc_score(y, np.concatenate([s_in, s_out])))


# ------------------------------------------------------------------ Table 1's conventions
def geometric_mean(values) -> float:
    """Geometric mean of positive values, as Table 1 averages its per-set OoD ROC-AUCs.

    Example (Table 1's γ = 1 row: 68.76, where the arithmetic mean would be 69.47):
        >>> round(geometric_mean([78.80, 67.30, 77.19, 54.59]), 2)
        68.75
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or (v <= 0).any():
        raise ValueError(f"the geometric mean needs positive values; got {v.tolist()}")
    # the n-th root of the product, not exp(mean(log)): exact for a single value (one OoD set)
    return float(np.prod(v) ** (1.0 / v.size))


def table1_bits_per_dim(bits, dim: int, normalization_log_det: float):
    """Bits/dim as the official code behind Table 1 computes it, from exact bits/dim ``bits``.

    The official ``evaluation/test_metrics.py`` starts from its training loss L_x, which leaves out
    the Jacobian of the input normalisation ``(x − mean)/std`` and the Gaussian constant
    ``½·log 2π`` per dimension, and then subtracts ``½·log 2π`` once more instead of adding it.
    Both differences are constant for a model, so the official figure is the exact one plus
    ``(log|det| of the normalisation / D − log 2π) / ln 2``: about −0.65 bits/dim with CIFAR-10's
    channel standard deviations (≈ 0.25), i.e. Table 1's bits/dim read lower than the definition.

    Example (a normalisation by std 0.25 on every channel):
        >>> round(table1_bits_per_dim(4.719, 3072, 3072 * math.log(4)), 3)
        4.068
    """
    return bits + (normalization_log_det / dim - math.log(2 * math.pi)) / math.log(2.0)
