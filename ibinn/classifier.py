"""The interface every classifier here shares: :class:`ImageClassifier`, and what its
inference gives, :class:`Inference`.

The IB-INN (:class:`ibinn.model.IBINN`) and the baselines (:mod:`ibinn.baselines`) implement it:
declared capabilities, training (``model.loss(*model(x), y)``), inference in batches, input
validation and persistence as one safetensors file.

The inference methods take a batch of images, either uint8 ``(N, C, H, W)``, ``(N, H, W, C)`` or
``(N, H, W)`` for grey, or float tensors ``(N, C, H, W)`` in [0, 1], or image files, run without
gradients in batches on the model's device, and return CPU tensors.
"""

from __future__ import annotations

import abc
import functools
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from . import limits
from .checkpoint import CheckpointError, load_weights, save_weights
from .data import Normalization
from .model_config import ModelConfig
from .packing import pack_state, unpack_state


def is_image_file(x) -> bool:
    """Whether ``x`` names an image file (a path) or holds one (its bytes)."""
    return isinstance(x, str | Path | bytes | bytearray | memoryview)


def to_tensor(images) -> torch.Tensor:
    """``images`` as a tensor, sharing memory with an array where it can; read-only arrays (from
    uploads or caches) are copied, as torch cannot share them."""
    if torch.is_tensor(images):
        return images
    array = np.asarray(images)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass
class Inference:
    """Everything one forward pass gives for a batch of images (CPU tensors).

    Models without a likelihood (the discriminative baselines of :mod:`ibinn.baselines`) leave
    ``log_likelihood`` and ``bits_per_dim`` as ``None``.
    """

    z: torch.Tensor  #: latents (N, D); for a baseline, the features its linear head reads
    log_posterior: torch.Tensor  #: log q(y | x), (N, K)
    log_likelihood: torch.Tensor | None = None  #: log p(x) of [0, 1]-scaled images, nats, (N,)
    bits_per_dim: torch.Tensor | None = None  #: (N,), as 8-bit images

    @property
    def proba(self) -> torch.Tensor:
        return self.log_posterior.exp()


_Model = TypeVar("_Model", bound="ImageClassifier")


