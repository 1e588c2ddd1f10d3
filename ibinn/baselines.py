"""The paper's discriminative baselines (Ardizzone et al., NeurIPS 2020, section 4.1 and Table 1),
trained and evaluated by the same code as the IB-INN.

- :class:`ResNetClassifier` ("Feed-forward"): the IB-INN's network (:func:`ibinn.network.build_inn`,
  same preset, levels, parameter-free i-RevNet/Haar downsampling, Flatten/DCT pooling and
  fully-connected stage) with every affine coupling replaced by a residual block ``x + f(x)``,
  ``f`` a subnet of the coupling's design (``conv_subnet`` / ``fc_subnet``, last layer zero, so
  each block starts as the identity, as each coupling does; with ``subnet="official"`` the
  official code's batch-norm subnets, without dropout), then a linear head to class logits.
  A coupling's subnet maps ``c − c//2`` channels to ``2·(c//2)`` while ``f`` maps ``c`` to ``c``,
  so at equal hidden width a residual block would have more parameters (up to a third more in
  the fully-connected stage). Each block's hidden width is therefore the one at which its
  parameter count is closest to that of the coupling block it replaces (subnet and global affine
  scaling); the linear head has exactly as many parameters as the IB-INN's class means.
- :class:`IRevNetClassifier` ("i-RevNet", Jacobsen et al., 2018): the IB-INN's own invertible
  network, its output projected to class logits by a linear layer and trained with softmax
  cross-entropy: invertible, but not generative.
- :class:`VIBClassifier` (Alemi et al., "Deep Variational Information Bottleneck", ICLR 2017): the
  ResNet as encoder of a stochastic Gaussian bottleneck, a linear decoder to logits, and the VIB
  loss; its per-image KL "info loss" is its OoD score.

All three train with softmax cross-entropy on the smoothed labels and share the IB-INN's interface,
:class:`ibinn.classifier.ImageClassifier`: ``infer``, ``predict_proba``, ``predict``, input validation,
``save`` / ``from_file`` (:func:`ibinn.load` dispatches on the checkpoint's ``model_type``),
``num_parameters`` and ``describe``. They declare no likelihood (:meth:`Baseline.log_likelihood`
raises :class:`NoLikelihoodError`), no sampling, interpolation or inverse, and no calibration by
design; only the VIB has an OoD score.

Example:
    >>> import ibinn, torch
    >>> from ibinn.baselines import ResNetClassifier
    >>> config = ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), n_classes=10)
    >>> resnet = ResNetClassifier(config)
    >>> abs(resnet.num_parameters() / ibinn.IBINN(config).num_parameters() - 1) < 0.1
    True
    >>> resnet.predict_proba(torch.rand(3, 1, 28, 28)).shape
    torch.Size([3, 10])
"""

from __future__ import annotations

import abc
import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import ImageClassifier, Inference
from .data import Normalization
from .model import IBINN
from .model_config import ModelConfig
from .network import build_inn, conv_subnet, fc_subnet, official_conv_subnet, official_fc_subnet
from .private_rng import private_global_rng


class NoLikelihoodError(TypeError):
    """A discriminative model was asked for a likelihood ``p(x)``, which it does not have."""


@dataclass
class VIBInference(Inference):
    """:class:`ibinn.classifier.Inference` plus the VIB's info loss, its OoD score."""

    info_loss: torch.Tensor | None = None  #: KL(q(z|x) ‖ N(0, I)) per image, nats, (N,)


# ---------------------------------------------------------------------- the feed-forward ResNet
class _ForwardOnly(nn.Module):
    """A FrEIA module used as a plain feed-forward layer, its log-Jacobian dropped: the
    parameter-free downsampling and pooling, and (``paper`` preset) the learned downsampling and
    GLOW couplings, which have no residual twin here and are kept, with their parameters, as
    ordinary layers of the network."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (out,), _ = self.module([x], jac=False)
        return out


class _Residual(nn.Module):
    """``x + f(x)``."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


def _count(make: Callable[[int, int], nn.Module], c_in: int, c_out: int) -> int:
    with torch.device("meta"):  # counting only: no memory, no initialisation
        return sum(p.numel() for p in make(c_in, c_out).parameters())


def matched_width(subnet: Callable[[int], Callable[[int, int], nn.Module]], channels: int,
                  target: int) -> int:
    """The hidden width at which ``subnet(width)(channels, channels)`` has the parameter count
    closest to ``target`` (the count grows with the width, so a bisection finds it)."""
    hi = 1
    while _count(subnet(hi), channels, channels) < target:
        hi *= 2
    widths = range(1, hi + 1)
    i = bisect.bisect_left(widths, target, key=lambda w: _count(subnet(w), channels, channels))
    candidates = widths[max(i - 1, 0):i + 1]
    return min(candidates, key=lambda w: abs(_count(subnet(w), channels, channels) - target))


