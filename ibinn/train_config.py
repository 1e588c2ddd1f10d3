"""What a training run is: :class:`TrainConfig`, its recipe fields and the files a run folder holds.

A config is saved as JSON next to the run's checkpoints (:data:`CONFIG_FILE`); a resumed run takes
everything from it but the settings of :data:`RUN_ONLY`. :data:`RECIPE` names the fields of how a
run trains (optimiser, schedule, budget, ...), as opposed to what model it makes, and
:data:`LEGACY_RECIPE` what configs saved before some of them existed trained with.

Example:
    >>> config = TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=1, out="runs/demo")
    >>> TrainConfig.from_json(config.to_json()) == config
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import data as D
from . import limits as L
from .baselines import MODEL_TYPES
from .checkpoint import atomic_write
from .loading import WEIGHTS_FILE  # noqa: F401  (a run folder's file, re-exported)
from .losses import MODES
from .model_config import PRESETS, ModelConfig
from .network import initial_mean_radius

if TYPE_CHECKING:
    from .classifier import ImageClassifier

#: Learning-rate schedules (:func:`ibinn.recipe.lr_schedule`), the default first.
SCHEDULES = ("linear", "cosine", "one-cycle", "step")

#: The files of a run folder (``TrainConfig.out``): the training state to resume from, the
#: model (:data:`ibinn.loading.WEIGHTS_FILE`), the config and the test metrics.
STATE_FILE = "train_state.pt"
CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"
#: Most frames of the latent space a run may keep (``snapshots``; see :mod:`ibinn.run_snapshots`):
#: the file and the dashboard's animation stay small.
MAX_SNAPSHOTS = 200
#: Settings that change where or how a run executes, not the model it makes: a resumed run takes
#: them from the command, everything else from its saved config.
RUN_ONLY = ("out", "root", "download", "device", "compile", "checkpoint_every")


#: Data sets trained with random horizontal flips and crops by default; ``imagefolder:`` data gets
#: them when it is RGB. Not Fashion-MNIST: on a 10-epoch CPU budget they cost 3 points of test
#: error (14.0% vs 10.8%, small preset, γ = 1), and not digits (a flipped digit is another symbol).
AUGMENTED = {"cifar10", "cifar100"}


def default_augment(dataset: str, channels: int) -> str:
    """The augmentation a run on ``dataset`` (of ``channels``) gets when its config names none."""
    rgb_folder = dataset.startswith("imagefolder:") and channels == 3
    return "flip-crop" if dataset in AUGMENTED or rgb_folder else "none"


@dataclass
class TrainConfig:
    """A training run, saved as JSON next to its checkpoints."""

    dataset: str = "fashion-mnist"
    model: str = "ibinn"  # or a baseline: "resnet", "irevnet", "vib" (see ibinn.baselines)
    root: str | None = None
    download: bool = False
    mode: str = "ib"
    gamma: float = 1.0
    preset: str = "small"
    epochs: float = 5.0
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's DEFAULT_LR, filled in when the config is made
    schedule: str = "linear"  # one of SCHEDULES
    warmup: float = 0.05  # share of the steps with a linear learning-rate warm-up
    ema: float = 0.05  # half-life of the weight average, as a share of the steps; 0: no average
    budget_minutes: float | None = None  # size the run to this compute budget (ignores epochs)
    lr_mu_factor: float = 3.0
    weight_decay: float = 1e-4
    grad_clip: float = 8.0
    label_smoothing: float = 0.05
    # Training noise std, in [0, 1] pixel units. 0.01 is the official code's (``default.ini``; its
    # CIFAR-10 γ sweep of Fig. 6 kept it), though the paper's text says 1e-3. On CIFAR-10 (JPEG),
    # γ = 1, 6,072 steps each, it lowered the test error from 26.73 to 24.39 %, turned the
    # RGB-rotation entropy increase positive (+0.11 against −0.24 nats) and gave Table 1's
    # Gaussian-noise AUC (76.9 %; the paper's 77.19 %), which σ = 1e-3 overshoots (99.8 %).
    sigma: float = 0.01
    augment: str | None = None  # one of data.AUGMENTATIONS; default: see AUGMENTED
    learn_class_weights: bool = False
    val_size: int = 1000
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast where the device computes bf16 natively (device.fast_bf16)
    compile: str = "auto"  # "auto" (long runs where a compiler is present), "on", "off"
    checkpoint_every: int = 200
    max_bad_steps: int = 20
    snapshots: int = 0  # frames of the latent space kept over the run (IB-INN; 0: none)
    out: str = "runs/model"
    model_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_names(self)
        if self.model not in MODEL_TYPES:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODEL_TYPES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.model != "ibinn" and (self.mode != "ib" or self.learn_class_weights):
            raise ValueError(f"mode and learn_class_weights apply to the IB-INN only, not to "
                             f"model {self.model!r}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be 'auto', 'on' or 'off', not {self.compile!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.budget_minutes is not None:
            self.budget_minutes = L.real("budget_minutes", self.budget_minutes, low=0, high=1e7,
                                         low_open=True)
        self.gamma = L.real("gamma", self.gamma, low=0, allow_inf=True)
        self.epochs = L.real("epochs", self.epochs, low=0, high=1e6, low_open=True)
        self.batch_size = L.integer("batch_size", self.batch_size, 1, L.current().max_batch_size)
        # a number, not None, so that a saved config keeps its rate when the default changes
        self.lr = L.real("lr", DEFAULT_LR[self.optimizer] if self.lr is None else self.lr,
                         low=0, low_open=True)
        for name, low, high in (("lr_mu_factor", 0, 1e6), ("weight_decay", 0, 1e3),
                                ("sigma", 0, 1.0), ("label_smoothing", 0, 0.999),
                                ("warmup", 0, 0.5), ("ema", 0, 1.0)):
            setattr(self, name, L.real(name, getattr(self, name), low=low, high=high))
        self.grad_clip = L.real("grad_clip", self.grad_clip, low=0, low_open=True)
        for name, low, high in (("val_size", 0, 10**9), ("seed", 0, 2**32 - 1),
                                ("checkpoint_every", 1, 10**9), ("max_bad_steps", 1, 10**9),
                                ("snapshots", 0, MAX_SNAPSHOTS)):
            setattr(self, name, L.integer(name, getattr(self, name), low, high))
        if self.augment is not None:
            D.check_augmentation(self.augment)
        unknown = set(self.model_overrides) - set(ModelConfig.ARCHITECTURE)
        if unknown:
            raise ValueError(f"model_overrides may set {', '.join(ModelConfig.ARCHITECTURE)}; "
                             f"not {', '.join(sorted(unknown))}")

    def with_recipe(self, **changes) -> TrainConfig:
        """This run (data, model, loss, seed) under this version's default recipe (:data:`RECIPE`)
        with ``changes``: how ``ibinn zoo rebuild --budget-minutes`` retrains a zoo."""
        defaults = TrainConfig()
        recipe = {name: getattr(defaults, name) for name in RECIPE} | {"lr": None}  # the optimizer's
        return dataclasses.replace(self, **recipe | changes)

    def command(self) -> str:
        """The ``ibinn train`` command that makes this run (flags for the fields off their defaults).

        Example:
            >>> TrainConfig(dataset="cifar10", budget_minutes=50, out="runs/c").command()
            'ibinn train --dataset cifar10 --budget-minutes 50 --out runs/c'
        """
        defaults, words = TrainConfig(), ["ibinn", "train"]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = DEFAULT_LR[self.optimizer] if f.name == "lr" else getattr(defaults, f.name)
            if f.name == "out" or value == default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "model_overrides":
                words += [f"--arch {key}={json.dumps(v, separators=(',', ':'))}" for key, v in value.items()]
            elif isinstance(value, bool):  # --amp / --no-amp (argparse.BooleanOptionalAction)
                words.append(flag if value else "--no-" + flag[2:])
            else:
                words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return " ".join(words + ["--out", self.out])

    def build_model(self, train_data: D.ImageData) -> ImageClassifier:
        """The untrained model of this config, normalised by ``train_data``'s channel statistics."""
        mean, std = D.channel_stats(train_data.images)
        model_config = ModelConfig.from_preset(
            self.preset, train_data.image_shape, len(train_data.classes),
            classes=train_data.classes, mean=mean, std=std, dataset=self.dataset,
            mode=self.mode, gamma=self.gamma, seed=self.seed,
            learn_class_weights=self.learn_class_weights, **self.model_overrides)
        if self.mode == "class-nll-reg":  # the means stay where the official code starts them
            model_config = dataclasses.replace(
                model_config, fixed_mu_radius=initial_mean_radius(model_config.mu_init))
        return MODEL_TYPES[self.model](model_config)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["gamma"] = "inf" if math.isinf(self.gamma) else self.gamma
        return out

    def save(self, folder: str | Path) -> None:
        """Write this config to the run folder ``folder`` (:data:`CONFIG_FILE`), atomically."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(folder) / CONFIG_FILE, lambda tmp: Path(tmp).write_text(
            json.dumps(self.to_json(), indent=2)))

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["gamma"] = float(data["gamma"])
        if isinstance(data.get("augment"), bool):  # runs saved before flips came on their own
            data["augment"] = "flip-crop" if data["augment"] else "none"
        # an optimizer other than these is left to the constructor's error
        optimizer = data.get("optimizer", "adam") if data.get("optimizer") in ("adam", "sgd", None) else None
        if "schedule" not in data and optimizer:  # saved before the recipe had these parts
            data |= LEGACY_RECIPE[optimizer]
        if data.get("lr") is None and optimizer:  # saved while None meant the default of the time
            data["lr"] = LEGACY_LR[optimizer]
        return cls(**data)


#: The fields of a run's recipe: how it trains, not what model it makes (data set, network, loss,
#: γ, seed). :meth:`TrainConfig.with_recipe` resets them.
RECIPE = ("optimizer", "lr", "lr_mu_factor", "weight_decay", "grad_clip", "label_smoothing", "sigma",
          "augment", "batch_size", "epochs", "budget_minutes", "schedule", "warmup", "ema", "amp",
          "compile", "val_size")

#: Each optimizer's learning rate when a config names none. Adam's is 2e-3: on CIFAR-10 (JPEG),
#: γ = 1, 15 CPU-minutes, it reached 34.2 % validation error where 1e-3 reached 37.8 % and 4e-3
#: 37.3 % (``benchmarks/recipe.py --variant``, README); SGD's is the paper's (appendix E).
DEFAULT_LR = {"adam": 2e-3, "sgd": 0.07}

#: What a saved ``lr: null`` means: the default of the configs that saved it (1e-3 Adam, 0.07 SGD;
#: the zoo of 2026-11 and the CIFAR-10 family of 2026-12-03).
LEGACY_LR = {"adam": 1e-3, "sgd": 0.07}

#: The recipe of configs saved before schedules and the weight average were settings (the zoo of
#: 2026-11): Adam with a 5 % warm-up and cosine decay, SGD with the paper's steps; no average.
LEGACY_RECIPE = {"adam": {"schedule": "cosine", "warmup": 0.05, "ema": 0.0, "amp": False},
                 "sgd": {"schedule": "step", "warmup": 0.0, "ema": 0.0, "amp": False}}


def _check_names(config: TrainConfig) -> None:
    """The fields that name things are texts, checked when the config is made rather than once
    the data is loaded (``dataset=NaN`` from a script got that far; ``model={}`` was a TypeError)."""
    for name in ("dataset", "model", "preset", "mode", "device", "compile", "optimizer", "schedule"):
        value = getattr(config, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a name, got {type(value).__name__} {value!r}"[:200])
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; known: {', '.join(PRESETS)}"[:300])

