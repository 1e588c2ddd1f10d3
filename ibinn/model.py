"""The IB-INN: an invertible network (FrEIA) onto a Gaussian mixture latent with one mean per class.

Architecture (Ardizzone et al., NeurIPS 2020, appendix E): per resolution level a stack of FrEIA
``AllInOneBlock`` couplings (affine coupling, tanh soft clamping, learned global affine scaling,
fixed random soft channel permutation), downsampling between levels (parameter-free i-RevNet or
Haar, or the official code's learned :class:`~ibinn.invertible.DownsamplingCoupling`), optional
DCT pooling, then fully-connected coupling blocks. Grey images are squeezed to 4 channels first,
since a coupling cannot split one channel. The ``paper`` preset builds the authors' official
CIFAR-10 network (subnetworks with batch norm and dropout, GLOW fully-connected block); the
README lists what still differs. The latent is a GMM with learnable means ``μ_y``
(initialised as the paper's code does) and class log-weights ``log_softmax(Φ)``, Φ fixed at 0
unless ``learn_class_weights``.

The inference methods take a batch of images, either uint8 ``(N, C, H, W)``, ``(N, H, W, C)`` or
``(N, H, W)`` for grey, or float tensors ``(N, C, H, W)`` in [0, 1], run without gradients in
batches on the model's device, and return CPU tensors.

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

import abc
import contextlib
import dataclasses
import functools
import math
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import limits, losses, metrics
from .checkpoint import CheckpointError, load_weights, save_weights
from .data import Normalization

if TYPE_CHECKING:
    import FrEIA.framework as Ff

#: Architecture presets. ``levels`` / ``widths``: coupling blocks and conv-subnet width per
#: resolution level for RGB images, ``fc_width`` the hidden width of the fully-connected blocks;
#: ``*_grey``: the same for 1-channel images, whose initial squeeze takes the first level's place.
#: ``small`` trains Fashion-MNIST at ~750 img/s on 2 CPU cores; its RGB fully-connected blocks are
#: narrower, as 3072 features at width 512 would make a 5.5M-parameter model, too big to ship.
#: ``paper`` is the official code's ``default.ini`` (github.com/VLL-HD/IB-INN, ``inn_architecture.py``);
#: for grey images its MNIST network (Haar squeeze in place of the first level).
PRESETS: dict[str, dict] = {
    "tiny": dict(levels=[2, 2], widths=[16, 32], levels_grey=[2, 2], widths_grey=[16, 32],
                 fc_blocks=1, fc_width=64, fc_width_grey=64, dct_pooling=False),
    "small": dict(levels=[2, 6, 6], widths=[32, 64, 128], levels_grey=[4, 6], widths_grey=[32, 64],
                  fc_blocks=2, fc_width=256, fc_width_grey=512, dct_pooling=False),
    "paper": dict(levels=[8, 24, 24], widths=[16, 32, 64], levels_grey=[24, 24],
                  widths_grey=[32, 64], dropout=[0.0, 0.0, 0.25], dropout_grey=[0.0, 0.25],
                  fc_blocks=1, fc_width=1024, fc_width_grey=1024, dct_pooling=True,
                  downsampling="coupling", subnet="official", fc_coupling="glow",
                  fc_dropout=0.5, clamp=0.7, fc_clamp=2.0, act_norm=0.75, global_affine="exp"),
}

#: The choices of the architecture's named parts (``ModelConfig`` fields), first the default.
CHOICES: dict[str, tuple[str, ...]] = {
    "downsampling": ("irevnet", "haar", "coupling"),
    "subnet": ("plain", "official"),
    "fc_coupling": ("allinone", "glow"),
    "global_affine": ("softplus", "exp"),
}


def _is_image_file(x) -> bool:
    return isinstance(x, str | Path | bytes | bytearray | memoryview)


def to_tensor(images) -> torch.Tensor:
    """``images`` as a tensor, sharing memory with an array where it can; read-only arrays (from
    uploads or caches) are copied, as torch cannot share them."""
    if torch.is_tensor(images):
        return images
    array = np.asarray(images)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as JSON inside every checkpoint."""

    #: The fields a preset sets and that a run may change on top of it (``--arch KEY=VALUE``).
    ARCHITECTURE: ClassVar[tuple[str, ...]] = (
        "levels", "widths", "fc_blocks", "fc_width", "dct_pooling", "downsampling", "clamp",
        "act_norm", "mu_init", "subnet", "dropout", "fc_dropout", "fc_coupling", "fc_clamp",
        "global_affine")

    #: Fields that files written before they existed lack: their defaults are what those files
    #: were built with. A stored config must hold every other field (see :meth:`from_json`).
    ADDED_LATER: ClassVar[tuple[str, ...]] = (
        "subnet", "dropout", "fc_dropout", "fc_coupling", "fc_clamp", "global_affine")

    image_shape: tuple[int, int, int]
    n_classes: int
    classes: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    levels: list[int] = field(default_factory=lambda: [2, 2])
    widths: list[int] = field(default_factory=lambda: [16, 32])
    fc_blocks: int = 1
    fc_width: int = 64
    dct_pooling: bool = False
    downsampling: str = "irevnet"  # see CHOICES
    clamp: float = 1.5
    act_norm: float = 1.0
    mu_init: float = 5.0
    #: coupling subnetworks: "plain" (conv-ReLU-1×1-ReLU-conv or linear-ReLU-linear, last layer
    #: zero: each block starts as the identity) or "official" (the official code's: two 3×3 convs
    #: with batch norm, ReLU, dropout and a 1×1 conv, or linear-ReLU-dropout-linear; Kaiming
    #: initialisation)
    subnet: str = "plain"
    dropout: list[float] = field(default_factory=list)  #: per level, "official" subnets; [] = 0
    fc_dropout: float = 0.0
    fc_coupling: str = "allinone"  #: or "glow": a random permutation and a GLOW coupling
    fc_clamp: float | None = None  #: soft clamp of the fully-connected blocks; None: ``clamp``
    global_affine: str = "softplus"  #: parametrisation of the blocks' global scale (FrEIA's)
    fixed_mu_radius: float | None = None
    learn_class_weights: bool = False
    preset: str = "custom"
    dataset: str = ""
    mode: str = "ib"
    gamma: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        # sizes first, against ibinn.limits, before anything is allocated from them; a shallow
        # dict, as asdict would deep-copy whatever long lists a stranger's config holds
        limits.check_model_config({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        c = self.image_shape[0]
        self.classes = list(self.classes) or [str(i) for i in range(self.n_classes)]
        for name in ("mean", "std"):  # lengths first: a long list is refused without a pass over it
            if not isinstance(getattr(self, name), list | tuple) or len(getattr(self, name)) not in (0, c):
                raise ValueError(f"{name} must be a list of {c} channel values (or empty), got "
                                 f"{type(getattr(self, name)).__name__}")
        # of images in [0, 1]: a std below 1e-4 (under a 40th of one 8-bit level) would blow
        # normalised inputs up to non-finite values
        self.mean = ([limits.real(f"mean[{i}]", m, low=0, high=1) for i, m in enumerate(self.mean)]
                     or [0.5] * c)
        self.std = ([limits.real(f"std[{i}]", s, low=1e-4, high=1) for i, s in enumerate(self.std)]
                    or [0.25] * c)
        self.clamp = limits.real("clamp", self.clamp, low=0, high=100, low_open=True)
        self.act_norm = limits.real("act_norm", self.act_norm, low=0, high=100, low_open=True)
        if self.fc_clamp is not None:
            self.fc_clamp = limits.real("fc_clamp", self.fc_clamp, low=0, high=100, low_open=True)
        if not isinstance(self.dropout, list | tuple) or len(self.dropout) not in (0, len(self.levels)):
            raise ValueError(f"dropout must be a list of one rate per level ({len(self.levels)}) "
                             f"or empty, got {type(self.dropout).__name__}")
        self.dropout = [limits.real(f"dropout[{i}]", d, low=0, high=0.99) for i, d in
                        enumerate(self.dropout)]
        self.fc_dropout = limits.real("fc_dropout", self.fc_dropout, low=0, high=0.99)
        self.mu_init = limits.real("mu_init", self.mu_init, low=0, high=1e4)
        if self.fixed_mu_radius is not None:
            self.fixed_mu_radius = limits.real("fixed_mu_radius", self.fixed_mu_radius, low=0,
                                               high=1e6, low_open=True)
        self.gamma = limits.real("gamma", self.gamma, low=0, allow_inf=True)
        self.seed = limits.integer("seed", self.seed, 0, 2**32 - 1)  # numpy seeds are 32-bit
        for name in ("dct_pooling", "learn_class_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("preset", "dataset", "mode", *CHOICES):
            if not isinstance(getattr(self, name), str) or len(getattr(self, name)) > 1000:
                raise ValueError(f"{name} must be a text of at most 1000 characters")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not "
                                 f"{getattr(self, name)!r}")
        if self.subnet == "plain" and max(self.dropout + [self.fc_dropout]) > 0:
            raise ValueError("dropout and fc_dropout need subnet 'official' (plain subnets have none)")
        if self.mode not in losses.MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(losses.MODES)}")

    @classmethod
    def from_preset(cls, preset: str, image_shape: tuple[int, int, int], n_classes: int,
                    **overrides) -> ModelConfig:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        arch = dict(PRESETS[preset])
        grey = {key.removesuffix("_grey"): arch.pop(key) for key in list(arch) if key.endswith("_grey")}
        if image_shape[0] == 1:
            arch.update(grey)
        arch.update(overrides)
        return cls(image_shape=image_shape, n_classes=n_classes, preset=preset, **arch)

    @property
    def dim(self) -> int:
        return math.prod(self.image_shape)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["gamma"] = "inf" if math.isinf(self.gamma) else self.gamma  # JSON has no infinity
        return out

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """The config saved by :meth:`to_json`; every field is checked (:mod:`ibinn.limits`)
        before anything is built from it, and must be there (but :data:`ADDED_LATER`), ``classes``,
        ``mean`` and ``std`` in full. Raises :class:`CheckpointError` naming the bad field."""
        if not isinstance(data, dict):
            raise CheckpointError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise CheckpointError(f"config has unknown fields {sorted(unknown)[:10]}"[:300])
        missing = sorted(known - set(cls.ADDED_LATER) - set(data))
        data = dict(data)
        gamma = data.get("gamma", 1.0)
        data["gamma"] = math.inf if gamma in ("inf", "Infinity") else gamma
        try:
            config = cls(**data)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"invalid model config: {err}") from err
        if missing:  # a default in place of a stored value would change the model unannounced
            raise CheckpointError(f"config lacks the fields {', '.join(missing[:10])}")
        for name in ("classes", "mean", "std"):  # an empty list is a default only when building
            if len(data[name]) != len(getattr(config, name)):
                raise CheckpointError(f"invalid model config: {name} must have "
                                      f"{len(getattr(config, name))} entries, got {len(data[name])}")
        return config


