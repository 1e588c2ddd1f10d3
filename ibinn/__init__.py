"""IB-INN Explorer's core: Information-Bottleneck invertible neural networks as generative classifiers.

Reference: Ardizzone, Mackowiak, Rother, Köthe, "Training Normalizing Flows with the Information
Bottleneck for Competitive Generative Classification", NeurIPS 2020.

Example (offline, on a shipped model and the demo images beside it):
    >>> import ibinn
    >>> model = ibinn.load("fashion-mnist/gamma-1", device="cpu")
    >>> images = ibinn.load_dataset("demo:fashion-mnist").images[:8]  # uint8 (8, 1, 28, 28)
    >>> model.predict_proba(images).shape, model.bits_per_dim(images).shape
    (torch.Size([8, 10]), torch.Size([8]))
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .checkpoint import CheckpointError
from .data import DataError, ImageData, Normalization, load_dataset
from .device import resolve_device
from .loading import WEIGHTS_FILE, load_path  # noqa: F401  (ibinn.WEIGHTS_FILE, as before)

if TYPE_CHECKING:
    from . import zoo
    from .baselines import BASELINES, MODEL_TYPES, Baseline, NoLikelihoodError
    from .model import IBINN, PRESETS, ImageClassifier, Inference, ModelConfig
    from .train import TrainConfig, TrainingDiverged

#: Names imported on first use (PEP 562), so that `import ibinn` stays quick: the models, the
#: training loop and the zoo pull in more than a script that reads one file needs.
_LAZY = {
    "BASELINES": "baselines", "MODEL_TYPES": "baselines", "Baseline": "baselines",
    "NoLikelihoodError": "baselines", "IBINN": "model", "ImageClassifier": "model",
    "Inference": "model", "ModelConfig": "model", "PRESETS": "model", "TrainConfig": "train",
    "TrainingDiverged": "train", "zoo": None,
}

__all__ = [
    "BASELINES", "IBINN", "MODEL_TYPES", "PRESETS", "Baseline", "CheckpointError", "DataError",
    "ImageClassifier", "ImageData", "Inference", "ModelConfig", "NoLikelihoodError",
    "Normalization", "TrainConfig", "TrainingDiverged", "load", "load_dataset", "preload",
    "resolve_device", "zoo",
]

#: What the package imports only when first needed, each about a second on a laptop CPU: FrEIA
#: (through scipy.stats) when a network is built, scikit-learn for PCA and ROC-AUC.
DEFERRED_IMPORTS = ("FrEIA.framework", "FrEIA.modules", "sklearn.decomposition", "sklearn.metrics")


def preload() -> None:
    """Import :data:`DEFERRED_IMPORTS` now: for a server, which would otherwise make its first
    visitor to build a network or fit a projection wait for them.

    Example:
        >>> import sys, ibinn
        >>> ibinn.preload()
        >>> "FrEIA.framework" in sys.modules
        True
    """
    for name in DEFERRED_IMPORTS:
        importlib.import_module(name)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value  # once: later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load(path: str | Path, device: str | torch.device | None = "auto") -> ImageClassifier:
    """Load a model from a ``.safetensors`` file, a run folder (``<dir>/model.safetensors``) or
    a pretrained model's name such as ``"fashion-mnist/gamma-1"`` (see :mod:`ibinn.zoo`).

    The model comes back in eval mode on ``device`` (``"auto"``: CUDA when present), as an
    :class:`IBINN` or, for a checkpoint whose config says ``model_type`` ``"resnet"``, ``"irevnet"``
    or ``"vib"``, as that baseline of :mod:`ibinn.baselines`.
    """
    from . import zoo  # here: the zoo imports training and evaluation, and `import ibinn` stays quick

    if not Path(path).exists() and zoo.is_zoo_name(str(path)):
        return zoo.load(str(path), device=device)
    return load_path(path, device=device)
