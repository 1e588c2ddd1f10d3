"""The IB-INN's invertible network: :func:`build_inn` and the coupling subnetworks it is made of.

Architecture (Ardizzone et al., NeurIPS 2020, appendix E): per resolution level a stack of FrEIA
``AllInOneBlock`` couplings (affine coupling, tanh soft clamping, learned global affine scaling,
fixed random soft channel permutation), downsampling between levels (parameter-free i-RevNet or
Haar, or the official code's learned :class:`~ibinn.invertible.DownsamplingCoupling`), optional
DCT pooling, then fully-connected coupling blocks. Grey images are squeezed to 4 channels first,
since a coupling cannot split one channel. Subnetworks are "plain" (last layer zero: each block
starts as the identity) or the official code's (batch norm, dropout, Kaiming initialisation).
The latent's initial class means (:func:`initial_means`) are the official code's too.

FrEIA is imported when a network is built, not with this module: it loads scipy.stats (about
1 s), which ``import ibinn`` and the CLI's start need not pay (benchmarks/import_time.py).

Example:
    >>> from ibinn.model_config import ModelConfig
    >>> inn = build_inn(ModelConfig.from_preset("tiny", (1, 28, 28), n_classes=10))
    >>> z, log_det = inn(torch.rand(2, 1, 28, 28))
    >>> tuple(z.shape), tuple(log_det.shape)
    ((2, 784), (2,))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .model_config import ModelConfig
from .private_rng import private_global_rng

if TYPE_CHECKING:
    import FrEIA.framework as Ff

#: What FrEIA's blocks take as ``subnet_constructor``: ``(channels in, channels out)`` → a module.
SubnetConstructor = Callable[[int, int], nn.Module]


def conv_subnet(width: int, stride: int = 1) -> SubnetConstructor:
    """The plain convolutional subnetwork: 3×3 conv, ReLU, 1×1 conv, ReLU, 3×3 conv, the last
    one zero, so that each coupling block starts as the identity."""
    def make(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(nn.Conv2d(c_in, width, 3, stride=stride, padding=1), nn.ReLU(),
                            nn.Conv2d(width, width, 1), nn.ReLU(),
                            nn.Conv2d(width, c_out, 3, padding=1))
        nn.init.zeros_(net[-1].weight)  # each block starts as the identity coupling
        nn.init.zeros_(net[-1].bias)
        return net
    return make


def fc_subnet(width: int) -> SubnetConstructor:
    """The plain fully-connected subnetwork: linear, ReLU, linear, the last one zero."""
    def make(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(nn.Linear(c_in, width), nn.ReLU(), nn.Linear(width, c_out))
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
        return net
    return make


#: The official code's batch-norm settings. In PyTorch's convention momentum 0.999 weights the
#: newest batch by 0.999: the running statistics are (almost) those of the last training batch.
OFFICIAL_BATCHNORM = dict(momentum=0.999, eps=1e-4)


def official_conv_subnet(width: int, dropout: float = 0.0, relu_first: bool = False,
                         stride: int = 1) -> SubnetConstructor:
    """The official code's convolutional subnetwork (``inn_architecture.py``): [ReLU,] 3×3 conv,
    batch norm, ReLU, 3×3 conv (``stride`` 2: the downsampling coupling's strided subnet), batch
    norm, ReLU, dropout, 1×1 conv; convolutions without bias but the last, Kaiming-initialised."""
    def make(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = [nn.ReLU()] if relu_first else []
        layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                   nn.BatchNorm2d(width, **OFFICIAL_BATCHNORM), nn.ReLU(),
                   nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(width, **OFFICIAL_BATCHNORM), nn.ReLU(),
                   nn.Dropout2d(dropout), nn.Conv2d(width, c_out, 1)]
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight)
        return nn.Sequential(*layers)
    return make


def official_fc_subnet(width: int, dropout: float) -> SubnetConstructor:
    """The official code's fully-connected subnetwork: linear, ReLU, dropout, linear, with
    Kaiming initialisation scaled by 0.1."""
    def make(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(nn.Linear(c_in, width), nn.ReLU(), nn.Dropout(dropout),
                            nn.Linear(width, c_out))
        for layer in (net[0], net[-1]):
            nn.init.kaiming_normal_(layer.weight)
            layer.weight.data.mul_(0.1)
        return net
    return make


def build_inn(config: ModelConfig) -> Ff.SequenceINN:
    """The invertible network of ``config``, its random permutations drawn from ``config.seed``:
    [a grey image's squeeze,] per level [downsampling,] coupling blocks, then the flattening (or
    DCT pooling) and fully-connected blocks, appended in that order."""
    import FrEIA.framework as Ff

    with private_global_rng(config.seed):
        inn = Ff.SequenceINN(*config.image_shape)
        shape = config.image_shape
        if shape[0] == 1:
            shape = _append_grey_squeeze(inn, config)
        for level, n_blocks in enumerate(config.levels):
            if level > 0:
                shape = _append_downsampling(inn, config, level, shape)
            _append_conv_blocks(inn, config, level, n_blocks)
        _append_fc_blocks(inn, config)
    return inn


def _squeeze(config: ModelConfig) -> type[nn.Module]:
    """The parameter-free 2 × 2 squeeze: i-RevNet's, else Haar (also for "coupling", as the
    official code squeezes grey images)."""
    import FrEIA.modules as Fm

    return Fm.IRevNetDownsampling if config.downsampling == "irevnet" else Fm.HaarDownsampling


def _append_grey_squeeze(inn: Ff.SequenceINN, config: ModelConfig) -> tuple[int, int, int]:
    """Squeeze a grey image to 4 channels (a coupling cannot split one); returns the new shape."""
    _, h, w = config.image_shape
    if h % 2 or w % 2:
        raise ValueError(f"grey images are squeezed 2 × 2 first: height and width must be "
                         f"even, got {h}x{w}")
    inn.append(_squeeze(config))
    return 4, h // 2, w // 2


def _append_downsampling(inn: Ff.SequenceINN, config: ModelConfig, level: int,
                         shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Halve height and width before ``level`` (4× the channels); returns the new shape."""
    c, h, w = shape
    if h % 2 or w % 2:
        raise ValueError(f"cannot downsample {h}x{w} for level {level + 1}: "
                         f"use fewer levels for image shape {config.image_shape}")
    if config.downsampling != "coupling":
        inn.append(_squeeze(config))
    else:  # its subnets are twice as wide as the level before: they see 4× the channels
        from .invertible import DownsamplingCoupling

        width, official = 2 * config.widths[level - 1], config.subnet == "official"
        strided = official_conv_subnet(width, stride=2) if official else conv_subnet(width, stride=2)
        low_res = (official_conv_subnet(width, _dropout(config, level - 1)) if official
                   else conv_subnet(width))
        inn.append(DownsamplingCoupling, subnet_strided=strided, subnet_low_res=low_res,
                   clamp=config.clamp)
    return 4 * c, h // 2, w // 2