def residual_subnet(config: ModelConfig, conv: bool) -> Callable[[int], Callable[[int, int], nn.Module]]:
    """The residual branch ``f`` of the ResNet twin: the design of the couplings' subnets
    (``config.subnet``), as a function of its hidden width."""
    if config.subnet != "official":
        return conv_subnet if conv else fc_subnet
    if conv:
        return official_conv_subnet  # no leading ReLU: the branch reads x itself, not max(x, 0)
    return lambda width: official_fc_subnet(width, dropout=0.0)


def build_resnet(config: ModelConfig) -> nn.Sequential:
    """The feed-forward twin of :func:`ibinn.network.build_inn`: normalised images ``(N, C, H, W)``
    to features ``(N, D)``; see the module docstring."""
    import FrEIA.modules as Fm  # here, as in build_inn: FrEIA's import costs about 1 s

    widths: dict[tuple[bool, int, int], int] = {}
    layers: list[nn.Module] = []
    for module in build_inn(config).module_list:
        if not isinstance(module, Fm.AllInOneBlock):
            layers.append(_ForwardOnly(module))
            continue
        conv, channels = module.input_rank == 2, module.in_channels
        target = sum(p.numel() for p in module.parameters() if p.requires_grad)
        key = (conv, channels, target)
        subnet = residual_subnet(config, conv)
        if key not in widths:
            widths[key] = matched_width(subnet, channels, target)
        layers.append(_Residual(subnet(widths[key])(channels, channels)))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------- shared machinery
class Baseline(ImageClassifier):
    """What the three baselines share: config, normalisation, a linear head to logits and softmax.

    ``forward`` returns the tuple the training loop passes on to :meth:`loss` (``(logits,)``, for
    the VIB ``(logits, info_loss)``), so that ``model.loss(*model(x), y)`` trains any model.

    Discriminative models of ``q(y | x)`` alone: no likelihood, nothing to sample from or
    interpolate along, no inverse. The i-RevNet's network is invertible, so its features keep
    everything about the image, but its head to logits is not and this class offers no
    ``decode``: it declares no ``exact_inverse``.
    """

    title: ClassVar[str]
    has_likelihood = False
    has_ood_score = False
    calibrated_by_design = False
    can_sample = False
    can_interpolate = False
    exact_inverse = False
    head: nn.Linear

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.normalization = Normalization(config.mean, config.std)
        with private_global_rng(config.seed):  # the initial weights depend on config.seed only
            self._build()

    @abc.abstractmethod
    def _build(self) -> None:
        """Create the layers (under the config's seed)."""

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images → what the linear head reads, ``(N, D)``."""

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.head(self.features(x)),)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy with (smoothed) label distributions ``y``, batch mean."""
        return F.cross_entropy(logits, y)

    def log_posterior_from(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits, dim=1)

    def _infer_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(x)
        return {"z": z, "log_posterior": self.log_posterior_from(self.head(z))}

    def log_likelihood(self, images, batch_size: int = 500) -> torch.Tensor:
        raise NoLikelihoodError(
            f"the {self.title} is a discriminative classifier: it models q(y | x) only and has no "
            f"likelihood p(x), hence no log-likelihood or bits/dim; use an IB-INN for those")

    def bits_per_dim(self, images, batch_size: int = 500) -> torch.Tensor:
        return self.log_likelihood(images, batch_size)

    def _details(self) -> str:
        return ""

    def describe(self) -> str:
        cfg = self.config
        return (f"{self.title}{self._details()} on {cfg.dataset or '?'} {cfg.image_shape}, "
                f"preset {cfg.preset}, {self.num_parameters() / 1e6:.2f}M parameters")