def _conv_subnet(width: int, stride: int = 1):
    def make(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(nn.Conv2d(c_in, width, 3, stride=stride, padding=1), nn.ReLU(),
                            nn.Conv2d(width, width, 1), nn.ReLU(),
                            nn.Conv2d(width, c_out, 3, padding=1))
        nn.init.zeros_(net[-1].weight)  # each block starts as the identity coupling
        nn.init.zeros_(net[-1].bias)
        return net
    return make


def _fc_subnet(width: int):
    def make(c_in: int, c_out: int) -> nn.Module:
        net = nn.Sequential(nn.Linear(c_in, width), nn.ReLU(), nn.Linear(width, c_out))
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
        return net
    return make


#: The official code's batch-norm settings. In PyTorch's convention momentum 0.999 weights the
#: newest batch by 0.999: the running statistics are (almost) those of the last training batch.
_OFFICIAL_BATCHNORM = dict(momentum=0.999, eps=1e-4)


def _official_conv_subnet(width: int, dropout: float = 0.0, relu_first: bool = False,
                          stride: int = 1):
    """The official code's convolutional subnetwork (``inn_architecture.py``): [ReLU,] 3×3 conv,
    batch norm, ReLU, 3×3 conv (``stride`` 2: the downsampling coupling's strided subnet), batch
    norm, ReLU, dropout, 1×1 conv; convolutions without bias but the last, Kaiming-initialised."""
    def make(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = [nn.ReLU()] if relu_first else []
        layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                   nn.BatchNorm2d(width, **_OFFICIAL_BATCHNORM), nn.ReLU(),
                   nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(width, **_OFFICIAL_BATCHNORM), nn.ReLU(),
                   nn.Dropout2d(dropout), nn.Conv2d(width, c_out, 1)]
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight)
        return nn.Sequential(*layers)
    return make


