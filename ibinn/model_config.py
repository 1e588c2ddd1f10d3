"""What defines a model: :class:`ModelConfig`, the architecture presets and the choices of its parts.

A config is everything needed to rebuild a model (:func:`ibinn.network.build_inn` for the IB-INN,
:mod:`ibinn.baselines` for the others); it is saved as JSON inside every checkpoint and checked
field by field against :mod:`ibinn.limits` before anything is built from it. The ``paper`` preset
is the official code's architecture (Ardizzone et al., NeurIPS 2020, appendix E).

Example:
    >>> config = ModelConfig.from_preset("tiny", (1, 28, 28), n_classes=10)
    >>> config.levels, config.dim
    ([2, 2], 784)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from . import limits, losses
from .checkpoint import CheckpointError

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
