"""Loading a saved model from disk: a ``.safetensors`` file or a run folder, as the class its
config names (an IB-INN, or a baseline of :mod:`ibinn.baselines`).

This is the file half of :func:`ibinn.load`, which also takes a pretrained model's name: the zoo
loads its own files through :func:`load_path`, so this module knows nothing of the zoo.

Example:
    >>> from ibinn.data import PRETRAINED_DIR
    >>> from ibinn.loading import load_path
    >>> model = load_path(PRETRAINED_DIR / "fashion-mnist/gamma-1", device="cpu")  # a folder
    >>> model.model_type, model.training
    ('ibinn', False)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .checkpoint import CheckpointError, load_weights
from .device import resolve_device

if TYPE_CHECKING:
    from .model import ImageClassifier

#: The weights file of a run folder (the model's config is stored inside it).
WEIGHTS_FILE = "model.safetensors"


def load_path(path: str | Path, device: str | torch.device | None = "auto") -> ImageClassifier:
    """Load the model in a ``.safetensors`` file or a run folder (``<dir>/model.safetensors``),
    in eval mode on ``device`` (``"auto"``: CUDA when present), as the class of its config's
    ``model_type``; a missing file or an unknown type is a :class:`CheckpointError`."""
    from .baselines import MODEL_TYPES  # here: it imports the models, and `import ibinn` stays quick

    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"no model at {path}")
    model_type = load_weights(path)[1].get("model_type", "ibinn")  # the config picks the class
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:  # a list is not hashable
        raise CheckpointError(f"{path} holds a model of unknown type {model_type!r}; known: "
                              f"{', '.join(MODEL_TYPES)}"[:500])
    return MODEL_TYPES[model_type].from_file(path, device=resolve_device(device))
