"""Evaluation: every figure of the paper's Table 1 for one model, on a test set and OoD sets.

Units follow Table 1: classification error, ECE / MCE / ICE, their geometric mean and the OoD
detection scores (ROC-AUC) in percent; bits/dim per dimension of 8-bit images; prediction
entropies in nats; overconfidence as v1 of the paper defines it (a ratio, 1 = as expected).

The OoD detection score is the ROC-AUC of the typicality test at batch size 1, its reference
being the mean NLL of the in-distribution test set (``auc_typicality``), and of the plain
one-sided NLL (``auc_nll``).

Table 1's conventions, followed here: the OoD-AUC averages are geometric means over the sets
(68.76 in Table 1 is the geometric mean of its four AUCs; the arithmetic means are kept as
``*_arithmetic``), the entropy increase is averaged arithmetically (it can be negative); the
uniform-noise set of the paper's text (``noise-uniform``) is reported but left out of the
averages, which take Table 1's noise set as the official code makes it (``noise-gaussian``).
Bits/dim comes twice: ``bits_per_dim`` exactly as defined (every Jacobian and the Gaussian
constant) and ``bits_per_dim_table1`` as the official code behind Table 1 computes it
(:func:`ibinn.metrics.table1_bits_per_dim`, about 0.65 lower on CIFAR-10).

Models without a likelihood (the baselines of :mod:`ibinn.baselines`) leave bits/dim and both
AUCs empty; the VIB adds the ROC-AUC of its info loss, KL(q(z|x) ‖ N(0, I)),
as its own OoD score (``auc_info_loss``).

Example:
    >>> import ibinn
    >>> from ibinn.evaluate import evaluate
    >>> model = ibinn.load("fashion-mnist/gamma-1", device="cpu")
    >>> demo = ibinn.load_dataset("demo:fashion-mnist")
    >>> report = evaluate(model, demo, ["inverted"], limit=500, progress=False)
    >>> report["test"]["error"] < 15, report["ood"]["inverted"]["auc_typicality"] > 90
    (True, True)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as M
from . import ood
from .checkpoint import atomic_write
from .data import ImageData, is_cifar10_jpeg

if TYPE_CHECKING:
    from .model import ImageClassifier, Inference

PERCENT = 100.0
#: Recorded in every report: the conventions its figures follow (see the module docstring), so
#: that cards evaluated before a change are found (:func:`ibinn.zoo.reevaluate`).
CONVENTIONS = "table1-v2: geometric AUC mean, noise-gaussian σ = 0.015, bits/dim exact and as Table 1"


def evaluate(model: ImageClassifier, test: ImageData, ood_sets: list[str] | None = None,
             root: str | None = None, limit: int | None = None, batch_size: int = 500,
             progress: bool = True) -> dict:
    """All Table 1 metrics of ``model`` on ``test`` and on each OoD set (see :mod:`ibinn.ood`).

    ``ood_sets=None`` takes :func:`ibinn.ood.default_sets`; sets that cannot be built here (data
    missing) are reported under ``skipped`` with the reason.
    """
    if limit is not None:
        test = test.subset(range(min(limit, len(test))))
    specs = ood.default_sets(test.image_shape) if ood_sets is None else list(ood_sets)
    bar = tqdm(total=1 + len(specs), disable=not progress, desc="evaluate", unit="set")
    inside = model.infer(test.images, batch_size)
    proba, labels = inside.proba.numpy(), test.labels.numpy()
    report = {
        "n": len(test),
        "data": test.name,
        "conventions": CONVENTIONS,
        "test": _test_metrics(model, inside, labels),
        "reliability": {k: np.asarray(v).tolist() for k, v in M.reliability_diagram(proba, labels).items()},
        "ood": {},
        "skipped": {},
    }
    bar.update(1)
    for spec in specs:
        bar.set_postfix_str(spec)
        try:
            images = ood.make_ood_set(spec, test, root=root, limit=len(test))
        except (OSError, ValueError) as err:  # DataError is a ValueError
            report["skipped"][spec] = str(err)
        else:
            report["ood"][spec] = _ood_metrics(model, inside, model.infer(images, batch_size), len(images))
        bar.update(1)
    bar.close()
    report["ood_average"] = ood_averages(report["ood"])
    return report


def _test_metrics(model: ImageClassifier, inside: Inference, labels: np.ndarray) -> dict:
    """A report's ``test`` section: error, bits/dim and calibration on the test set."""
    proba = inside.proba.numpy()
    cal = M.calibration(proba, labels)
    bits = float(inside.bits_per_dim.mean()) if model.has_likelihood else None
    return {
        "error": PERCENT * M.classification_error(proba, labels),
        "bits_per_dim": bits,
        "bits_per_dim_table1": None if bits is None else _table1_bits(model, bits),
        "calibration_geo_mean": PERCENT * cal["geometric_mean"],
        "ece": PERCENT * cal["ece"], "mce": PERCENT * cal["mce"], "ice": PERCENT * cal["ice"],
        "overconfidence": cal["overconfidence"],
        "mean_entropy": float(M.entropy(proba).mean()),
    }