def _official_fc_subnet(width: int, dropout: float):
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


_GLOBAL_RNG_LOCK = threading.RLock()


class _PrivateGenerator(TorchDispatchMode):
    """Give every random draw of the ops this thread runs ``generator`` in place of torch's global
    one. Dispatch modes are thread-local, so another thread's draws never see it."""

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.generator = generator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        names = [a.name for a in func._schema.arguments]
        if "generator" in names:
            i = names.index("generator")
            if i < len(args) and args[i] is None:
                args = (*args[:i], self.generator, *args[i + 1:])
            elif i >= len(args) and kwargs.get("generator") is None:
                kwargs["generator"] = self.generator
        elif torch.Tag.nondeterministic_seeded in func.tags:  # e.g. randn.default: its overload
            name = "generator" if func._overloadname == "default" else f"{func._overloadname}_generator"
            if not hasattr(func.overloadpacket, name):
                raise RuntimeError(f"{func} draws from torch's global generator and has no "
                                   f"overload taking one")
            func, kwargs["generator"] = getattr(func.overloadpacket, name), self.generator
        return func(*args, **kwargs)


class _NumpyWith:
    """numpy as a FrEIA module sees it during a build: ``np.random`` is a private RandomState."""

    def __init__(self, random: np.random.RandomState):
        self.random = random

    def __getattr__(self, name: str):
        return getattr(np, name)


