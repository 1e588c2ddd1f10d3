"""Shared fixtures. Tests use the demo subsets shipped in pretrained/; tests that need the full
data sets look for ../shared/data (or $IBINN_SHARED_DATA) and skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import ibinn

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("IBINN_SHARED_DATA", REPO.parent / "shared" / "data"))


def randomize(model: ibinn.IBINN, scale: float = 0.3, seed: int = 0) -> ibinn.IBINN:
    """Perturb every learnable weight, so couplings are far from their identity initialisation."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.inn.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope="session")
def demo_fm() -> ibinn.ImageData:
    return ibinn.load_dataset("demo:fashion-mnist")


@pytest.fixture()
def tiny_grey(demo_fm) -> ibinn.IBINN:
    config = ibinn.ModelConfig.from_preset("tiny", demo_fm.image_shape, len(demo_fm.classes),
                                           classes=demo_fm.classes, mean=[0.286], std=[0.353])
    return randomize(ibinn.IBINN(config), scale=0.05)


@pytest.fixture(scope="session")
def fashion_mnist_root() -> Path:
    root = SHARED_DATA / "fashion-mnist"
    if not (root / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"full Fashion-MNIST not at {root}")
    return root