def _ood_metrics(model: ImageClassifier, inside: Inference, outside: Inference, n: int) -> dict:
    """One OoD set's row of a report's ``ood``, from the model's inference on the test set
    (``inside``) and on the ``n`` images of the OoD set (``outside``)."""
    row = {"n": n, "entropy_increase": M.entropy_increase(outside.proba.numpy(), inside.proba.numpy()),
           "auc_typicality": None, "auc_nll": None, "bits_per_dim": None}
    if model.has_likelihood:
        nll_in, nll_out = -inside.log_likelihood.numpy(), -outside.log_likelihood.numpy()
        reference = float(nll_in.mean())  # the typicality test's: the test set's mean NLL
        row["auc_typicality"] = PERCENT * M.roc_auc(M.typicality_score(nll_in, reference),
                                                    M.typicality_score(nll_out, reference))
        row["auc_nll"] = PERCENT * M.roc_auc(nll_in, nll_out)
        row["bits_per_dim"] = float(outside.bits_per_dim.mean())
    info_in = getattr(inside, "info_loss", None)  # the VIB's OoD score
    if info_in is not None:
        row["auc_info_loss"] = PERCENT * M.roc_auc(info_in.numpy(), outside.info_loss.numpy())
    return row


def _table1_bits(model: ImageClassifier, bits: float) -> float:
    return M.table1_bits_per_dim(bits, model.config.dim,
                                 model.normalization.log_abs_det(model.config.image_shape))


