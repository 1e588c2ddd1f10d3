"""Shared fixtures. Tests use the demo subsets shipped in pretrained/; tests that need the full
data sets look for ../shared/data (or $IBINN_SHARED_DATA) and skip when it is absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def cifar10_jpeg_dir(tmp_path_factory) -> Path:
    """The CIFAR-10 (JPEG) ImageFolder tree: ``$IBINN_CIFAR10_DIR``, or the shared tarball unpacked."""
    given = os.environ.get("IBINN_CIFAR10_DIR")
    if given and (Path(given) / "test").is_dir():
        return Path(given)
    tarball = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not tarball.exists():
        pytest.skip(f"CIFAR-10 (JPEG) not at {tarball}")
    import tarfile

    folder = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    return folder


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, then restore the count (how a sum is split among
    threads changes its last bits, so runs compared bit for bit train on equal counts)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Two models hold the same parameters and buffers (to 1e-6): e.g. a resumed run and an
    unbroken one."""
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), key