class ImageClassifier(nn.Module, metaclass=abc.ABCMeta):
    """The interface of every classifier here, the IB-INN and the baselines of
    :mod:`ibinn.baselines`: declared capabilities, training (``model.loss(*model(x), y)``),
    inference (:meth:`infer` and what builds on it), input validation and persistence.

    The capabilities are class attributes, so that code asks the model instead of guessing and a
    table of them needs no model built (:meth:`capabilities`). Every concrete class declares each:

    - ``has_likelihood``: ``log_likelihood`` and ``bits_per_dim`` give ``log p(x)``;
    - ``has_ood_score``: :meth:`infer` gives a per-image out-of-distribution score (the
      likelihood's typicality, the VIB's info loss);
    - ``calibrated_by_design``: the class posteriors are calibrated without post-hoc fitting;
    - ``can_sample``, ``can_interpolate``: ``sample(class_index, n)`` and
      ``interpolate(x_a, x_b)`` make images;
    - ``exact_inverse``: ``decode(encode(x))`` gives ``x`` back (up to float error).

    A subclass sets ``model_type`` (its name in weights files, :data:`ibinn.baselines.MODEL_TYPES`
    and ``TrainConfig.model``), builds itself from a :class:`ModelConfig` alone, keeps
    ``config``, ``normalization`` and ``device``, and implements ``forward``, ``loss``,
    ``log_posterior_from`` and ``_infer_batch``.
    """

    model_type: ClassVar[str]
    has_likelihood: ClassVar[bool]
    has_ood_score: ClassVar[bool]
    calibrated_by_design: ClassVar[bool]
    can_sample: ClassVar[bool]
    can_interpolate: ClassVar[bool]
    exact_inverse: ClassVar[bool]
    #: What :meth:`infer` returns; a subclass may add fields (the VIB its info loss).
    inference_class: ClassVar[type[Inference]] = Inference
    #: Parameters that ``save(half=True)`` keeps in fp32.
    keep_fp32: ClassVar[tuple[str, ...]] = ()

    config: ModelConfig
    normalization: Normalization
    device: torch.device

    @classmethod
    def capabilities(cls) -> dict[str, bool]:
        """What the model can do, in the order of the capability table, from its declarations."""
        return {"classify": True, "calibrated probabilities": cls.calibrated_by_design,
                "likelihood": cls.has_likelihood, "OoD score": cls.has_ood_score,
                "sample": cls.can_sample, "interpolate": cls.can_interpolate,
                "exact inverse": cls.exact_inverse}

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    # ------------------------------------------------------------------ what a subclass defines
    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Normalised images ``(N, C, H, W)`` → the outputs that :meth:`loss` takes before ``y``."""

    @abc.abstractmethod
    def loss(self, *outputs_and_y: torch.Tensor) -> torch.Tensor:
        """The training loss, batch mean, of :meth:`forward`'s outputs followed by the (smoothed)
        label distributions ``y``: ``model.loss(*model(x), y)``."""

    @abc.abstractmethod
    def log_posterior_from(self, output: torch.Tensor) -> torch.Tensor:
        """``log q(y | x)``, ``(N, K)``, from the first output of :meth:`forward`."""

    @abc.abstractmethod
    def _infer_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch of normalised images → the fields of :attr:`inference_class`."""

    def _check_loaded(self, path: str | Path) -> None:
        """Checks of loaded weights beyond names, shapes and finite values, for
        :meth:`from_file`; raise :class:`CheckpointError`. None by default."""

    def _check_outputs(self, path: str | Path) -> None:
        """Weights that are finite one by one can still overflow together (a damaged exponent
        byte: a scale of 1e35): every output on a few plain images (black, white, a ramp,
        seeded noise) must be finite but log-posteriors, which may be -inf (probability 0), never
        NaN. Raises :class:`CheckpointError`."""
        c, h, w = self.config.image_shape
        ramp = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) / (h + w)).expand(c, h, w)
        noise = torch.rand(c, h, w, generator=torch.Generator().manual_seed(0))
        probes = torch.stack([torch.zeros(c, h, w), torch.ones(c, h, w), ramp, noise])
        with torch.no_grad():
            out = self._infer_batch(self.normalization.normalize(probes.to(self.device)))
        bad = [key for key, value in out.items()
               if (value.isnan() if key == "log_posterior" else ~torch.isfinite(value)).any()]
        if bad:
            raise CheckpointError(f"{path}: the model's {', '.join(bad)} on plain test images are not "
                                  f"finite: the weights are damaged or not this model's")

    # ------------------------------------------------------------------ inference
    def compile_inference(self) -> ImageClassifier:
        """Compile the per-batch inference of :meth:`infer` with ``torch.compile`` (dynamic batch
        sizes, so a last, smaller batch does not recompile); worth it for large evaluations, not
        for a few images (the first call compiles: about 30 s on a 2-core CPU). Without a compiler
        this says so in one line and stays eager. Returns the model."""
        from .device import compile_blocker

        blocker = compile_blocker(self.device)
        if blocker:
            print(f"compile: {blocker}; running eagerly", file=sys.stderr)
        else:
            self._infer_batch = torch.compile(self._infer_batch, dynamic=True)
        return self

    @torch.no_grad()
    def infer(self, images, batch_size: int = 500) -> Inference:
        """Everything one pass gives for a batch of images, in eval mode and in batches of at
        most ``batch_size``: latents (or features), log-posteriors and, where the model has them,
        log-likelihoods and bits/dim."""
        was_training = self.training
        self.eval()
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        try:
            for x in self._normalized_batches(images, batch_size):
                for key, value in self._infer_batch(x).items():
                    parts[key].append(value.float().cpu())
        finally:
            self.train(was_training)
        return self.inference_class(**{key: torch.cat(values) for key, values in parts.items()})

    def as_unit_batch(self, images) -> torch.Tensor:
        """Validate a batch of images and return float ``(N, C, H, W)`` in [0, 1] (CPU).

        ``images`` is a tensor or array (see the module docstring), or an image file (its path or
        its bytes) or a list of them: decoded by :func:`ibinn.images.load_image` and converted
        to the model's channels and size. Anything else is a ``ValueError`` naming ``images``.
        """
        c, h, w = self.config.image_shape
        expected = (f"a batch of uint8 images (N, {c}, {h}, {w}) or (N, {h}, {w}, {c})"
                    + (f" or (N, {h}, {w})" if c == 1 else "")
                    + f", or float images (N, {c}, {h}, {w}) in [0, 1], or image files")
        x = self._images_tensor(images, expected)
        if x.dtype == torch.uint8:
            if x.ndim == 3 and c == 1 and tuple(x.shape[1:]) == (h, w):
                x = x[:, None]
            elif x.ndim == 4 and tuple(x.shape[1:]) == (h, w, c) and tuple(x.shape[1:]) != (c, h, w):
                x = x.permute(0, 3, 1, 2)
            if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
                raise ValueError(f"expected {expected}; got uint8 {tuple(x.shape)}")
            if len(x) == 0:
                raise ValueError("empty batch: no images given")
            return x.float() / 255.0
        if not x.is_floating_point():
            raise ValueError(f"expected {expected}; got dtype {x.dtype}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise ValueError(f"expected {expected}; got float {tuple(x.shape)}")
        x = x.detach().float().cpu()
        if len(x) == 0:
            raise ValueError("empty batch: no images given")
        if not torch.isfinite(x).all():
            raise ValueError("images contain NaN or inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"float images must lie in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]"
                             " (uint8 images are scaled automatically)")
        return x

    def _images_tensor(self, images, expected: str) -> torch.Tensor:
        if is_image_file(images):
            images = [images]
        if isinstance(images, list | tuple) and images and all(map(is_image_file, images)):
            from .images import load_image

            return torch.from_numpy(np.stack([load_image(f, self.config.image_shape)[0]
                                              for f in images]))
        if images is None or isinstance(images, bool | int | float | complex | dict | set):
            raise ValueError(f"images must be {expected}; got {type(images).__name__}")
        try:
            return to_tensor(images)
        except (TypeError, ValueError, RuntimeError) as err:  # ragged lists, object arrays
            raise ValueError(f"images must be {expected}; got {type(images).__name__} that is "
                             f"not a numeric array ({err})"[:500]) from err

    def as_batch(self, images) -> torch.Tensor:
        """:meth:`as_unit_batch` of a batch, of one image without the batch axis (``(C, H, W)``,
        ``(H, W, C)``, or ``(H, W)`` for grey), or of image files."""
        if is_image_file(images) or (isinstance(images, list | tuple) and images
                                      and all(map(is_image_file, images))):
            return self.as_unit_batch(images)
        c, h, w = self.config.image_shape
        x = self._images_tensor(images, "an image or a batch of images")
        single = (x.ndim == 2 and c == 1) or (x.ndim == 3 and tuple(x.shape) in {(c, h, w), (h, w, c)})
        return self.as_unit_batch(x[None] if single else x)

    @functools.cached_property
    def max_inference_batch(self) -> int:
        """The largest batch whose activations fit ``inference_mib`` of :mod:`ibinn.limits`."""
        per_image = limits.footprint(self.config.to_json()).activation_mib_per_image
        return max(1, int(limits.current().inference_mib / max(per_image, 1e-9)))

    def _normalized_batches(self, images, batch_size: int):
        batch_size = limits.integer("batch_size", batch_size, 1, limits.current().max_batch_size)
        batch_size = min(batch_size, self.max_inference_batch)
        x = self.as_unit_batch(images)
        for i in range(0, len(x), batch_size):
            yield self.normalization.normalize(x[i:i + batch_size].to(self.device))

    def predict_proba(self, images, batch_size: int = 500) -> torch.Tensor:
        """Class posteriors ``q(y | x)``, ``(N, K)`` (the IB-INN: by Bayes' rule on the GMM)."""
        return self.infer(images, batch_size).proba

    def predict(self, images, batch_size: int = 500) -> torch.Tensor:
        """Most probable class per image, ``(N,)``."""
        return self.infer(images, batch_size).log_posterior.argmax(1)

    def num_parameters(self) -> int:
        """Trainable parameters (fixed permutation matrices excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, half: bool = False) -> Path:
        """Save weights and config, with ``model_type``, as one safetensors file (atomic).

        Hard permutation matrices are stored as index vectors and inverse permutations not at
        all (they are transposes), which keeps fully-connected blocks small. ``half=True`` stores
        the learned float weights in fp16 (but ``keep_fp32``); an invertible network stays
        exactly invertible either way.
        """
        tensors = pack_state(self.state_dict(), half, keep_fp32=self.keep_fp32)
        return save_weights(path, tensors, {"model_type": self.model_type, **self.config.to_json()})

    @classmethod
    def from_file(cls: type[_Model], path: str | Path, device: str | torch.device = "cpu") -> _Model:
        """The model :meth:`save` wrote to ``path``, in eval mode on ``device``.

        Every failure is a :class:`CheckpointError` saying why: a file of another type, a config
        out of range (checked before anything is built), weights that do not fit, are not finite,
        fixed buffers (permutations, DCT matrices) that are not what they must be, or what the
        class's own check (``_check_loaded``) finds. Files without ``model_type`` are IB-INNs
        (written before the baselines existed).
        """
        tensors, config_json = load_weights(path)
        if not isinstance(config_json, dict):
            raise CheckpointError(f"{path}: its config is not a JSON object")
        found = config_json.pop("model_type", "ibinn")
        if found != cls.model_type:
            wanted = "an IB-INN" if cls.model_type == "ibinn" else f"a {cls.model_type!r} one"
            raise CheckpointError(f"{path} holds a {str(found)[:40]!r} model, not {wanted}")
        try:
            model = cls(ModelConfig.from_json(config_json))
        except CheckpointError as err:
            raise CheckpointError(f"{path}: {err}") from err
        except (TypeError, ValueError, ArithmeticError) as err:
            raise CheckpointError(f"{path}: config does not describe a valid model: {err}") from err
        try:
            model.load_state_dict(unpack_state(tensors, model.state_dict(), path))
        except CheckpointError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise CheckpointError(f"{path}: weights do not fit the model: {err}") from err
        model.eval()._check_loaded(path)
        model._check_outputs(path)
        return model.to(device)

