"""Out-of-distribution detectors of generative and discriminative classifiers: per-image scores
(:func:`image_scores`), their values on the demo set and its OoD sets with calibration
(:class:`DetectorScores`, shipped with zoo models as plain arrays), and each detector's ROC-AUC
(:func:`detector_aucs`); what each kind of model can do (:func:`capability_table`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import limits, ood
from ..data import ImageData
from ..metrics import (
    CALIBRATION_BIN_EDGES,
    calibration,
    entropy,
    reliability_diagram,
    roc_auc,
    typicality_score,
)
from ..model import ImageClassifier

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
    :meth:`~ibinn.classifier.ImageClassifier.capabilities`; rows in the order they declare them.

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