# ---------------------------------------------------------------------- the three baselines
class ResNetClassifier(Baseline):
    """Feed-forward ResNet: :func:`build_resnet`, then a linear head to logits."""

    model_type = "resnet"
    title = "ResNet (feed-forward, softmax)"

    def _build(self) -> None:
        self.body = build_resnet(self.config)
        self.head = nn.Linear(self.config.dim, self.config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class IRevNetClassifier(Baseline):
    """The IB-INN's invertible network with a linear head to logits, trained as a softmax classifier.

    ``z`` in :meth:`infer` is the invertible network's output, as the IB-INN's latent is.
    """

    model_type = "irevnet"
    title = "i-RevNet (invertible, softmax)"

    def _build(self) -> None:
        self.inn = build_inn(self.config)
        self.head = nn.Linear(self.config.dim, self.config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.inn(x)
        return z


class VIBClassifier(Baseline):
    """Variational Information Bottleneck (Alemi et al., 2017) on the feed-forward ResNet.

    The ResNet's features give the mean and log-variance of ``q(z|x) = N(μ(x), diag σ²(x))`` in
    ``bottleneck_dim`` dimensions (128, as the IB-INN authors' VIB; Alemi et al. use 256); training
    decodes a reparameterised sample ``z = μ + σ·ε``, inference the mean. The loss is

        L = CE(softmax(decoder(z)), y) + β · KL(q(z|x) ‖ N(0, I)),   β = 1 / (γ · dim(X)).

    The conversion: the paper writes the IB as ``I(X, Z) − β_IB · I(Y, Z)`` (Eq. 1) and defines
    "a corresponding γ := β/dim(X)" when it divides L_X by dim(X) (section 4, "Loss
    rebalancing"); for the VIB, "We convert the authors definition of β to our γ for consistency"
    (section 4.1). Alemi et al. minimise ``CE + β_VIB · KL``, the IB with the roles swapped:
    ``β_VIB = 1/β_IB = 1/(γ · dim(X))``, as the authors' code computes it
    (``beta = 1. / (beta * 3072)`` in VIB.py of github.com/VLL-HD/IB-INN). γ = ∞ gives β = 0;
    γ = 0 (β = ∞) is not a classifier and is rejected. The per-image KL, the "info loss", is the
    VIB's OoD score (:func:`ibinn.evaluate.evaluate` reports its ROC-AUC as ``auc_info_loss``).
    """

    model_type = "vib"
    title = "VIB"
    has_ood_score = True  # its info loss
    inference_class = VIBInference
    bottleneck_dim = 128
    #: log σ² of every latent at initialisation: σ = softplus(−5) ≈ 0.0067, where Alemi et al.'s
    #: ``σ = softplus(x − 5)`` starts, so that early training is not drowned in sampling noise.
    initial_log_var = 2 * math.log(math.log1p(math.exp(-5.0)))

    def __init__(self, config: ModelConfig):
        if not config.gamma > 0:
            raise ValueError(f"the VIB needs gamma > 0 (its β = 1/(γ·dim X) is infinite at γ = 0); "
                             f"got {config.gamma}")
        super().__init__(config)

    def _build(self) -> None:
        k = self.bottleneck_dim
        self.encoder = build_resnet(self.config)
        self.bottleneck = nn.Linear(self.config.dim, 2 * k)
        nn.init.constant_(self.bottleneck.bias[k:], self.initial_log_var)
        self.head = nn.Linear(k, self.config.n_classes)

    @property
    def beta(self) -> float:
        """Alemi et al.'s β for this model's γ: ``1 / (γ · dim(X))``."""
        return 1.0 / (self.config.gamma * self.config.dim)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, log-variance and KL(q(z|x) ‖ N(0, I)) per image (nats)."""
        mean, log_var = self.bottleneck(self.encoder(x)).chunk(2, dim=1)
        info_loss = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(1)
        return mean, log_var, info_loss

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck's mean, ``(N, bottleneck_dim)``."""
        return self._posterior(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean, log_var, info_loss = self._posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp() if self.training else mean
        return self.head(z), info_loss

    def loss(self, logits: torch.Tensor, info_loss: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``CE + β · KL``, batch mean (see the class docstring)."""
        return F.cross_entropy(logits, y) + self.beta * info_loss.mean()

    def _infer_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, _, info_loss = self._posterior(x)
        return {"z": mean, "log_posterior": self.log_posterior_from(self.head(mean)),
                "info_loss": info_loss}

    def encode(self, images, batch_size: int = 500) -> torch.Tensor:
        """The bottleneck's mean ``μ(x)`` per image, ``(N, bottleneck_dim)``."""
        return self.infer(images, batch_size).z

    def info_loss(self, images, batch_size: int = 500) -> torch.Tensor:
        """KL(q(z|x) ‖ N(0, I)) per image in nats: the VIB's OoD score (higher: more atypical)."""
        return self.infer(images, batch_size).info_loss

    def _details(self) -> str:
        gamma = "∞" if math.isinf(self.config.gamma) else f"{self.config.gamma:g}"
        return f" (γ = {gamma}, β = {self.beta:.3g}, {self.bottleneck_dim}-d bottleneck)"


#: Every model type by the name in checkpoints, ``TrainConfig.model`` and ``ibinn train --model``.
BASELINES: dict[str, type[Baseline]] = {
    cls.model_type: cls for cls in (ResNetClassifier, IRevNetClassifier, VIBClassifier)}
MODEL_TYPES: dict[str, type[ImageClassifier]] = {IBINN.model_type: IBINN, **BASELINES}