@contextlib.contextmanager
def _private_numpy_in_freia(seed: int) -> Iterator[None]:
    """FrEIA 0.2 draws its permutations from numpy's global RNG (``special_ortho_group.rvs``,
    ``np.random.permutation``) and takes no generator: for the block, its two modules that draw
    see a RandomState seeded with ``seed`` instead, which draws what the global RNG seeded alike
    would. Module attributes are process-wide: hold ``_GLOBAL_RNG_LOCK``."""
    import FrEIA.modules.all_in_one_block as all_in_one
    import FrEIA.modules.fixed_transforms as fixed
    from scipy import stats

    private = np.random.RandomState(seed)
    patches = [(all_in_one, "np", _NumpyWith(private)), (fixed, "np", _NumpyWith(private)),
               (all_in_one, "special_ortho_group", type(stats.special_ortho_group)(seed=private))]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextlib.contextmanager
def private_global_rng(seed: int) -> Iterator[None]:
    """Run a block that initialises a model, its random numbers drawn from ``seed`` alone, without
    touching the global random streams that other threads draw from.

    Torch's layers initialise from torch's global generator and take no other: this thread's
    draws go to a private ``torch.Generator`` seeded with ``seed`` instead (:class:`_PrivateGenerator`).
    FrEIA's permutations come from a private numpy RandomState (:func:`_private_numpy_in_freia`).
    Both draw the numbers that the global ones seeded with ``seed`` would, so a seed makes the
    weights it always made.
    """
    with _GLOBAL_RNG_LOCK, _private_numpy_in_freia(seed), \
            _PrivateGenerator(torch.Generator().manual_seed(seed)):
        yield


def build_inn(config: ModelConfig) -> Ff.SequenceINN:
    """The invertible network of ``config``, its random permutations drawn from ``config.seed``."""
    # imported here, not at the top: FrEIA loads scipy.stats (about 1 s), which `import ibinn`
    # and the CLI's start need not pay (benchmarks/import_time.py)
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    from .invertible import DCTPooling, DownsamplingCoupling, Flatten

    official = config.subnet == "official"
    dropout = config.dropout or [0.0] * len(config.levels)
    fc_clamp = config.clamp if config.fc_clamp is None else config.fc_clamp
    squeeze = Fm.IRevNetDownsampling if config.downsampling == "irevnet" else Fm.HaarDownsampling

    def conv_subnet(level: int, first_block: bool):
        if not official:
            return _conv_subnet(config.widths[level])
        # the official subnets start with a ReLU, except the very first, which reads the image
        reads_image = first_block and level == 0 and config.image_shape[0] > 1
        return _official_conv_subnet(config.widths[level], dropout[level], not reads_image)

    with private_global_rng(config.seed):
        inn = Ff.SequenceINN(*config.image_shape)
        c, h, w = config.image_shape
        if c == 1:
            if h % 2 or w % 2:
                raise ValueError(f"grey images are squeezed 2 × 2 first: height and width must be "
                                 f"even, got {h}x{w}")
            inn.append(squeeze)  # parameter-free: Haar for "coupling", as the official code
            c, h, w = 4, h // 2, w // 2
        for level, n_blocks in enumerate(config.levels):
            if level > 0:
                if h % 2 or w % 2:
                    raise ValueError(f"cannot downsample {h}x{w} for level {level + 1}: "
                                     f"use fewer levels for image shape {config.image_shape}")
                if config.downsampling != "coupling":
                    inn.append(squeeze)
                else:  # its subnets are twice as wide as the level before: they see 4× the channels
                    width, drop = 2 * config.widths[level - 1], dropout[level - 1]
                    strided = (_official_conv_subnet(width, stride=2) if official
                               else _conv_subnet(width, stride=2))
                    inn.append(DownsamplingCoupling, subnet_strided=strided,
                               subnet_low_res=(_official_conv_subnet(width, drop) if official
                                               else _conv_subnet(width)), clamp=config.clamp)
                c, h, w = 4 * c, h // 2, w // 2
            for block in range(n_blocks):
                inn.append(Fm.AllInOneBlock, subnet_constructor=conv_subnet(level, block == 0),
                           affine_clamping=config.clamp, global_affine_init=config.act_norm,
                           global_affine_type=config.global_affine.upper(), permute_soft=True)
        inn.append(DCTPooling if config.dct_pooling else Flatten)
        fc_subnet = (_official_fc_subnet(config.fc_width, config.fc_dropout) if official
                     else _fc_subnet(config.fc_width))
        for _ in range(config.fc_blocks):
            if config.fc_coupling == "glow":  # the official code's: both halves transformed
                inn.append(Fm.PermuteRandom)
                inn.append(Fm.GLOWCouplingBlock, subnet_constructor=fc_subnet, clamp=fc_clamp)
            else:  # hard permutations: a soft one over thousands of features is slow and large
                inn.append(Fm.AllInOneBlock, subnet_constructor=fc_subnet, affine_clamping=fc_clamp,
                           global_affine_init=config.act_norm,
                           global_affine_type=config.global_affine.upper(), permute_soft=False)
    return inn


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
        if _is_image_file(images):
            images = [images]
        if isinstance(images, list | tuple) and images and all(map(_is_image_file, images)):
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
        if _is_image_file(images) or (isinstance(images, list | tuple) and images
                                      and all(map(_is_image_file, images))):
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


