"""A training run's data: its three splits, and each step's batch as a pure function of
``(seed, step)``.

The training set lives on the training device and batches are made there (no host round trip, no
synchronisation): an epoch's order comes from a generator seeded by ``(seed, epoch)``, a batch's
augmentation and noise from one seeded by ``(seed, step)`` (:func:`seeded_generator`), so that a
run resumed from a checkpoint takes exactly the batches the uninterrupted run would have taken.
"""

from __future__ import annotations

import dataclasses

import torch

from . import data as D
from .classifier import ImageClassifier
from .train_config import TrainConfig


def load_splits(config: TrainConfig) -> tuple[D.ImageData, D.ImageData, D.ImageData]:
    """The training, validation (held out of the training split, seeded) and test data."""
    full = D.load_dataset(config.dataset, "train", config.root, config.download)
    train_data, val_data = D.split_train_val(full, min(config.val_size, len(full) // 10),
                                             config.seed)
    test_data = D.load_dataset(config.dataset, "test", config.root, config.download)
    return train_data, val_data, test_data


def on_device(data: D.ImageData, device: torch.device) -> D.ImageData:
    """``data`` with its images and labels on ``device``, where batches are made."""
    return dataclasses.replace(data, images=data.images.to(device), labels=data.labels.to(device))


def seeded_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded by the integers ``keys`` (e.g. seed, stream, step).

    Example:
        >>> a, b = seeded_generator(0, 7), seeded_generator(0, 7)
        >>> torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
        True
    """
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key)) % (2**63 - 1)
    return torch.Generator(device).manual_seed(seed)


def prepare_batch(images: torch.Tensor, labels: torch.Tensor, model: ImageClassifier, config: TrainConfig,
                  generator: torch.Generator, augment: str = "none"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batch → normalised, dequantised, noisy inputs and smoothed labels, on the device of
    ``images`` (where ``generator`` must live too): no host round trip, no synchronisation."""
    x = D.augment(D.to_unit(images), augment, generator)
    x = model.normalization.normalize(D.dequantize(x, config.sigma, generator))
    y = D.smooth_labels(labels, model.config.n_classes, config.label_smoothing)
    return x, y


def memory_format(device: torch.device, bf16: bool = False) -> torch.memory_format:
    """Channels-last on CUDA, the layout cuDNN convolves fastest (tensor cores), and on a CPU that
    trains in bf16 (oneDNN's AMX / AVX-512 BF16 kernels: γ = 1 on CIFAR-10 (JPEG), ``small``, one
    core, measured 0.411 s of compute a step, where the NCHW family of 2026-12-03 took 0.61; the
    ``--layouts`` of ``benchmarks/throughput.py`` time both). An fp32 CPU keeps NCHW: on the 2-core
    CPU without bf16 channels-last changed eager training by less than the run-to-run noise and
    slowed compiled Fashion-MNIST training."""
    return torch.channels_last if device.type == "cuda" or bf16 else torch.contiguous_format