def _append_conv_blocks(inn: Ff.SequenceINN, config: ModelConfig, level: int, n_blocks: int) -> None:
    """The level's coupling blocks, with soft channel permutations."""
    import FrEIA.modules as Fm

    for block in range(n_blocks):
        inn.append(Fm.AllInOneBlock, subnet_constructor=_level_subnet(config, level, block == 0),
                   affine_clamping=config.clamp, global_affine_init=config.act_norm,
                   global_affine_type=config.global_affine.upper(), permute_soft=True)


def _level_subnet(config: ModelConfig, level: int, first_block: bool) -> SubnetConstructor:
    """The subnetwork of a coupling block of ``level``."""
    if config.subnet != "official":
        return conv_subnet(config.widths[level])
    # the official subnets start with a ReLU, except the very first, which reads the image
    reads_image = first_block and level == 0 and config.image_shape[0] > 1
    return official_conv_subnet(config.widths[level], _dropout(config, level), not reads_image)


def _dropout(config: ModelConfig, level: int) -> float:
    """The dropout rate of ``level``'s official subnets (``config.dropout`` empty: none)."""
    return config.dropout[level] if config.dropout else 0.0


def _append_fc_blocks(inn: Ff.SequenceINN, config: ModelConfig) -> None:
    """Flatten (or DCT-pool) the feature maps, then the fully-connected coupling blocks."""
    import FrEIA.modules as Fm

    from .invertible import DCTPooling, Flatten

    inn.append(DCTPooling if config.dct_pooling else Flatten)
    fc_clamp = config.clamp if config.fc_clamp is None else config.fc_clamp
    subnet = (official_fc_subnet(config.fc_width, config.fc_dropout) if config.subnet == "official"
              else fc_subnet(config.fc_width))
    for _ in range(config.fc_blocks):
        if config.fc_coupling == "glow":  # the official code's: both halves transformed
            inn.append(Fm.PermuteRandom)
            inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet, clamp=fc_clamp)
        else:  # hard permutations: a soft one over thousands of features is slow and large
            inn.append(Fm.AllInOneBlock, subnet_constructor=subnet, affine_clamping=fc_clamp,
                       global_affine_init=config.act_norm,
                       global_affine_type=config.global_affine.upper(), permute_soft=False)


def initial_means(n_classes: int, dim: int, scale: float) -> torch.Tensor:
    """The official code's μ initialisation: class k owns every K-th latent dimension.

    Each mean has ``dim // K`` entries ``scale / sqrt(2·dim // K)``, so ``‖μ_k‖ ≈ scale/√2`` and
    the means are orthogonal, ``scale`` apart.
    """
    mu = torch.zeros(n_classes, dim)
    per_class = dim // n_classes
    value = scale / math.sqrt(2 * dim // n_classes)
    for k in range(n_classes):  # a loop over classes, not dimensions: 10⁵ dimensions took seconds
        mu[k, k:n_classes * per_class:n_classes] = value
    return mu


def initial_mean_radius(scale: float) -> float:
    """``‖μ_k‖ = scale/√2`` of :func:`initial_means`: orthogonal means at this radius lie ``scale``
    apart. The official "class-NLL + regularisation" runs keep them there (``mu_init`` 5, 10, 18).

    Example:
        >>> round(float(initial_means(10, 3072, 10.0)[0].norm()), 4) == round(initial_mean_radius(10.0), 4)
        True
    """
    return scale / math.sqrt(2.0)
