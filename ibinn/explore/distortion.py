"""Growing distortions of one image (RGB rotation, noise, inversion: :data:`TRANSFORMS`) and the
path the image takes through latent space and its scores as the distortion grows
(:func:`trajectory`, the paper's Fig. 12)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import limits, ood
from ..model import ImageClassifier
from .latent import summarize

#: A distortion: ``(images, strength, seed) → images``, float ``(N, C, H, W)`` in [0, 1].
Transform = Callable[[torch.Tensor, float, int], torch.Tensor]


def _rgb_rotation(x: torch.Tensor, alpha: float, seed: int) -> torch.Tensor:
    return ood.rgb_rotation(x, alpha, seed)


def _noise(x: torch.Tensor, amplitude: float, seed: int) -> torch.Tensor:
    return ood.uniform_noise(x, amplitude, seed)


def _inversion(x: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
    return ood.invert(x, amount).clamp(0, 1)  # a blend beyond t = 1 leaves [0, 1]


@dataclass(frozen=True)
class TransformSpec:
    """A family of distortions indexed by a strength ``s`` (0 = the original image)."""

    name: str
    label: str
    strength_label: str
    max_strength: float
    channels: tuple[int, ...]
    apply: Transform
    help: str


#: The distortions of :func:`trajectory`, by name.
TRANSFORMS: dict[str, TransformSpec] = {
    "rgb-rotation": TransformSpec(
        "rgb-rotation", "RGB rotation", "rotation angle α (rad)", math.pi, (3,), _rgb_rotation,
        "Every pixel's colour vector is rotated about the grey axis centre by α around a fixed "
        "random 3D axis (the paper's OoD set uses α = 0.3π). Shapes stay, colours become unnatural."),
    "noise": TransformSpec(
        "noise", "Uniform noise", "noise amplitude", 0.5, (1, 3), _noise,
        "Uniform noise of growing amplitude (one fixed noise pattern, scaled up) is added to every "
        "pixel: the content stays, the image statistics change."),
    "inversion": TransformSpec(
        "inversion", "Inversion blend", "blend t (0 = original, 1 = inverted)", 1.0, (1, 3),
        _inversion,
        "The image is blended with its negative, x → (1 − t)·x + t·(1 − x): at t = 1 bright objects "
        "on a dark background become dark objects on a bright one."),
}


def transforms_for(channels: int) -> list[str]:
    """Names of the distortions that make sense for images with ``channels`` channels."""
    return [name for name, spec in TRANSFORMS.items() if channels in spec.channels]


def apply_transform(model: ImageClassifier, images: Any, name: str, strength: float, seed: int = 0
                    ) -> torch.Tensor:
    """``images`` (a batch, or one image) distorted by :data:`TRANSFORMS` ``[name]`` at ``strength``.

    Returns float images ``(N, C, H, W)`` in [0, 1].
    """
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}"[:300])
    spec = TRANSFORMS[name]
    strength = limits.real("strength", strength, low=0, high=1e3)
    seed = limits.integer("seed", seed, 0, 2**63 - 1)
    x = model.as_batch(images)
    if x.shape[1] not in spec.channels:
        raise ValueError(f"{spec.label} needs images with {spec.channels} channels, "
                         f"got {x.shape[1]}; use one of {transforms_for(x.shape[1])}")
    return spec.apply(x, float(strength), seed) if strength > 0 else x


@dataclass
class Trajectory:
    """One image under a growing distortion: ``S`` strengths, images and scores per step."""

    transform: str
    strengths: np.ndarray
    images: np.ndarray  #: float (S, C, H, W) in [0, 1]
    z: np.ndarray
    proba: np.ndarray
    bits_per_dim: np.ndarray
    log_likelihood: np.ndarray
    entropy: np.ndarray
    typicality: np.ndarray


def trajectory(model: ImageClassifier, image: Any, transform: str, strengths: Sequence[float],
               reference_nll_mean: float | None, seed: int = 0) -> Trajectory:
    """Distort one image by ``transform`` at each of ``strengths`` and run every step through the model.

    Args:
        model: the IB-INN, or any classifier (without a likelihood, bits/dim and typicality are NaN).
        image: one image (with or without the batch axis).
        transform: a key of :data:`TRANSFORMS` valid for the image's channels.
        strengths: distortion strengths, e.g. ``np.linspace(0, π, 13)`` for RGB rotation.
        reference_nll_mean: mean NLL of in-distribution images, for the typicality score (None
            for a model without a likelihood).
        seed: fixes the rotation axis / noise pattern, so all steps share it.
    """
    x = model.as_batch(image)
    if len(x) != 1:
        raise ValueError(f"expected one image, got {len(x)}")
    if strengths is None or isinstance(strengths, str | bytes):  # numpy would read "0.5" as [0.5]
        raise ValueError(f"strengths must be a sequence of numbers, got {type(strengths).__name__}")
    try:
        strengths = np.asarray(strengths, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"strengths must be a sequence of numbers: {err}") from err
    limits.integer("len(strengths)", len(strengths), 1, limits.current().max_steps)
    steps = torch.cat([apply_transform(model, x, transform, float(s), seed) for s in strengths])
    view = summarize(model, steps, reference_nll_mean=reference_nll_mean)
    return Trajectory(transform, strengths, steps.numpy(), view.z, view.proba, view.bits_per_dim,
                      view.log_likelihood, view.entropy, view.typicality)