def ood_averages(rows: dict[str, dict]) -> dict:
    """Table 1's "Average" columns over the per-set ``rows`` of a report's ``ood``.

    Only the sets :func:`ibinn.ood.is_averaged` accepts count (listed under ``sets``). The entropy
    increase is an arithmetic mean, every ROC-AUC a geometric one as in Table 1, with its
    arithmetic mean beside it as ``<key>_arithmetic``.

    Example:
        >>> rows = {"a": {"entropy_increase": 0.1, "auc_typicality": 50.0},
        ...         "b": {"entropy_increase": -0.3, "auc_typicality": 98.0}}
        >>> avg = ood_averages(rows)
        >>> [round(avg[k], 2) for k in ("entropy_increase", "auc_typicality", "auc_typicality_arithmetic")]
        [-0.1, 70.0, 74.0]
    """
    counted = {spec: row for spec, row in rows.items() if ood.is_averaged(spec)}
    average: dict = {"sets": list(counted),
                     "entropy_increase": _mean([r["entropy_increase"] for r in counted.values()])}
    for key in ("auc_typicality", "auc_nll", "auc_info_loss"):
        values = [r[key] for r in counted.values() if r.get(key) is not None]
        if key == "auc_info_loss" and not values:
            continue  # only the VIB has an info loss
        average[key] = M.geometric_mean(values) if values else None
        average[f"{key}_arithmetic"] = _mean(values)
    return average


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def markdown_table(rows: dict[str, dict], note: str = "") -> str:
    """Table 1's columns for several evaluated models (``{label: evaluate(...)}``), plus the VIB's
    info-loss AUC columns when a row has them.

    Bits/dim comes exactly and as Table 1 computes it; the AUC averages are geometric (Table 1),
    the arithmetic mean beside them; sets outside the averages come last, marked "(not averaged)".
    """
    specs = {s for r in rows.values() for s in r["ood"]}
    sets = sorted(s for s in specs if ood.is_averaged(s)) + sorted(s for s in specs
                                                                   if not ood.is_averaged(s))
    names = {s: s if ood.is_averaged(s) else f"{s} (not averaged)" for s in sets}
    info = any("auc_info_loss" in r["ood_average"] for r in rows.values())
    head = (["Model", "Err. %", "Bits/dim (exact)", "Bits/dim (as Table 1)", "Cal. geo-mean %",
             "ECE %", "MCE %", "ICE %", "Ent. incr. avg"] + [f"Ent. {names[s]}" for s in sets]
            + ["OoD AUC geo-mean", "OoD AUC arith. mean"] + [f"AUC {names[s]}" for s in sets]
            + ["NLL-AUC geo-mean"]
            + (["Info-AUC geo-mean"] + [f"Info-AUC {names[s]}" for s in sets] if info else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in rows.items():
        t, o, avg = r["test"], r["ood"], r["ood_average"]
        cells = ([label, _fmt(t["error"]), _fmt(t["bits_per_dim"], 3),
                  _fmt(t.get("bits_per_dim_table1"), 3),
                  _fmt(t["calibration_geo_mean"]), _fmt(t["ece"]), _fmt(t["mce"]), _fmt(t["ice"]),
                  _fmt(avg["entropy_increase"])]
                 + [_fmt(o.get(s, {}).get("entropy_increase")) for s in sets]
                 + [_fmt(avg["auc_typicality"]), _fmt(avg.get("auc_typicality_arithmetic"))]
                 + [_fmt(o.get(s, {}).get("auc_typicality")) for s in sets]
                 + [_fmt(avg["auc_nll"])])
        if info:
            cells += ([_fmt(avg.get("auc_info_loss"))]
                      + [_fmt(o.get(s, {}).get("auc_info_loss")) for s in sets])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\n{note}\n" if note else "\n")


def dataset_note(name: str) -> str:
    """The caveat every report on the JPEG copy of CIFAR-10 must carry."""
    if is_cifar10_jpeg(name):
        return ("Data: CIFAR-10 (JPEG), re-encoded at JPEG quality 75: accuracy is close to the "
                "original's, but bits/dim is NOT comparable with published CIFAR-10 figures "
                "(JPEG smoothing lowers it).")
    return ""


def write_report(report: dict, out: str | Path, label: str) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.md`` into ``out``."""
    out = Path(out)
    json_path = atomic_write(out / "evaluation.json", lambda tmp: Path(tmp).write_text(
        json.dumps(jsonable(report), indent=2)))
    md = markdown_table({label: report}, dataset_note(report.get("data", "")))
    md_path = atomic_write(out / "evaluation.md", lambda tmp: Path(tmp).write_text(md))
    return json_path, md_path


def jsonable(value):
    """``value`` (a report, a card) ready for ``json.dumps``: NaN and ±inf, which JSON lacks, as
    None (null); tensors and NumPy numbers as plain lists and numbers.

    Example:
        >>> jsonable({"auc": [float("nan"), np.float32(0.5)], "bits": float("inf")})
        {'auc': [None, 0.5], 'bits': None}
    """
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, torch.Tensor | np.generic):
        return jsonable(value.tolist())
    return value