def pack_state(state: dict[str, torch.Tensor], half: bool = False,
               keep_fp32: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A state dict as the tensors of a weights file.

    Hard permutation matrices (FrEIA's ``w_perm``) become index vectors and their inverses are
    dropped (they are transposes), which keeps fully-connected coupling blocks small.
    ``half=True`` stores float weights in fp16, except those named in ``keep_fp32``.
    """
    tensors = {}
    for name, value in state.items():
        if name.endswith("w_perm_inv"):
            continue
        if name.endswith("w_perm"):
            matrix = value.reshape(value.shape[0], value.shape[1])
            if bool(((matrix == 0) | (matrix == 1)).all()):
                tensors[name + "_index"] = matrix.argmax(1)
                continue
        elif half and value.is_floating_point() and name not in keep_fp32:
            value = value.half()
        tensors[name] = value
    return tensors


def unpack_state(tensors: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                 path: str | Path) -> dict[str, torch.Tensor]:
    """The inverse of :func:`pack_state`, checked against a freshly built model's ``state``.

    Raises :class:`CheckpointError` when names or shapes do not match.
    """
    tensors = dict(tensors)
    from_index = set()
    for name in list(tensors):
        if name.endswith("w_perm_index"):
            key = name[: -len("_index")]
            if key not in state:
                raise CheckpointError(f"{path}: unexpected tensor {name}")
            shape = state[key].shape
            index = tensors.pop(name)
            if (index.dtype.is_floating_point or index.shape != (shape[0],)
                    or not torch.equal(index.sort().values, torch.arange(shape[0]))):
                raise CheckpointError(f"{path}: {name} is not a permutation of {shape[0]} indices")
            matrix = torch.zeros(shape[0], shape[1])
            matrix[torch.arange(shape[0]), index.long()] = 1.0
            tensors[key] = matrix.reshape(shape)
            from_index.add(key)
    for key in state:
        forward = key[: -len("_inv")]
        if key.endswith("w_perm_inv") and forward in tensors:  # always the transpose, never read
            tensors[key] = tensors[forward].transpose(0, 1).contiguous()
    missing = set(state) - set(tensors)
    unexpected = set(tensors) - set(state)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its config: missing {sorted(missing)[:5]}"
                              f", unexpected {sorted(unexpected)[:5]}")
    for key, value in tensors.items():
        if value.shape != state[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(state[key].shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
        if key.endswith("num_batches_tracked"):  # a batch-norm step counter, learned like weights
            pass
        elif not value.is_floating_point() and not state[key].is_floating_point():
            # index buffers (DCT orders, random permutations) are fixed by the config: they must
            # be the built ones
            if not torch.equal(value.long(), state[key].long()):
                raise CheckpointError(f"{path}: {key} differs from the index buffer its config makes")
        elif key.endswith(("w_perm", "dct_h", "dct_w")) and key not in from_index:  # orthogonal
            matrix = value.reshape(value.shape[0], -1).double()
            eye = torch.eye(matrix.shape[0], dtype=torch.float64)
            if matrix.shape[0] != matrix.shape[1] or (matrix @ matrix.T - eye).abs().max() > 1e-2:
                raise CheckpointError(f"{path}: {key} is not an orthogonal (permutation) matrix")
    return {k: v.to(state[k].dtype) for k, v in tensors.items()}


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
        x = self.as_unit_batch(x if _is_image_file(x) else self.as_batch(x))
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

