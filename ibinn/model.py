"""The IB-INN: an invertible network (FrEIA) onto a Gaussian mixture latent with one mean per class.

The network (:func:`~ibinn.network.build_inn`, Ardizzone et al., NeurIPS 2020, appendix E) is
built from a :class:`~ibinn.model_config.ModelConfig`; the ``paper`` preset builds the authors'
official CIFAR-10 network (subnetworks with batch norm and dropout, GLOW fully-connected block);
the README lists what still differs. The latent is a GMM with learnable means ``μ_y``
(initialised as the paper's code does) and class log-weights ``log_softmax(Φ)``, Φ fixed at 0
unless ``learn_class_weights``.

The inference methods (:class:`~ibinn.classifier.ImageClassifier`'s) take a batch of images,
either uint8 ``(N, C, H, W)``, ``(N, H, W, C)`` or ``(N, H, W)`` for grey, or float tensors
``(N, C, H, W)`` in [0, 1], run without gradients in batches on the model's device, and return CPU
tensors.

This module also gives the names of :mod:`ibinn.model_config`, :mod:`ibinn.network`,
:mod:`ibinn.classifier`, :mod:`ibinn.packing` and :mod:`ibinn.private_rng` that were once defined
here, so that ``from ibinn.model import ModelConfig`` and the like keep working.

Example:
    >>> import ibinn, torch
    >>> model = ibinn.IBINN(ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), n_classes=10))
    >>> x = torch.rand(3, 1, 28, 28)
    >>> model.predict_proba(x).shape
    torch.Size([3, 10])
    >>> bool((model.decode(model.encode(x)) - x).abs().max() < 1e-4)
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import limits, losses, metrics
from .checkpoint import CheckpointError
from .classifier import ImageClassifier, Inference, is_image_file, to_tensor
from .data import Normalization
from .model_config import CHOICES, PRESETS, ModelConfig
from .network import build_inn, initial_mean_radius, initial_means
from .packing import pack_state, unpack_state
from .private_rng import private_global_rng

__all__ = [
    "CHOICES", "IBINN", "PRESETS", "ImageClassifier", "Inference", "ModelConfig", "build_inn",
    "initial_mean_radius", "initial_means", "pack_state", "private_global_rng", "to_tensor",
    "unpack_state",
]


class IBINN(ImageClassifier):
    """An IB-INN generative classifier. See the module docstring.

    Generative and exactly invertible, it declares every capability; its posteriors are
    calibrated by design at small γ (the paper's Fig. 6: calibration worsens as γ → ∞).
    """

    model_type = "ibinn"
    has_likelihood = True
    has_ood_score = True
    calibrated_by_design = True
    can_sample = True
    can_interpolate = True
    exact_inverse = True
    keep_fp32 = ("mu", "phi")  # the class means set every decision boundary: full precision

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.inn = build_inn(config)
        mu = initial_means(config.n_classes, config.dim, config.mu_init)
        if config.fixed_mu_radius is not None:  # "class-NLL + regularisation": μ on a hypersphere
            mu = mu / mu.norm(dim=1, keepdim=True) * config.fixed_mu_radius
        self.mu = nn.Parameter(mu, requires_grad=config.fixed_mu_radius is None)
        self.phi = nn.Parameter(torch.zeros(config.n_classes),
                                requires_grad=config.learn_class_weights)
        self.normalization = Normalization(config.mean, config.std)

    # ------------------------------------------------------------------ core maths
    @property
    def device(self) -> torch.device:
        return self.mu.device

    def log_class_weights(self) -> torch.Tensor:
        """``log q(y) = log_softmax(Φ)`` (appendix B, Eq. 52)."""
        return torch.log_softmax(self.phi, dim=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``(N, C, H, W)`` → latents ``(N, D)`` and log |det J| ``(N,)``."""
        z, log_det = self.inn(x)
        return z, log_det

    def loss(self, z: torch.Tensor, log_det: torch.Tensor, y: torch.Tensor,
             gamma: float | None = None, mode: str | None = None) -> torch.Tensor:
        """The training loss (:func:`ibinn.losses.ib_loss`) at the config's γ and mode by default."""
        gamma = self.config.gamma if gamma is None else gamma
        mode = self.config.mode if mode is None else mode
        return losses.ib_loss(z, log_det, self.mu, self.log_class_weights(), y, gamma, mode)

    def log_posterior_from(self, z: torch.Tensor) -> torch.Tensor:
        return losses.log_posterior(z, self.mu, self.log_class_weights())

    def log_likelihood_from(self, z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats of images scaled to [0, 1]: GMM density, flow and normalisation Jacobians."""
        log_qz = torch.logsumexp(losses.joint_log_density(z, self.mu, self.log_class_weights()), 1)
        norm_jac = self.normalization.log_abs_det(self.config.image_shape)
        return log_qz + losses.gaussian_log_norm(self.config.dim) + log_det + norm_jac

    # ------------------------------------------------------------------ inference API
    def _infer_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z, log_det = self(x)
        ll = self.log_likelihood_from(z, log_det)
        return {"z": z, "log_posterior": self.log_posterior_from(z), "log_likelihood": ll,
                "bits_per_dim": metrics.bits_per_dim(ll, self.config.dim)}

    def log_likelihood(self, images, batch_size: int = 500) -> torch.Tensor:
        """``log p(x)`` per image in nats, for images scaled to [0, 1] (all Jacobians included)."""
        return self.infer(images, batch_size).log_likelihood

    def bits_per_dim(self, images, batch_size: int = 500) -> torch.Tensor:
        """Bits per dimension of 8-bit images (:func:`ibinn.metrics.bits_per_dim`)."""
        return self.infer(images, batch_size).bits_per_dim

    def encode(self, images, batch_size: int = 500) -> torch.Tensor:
        """The latent ``z = g(x)`` per image, ``(N, D)``."""
        return self.infer(images, batch_size).z

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The exact inverse ``x = g⁻¹(z)``, as images in [0, 1] units (not clipped), ``(N, C, H, W)``."""
        batch_size = limits.integer("batch_size", batch_size, 1, limits.current().max_batch_size)
        try:
            with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused below
                z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not torch.is_tensor(z) else z,
                                    dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"z must be latents (N, {self.config.dim}) of numbers: {err}") from err
        if z.ndim != 2 or z.shape[1] != self.config.dim or len(z) == 0:
            raise ValueError(f"z must be latents (N, {self.config.dim}) with N ≥ 1; got "
                             f"{tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("z contains NaN or infinite values")
        batch_size = min(batch_size, self.max_inference_batch)
        was_training = self.training
        self.eval()
        out = []
        try:
            for i in range(0, len(z), batch_size):
                x, _ = self.inn(z[i:i + batch_size].to(self.device), rev=True)
                out.append(self.normalization.denormalize(x).cpu())
        finally:
            self.train(was_training)
        x = torch.cat(out)
        if not bool(torch.isfinite(x).all()):  # e.g. |z| ~ 1e38: finite latents, overflowing images
            raise ValueError("z is too far from the class means: it decodes to NaN or infinite values")
        return x

    def sample(self, class_index: int, n: int, temperature: float = 1.0,
               seed: int | None = None, centre: Any = None) -> torch.Tensor:
        """``n`` images of class ``class_index`` from ``z = μ_y + T·ε``, clipped to [0, 1].

        ``n`` ≤ ``max_samples`` (:mod:`ibinn.limits`); ``0 ≤ temperature ≤ 100``, where 0 decodes
        the class mean itself; ``seed`` makes
        the noise reproducible (a local generator: the global RNG is not used). ``centre``: a
        latent ``(D,)`` to sample around instead of ``μ_y`` (e.g. the mean latent of the class's
        real images, :func:`ibinn.explore.class_centroids`).
        """
        class_index = limits.integer("class_index", class_index, 0, self.config.n_classes - 1)
        n = limits.integer("n", n, 1, limits.current().max_samples)
        temperature = limits.real("temperature", temperature, low=0, high=100)  # 0: μ_y itself
        seed = limits.integer("seed", seed, 0, 2**63 - 1) if seed is not None else None
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        eps = torch.randn(n, self.config.dim, generator=gen)
        if centre is None:
            centre = self.mu.detach().cpu()[class_index]
        else:
            centre = torch.as_tensor(np.asarray(centre, dtype=np.float32))
            if centre.shape != (self.config.dim,):
                raise ValueError(f"centre must be one latent ({self.config.dim},), got {tuple(centre.shape)}")
        return self.decode(centre + temperature * eps).clamp(0, 1)

    def interpolate(self, x_a, x_b, steps: int = 8) -> torch.Tensor:
        """Decoded linear interpolation in latent space from image ``x_a`` to ``x_b``.

        ``x_a``, ``x_b``: single images (batch of one, or without the batch axis).
        Returns ``(steps, C, H, W)`` in [0, 1], the ends being the two images.
        """
        steps = limits.integer("steps", steps, 2, limits.current().max_steps)
        ends = [self._single(x, name) for x, name in ((x_a, "x_a"), (x_b, "x_b"))]
        z = self.encode(torch.cat(ends))
        t = torch.linspace(0, 1, steps).unsqueeze(1)
        return self.decode((1 - t) * z[0] + t * z[1]).clamp(0, 1)

    def _single(self, x, name: str = "image") -> torch.Tensor:
        """One image, with or without the batch axis, or an image file, as a batch of one."""
        x = self.as_unit_batch(x if is_image_file(x) else self.as_batch(x))
        if len(x) != 1:
            raise ValueError(f"{name} must be one image, got a batch of {len(x)}")
        return x

    def _check_loaded(self, path: str | Path) -> None:
        """An invertible network must invert: this catches any tampering that names, shapes and
        finite values let through."""
        with torch.no_grad():
            c, h, w = self.config.image_shape  # a smooth ramp: natural images invert to ~1e-5
            ramp = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) / (h + w)
            x = self.normalization.normalize((0.25 + 0.5 * ramp).expand(1, c, h, w).to(self.device))
            z, _ = self(x)
            error = float((self.inn(z, rev=True)[0] - x).abs().max())
        if not error < 1e-2:
            raise CheckpointError(f"{path}: the network does not invert its own output (error "
                                  f"{error:.3g}): the weights are damaged or not this model's")

    def describe(self) -> str:
        cfg = self.config
        gamma = "∞" if math.isinf(cfg.gamma) else f"{cfg.gamma:g}"
        what = f"γ = {gamma}" if cfg.mode == "ib" else cfg.mode
        return (f"IB-INN ({what}) on {cfg.dataset or '?'} {cfg.image_shape}, preset {cfg.preset}, "
                f"{self.num_parameters() / 1e6:.2f}M parameters")

