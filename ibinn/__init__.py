"""IB-INN Explorer's core: Information-Bottleneck invertible neural networks as generative classifiers.

Reference: Ardizzone, Mackowiak, Rother, Köthe, "Training Normalizing Flows with the Information
Bottleneck for Competitive Generative Classification", NeurIPS 2020.

Example:
    >>> import ibinn
    >>> model = ibinn.load("runs/fm-g1")  # doctest: +SKIP
    >>> model.predict_proba(images)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CheckpointError
from .data import DataError, ImageData, Normalization, load_dataset
from .device import resolve_device
from .model import IBINN, PRESETS, Inference, ModelConfig
from .train import TrainConfig, TrainingDiverged

__all__ = [
    "IBINN", "PRESETS", "CheckpointError", "DataError", "ImageData", "Inference", "ModelConfig",
    "Normalization", "TrainConfig", "TrainingDiverged", "load", "load_dataset", "resolve_device",
]

WEIGHTS_FILE = "model.safetensors"


def load(path: str | Path, device: str | torch.device | None = "auto") -> IBINN:
    """Load a model from a ``.safetensors`` file or a run folder (``<dir>/model.safetensors``).

    The model comes back in eval mode on ``device`` (``"auto"``: CUDA when present).
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"no model at {path}")
    return IBINN.from_file(path, device=resolve_device(device))
