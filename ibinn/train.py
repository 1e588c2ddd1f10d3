"""Training: one function, :func:`train`, behind the CLI, the tests and the dashboard.

The loop reads top to bottom: data on the training device → model → optimiser and schedule →
for each step, a batch with the paper's noise and label smoothing, the model's loss (the IB loss;
softmax cross-entropy, or the VIB loss, for the baselines of :mod:`ibinn.baselines`), gradient
clipping, a NaN guard, an optimiser step → running figures every :data:`REPORT_EVERY` steps →
checkpoints every ``checkpoint_every`` steps and at the end → test metrics. With
``snapshots`` > 0, an IB-INN run also keeps that many frames of its latent space forming
(:data:`SNAPSHOTS_FILE`, see :meth:`_Run.snapshot`). ``TrainConfig.model``
picks the model; everything else is the same for all. A step never waits for the device (see
:class:`_Run`); ``compile`` runs the model and loss through ``torch.compile``; under ``torchrun``
the processes share each global batch through ``DistributedDataParallel``.

Every batch is a pure function of ``(seed, step)``: the epoch's order comes from a generator
seeded by ``(seed, epoch)``, the batch's noise from one seeded by ``(seed, step)``, and the global
RNG, which stochastic layers (the VIB's sampling) draw from, is seeded by ``(seed, step)``. A run
killed at any point and resumed from its last checkpoint therefore takes exactly the steps the
uninterrupted run would have taken, on the same device and number of processes.

Recipe: Adam or SGD with momentum (the paper's, appendix E: lr 0.07, momentum 0.9, weight decay
1e-4, μ at 3x the lr without momentum, as in the official code), under one of torch's learning-rate
schedules sized to the run (:func:`lr_schedule`: linear warm-up, then linear or cosine decay to
zero, one-cycle, or the paper's steps), and an exponential moving average of the weights
(:class:`WeightAverage`, torch's ``AveragedModel``) that is what the run evaluates and saves. With
``budget_minutes`` the run is sized to a compute budget instead of a number of epochs: a short
measurement of the step speed (:meth:`_Run.measure_step_seconds`) fixes the number of steps that
fit (:func:`budget_steps`), so the schedule reaches zero when the budget ends. The steps are saved
with the checkpoints: a resumed run continues the same schedule and average.

Example:
    >>> from ibinn.train import TrainConfig, train
    >>> result = train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=1,
    ...                            out="runs/demo"))  # doctest: +SKIP
    >>> resnet = train(TrainConfig(dataset="demo:fashion-mnist", model="resnet", preset="tiny",
    ...                            epochs=1, out="runs/demo-resnet"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import data as D
from . import explore
from . import limits as L
from .baselines import MODEL_TYPES
from .checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_write,
    load_state,
    remove_stale_temporaries,
    run_folder_lock,
    save_state,
)
from .device import (
    Distributed,
    compile_blocker,
    compiled,
    compute_clock,
    fast_bf16,
    matmul_peak_gflops,
    resolve_device,
)
from .losses import MODES
from .metrics import bits_per_dim
from .model import IBINN, PRESETS, ImageClassifier, ModelConfig, initial_mean_radius

#: Learning-rate schedules (:func:`lr_schedule`), the default first.
SCHEDULES = ("linear", "cosine", "one-cycle", "step")

STATE_FILE = "train_state.pt"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"
#: Latent snapshots of a run with ``snapshots`` > 0: per frame, a fixed subset of test images and
#: the class means projected to 2D (see :func:`ibinn.explore.snapshot_frame`); plain arrays.
SNAPSHOTS_FILE = "snapshots.npz"
#: Test images whose latents each snapshot keeps (class-balanced, the same in every frame): enough
#: for clusters to read, few enough that a snapshot costs about one training step.
SNAPSHOT_IMAGES = 300
#: Most frames a run may keep (the file and the dashboard's animation stay small).
MAX_SNAPSHOTS = 200

#: Steps between fetches of the running figures from the device (the only host-device
#: synchronisation of the loop besides epoch ends and checkpoints).
REPORT_EVERY = 20
#: Share of the device's fp32 matmul peak that eager training reaches (50-75 % on a laptop CPU,
#: see the README's throughput table), for :func:`estimate_minutes`.
TRAINING_EFFICIENCY = 0.5
#: ``compile="auto"`` compiles runs estimated to take at least this long in eager mode. On the
#: 2-core CPU, compilation takes about a minute (less with a warm cache) and buys 1.2-1.3x; see
#: the README's throughput table.
COMPILE_PAYS_AFTER_MINUTES = 10.0
#: Settings that change where or how a run executes, not the model it makes: a resumed run takes
#: them from the command, everything else from its saved config.
RUN_ONLY = ("out", "root", "download", "device", "compile", "checkpoint_every")
#: What :meth:`_Run.snapshot` keeps per frame, in :data:`SNAPSHOTS_FILE`.
FRAME_KEYS = ("step", "epoch", "xy", "mu_xy", "accuracy", "explained")


#: Data sets trained with random horizontal flips and crops by default; ``imagefolder:`` data gets
#: them when it is RGB. Not Fashion-MNIST: on a 10-epoch CPU budget they cost 3 points of test
#: error (14.0% vs 10.8%, small preset, γ = 1), and not digits (a flipped digit is another symbol).
AUGMENTED = {"cifar10", "cifar100"}


def default_augment(dataset: str, channels: int) -> str:
    rgb_folder = dataset.startswith("imagefolder:") and channels == 3
    return "flip-crop" if dataset in AUGMENTED or rgb_folder else "none"


class TrainingDiverged(RuntimeError):
    """The loss or the gradients were NaN/inf for too many steps in a row."""


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
    lr: float | None = None  # default: 1e-3 for Adam, 0.07 for SGD
    schedule: str = "linear"  # one of SCHEDULES
    warmup: float = 0.05  # share of the steps with a linear learning-rate warm-up
    ema: float = 0.05  # half-life of the weight average, as a share of the steps; 0: no average
    budget_minutes: float | None = None  # size the run to this compute budget (ignores epochs)
    lr_mu_factor: float = 3.0
    weight_decay: float = 1e-4
    grad_clip: float = 8.0
    label_smoothing: float = 0.05
    sigma: float = 1e-3
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
        if self.lr is not None:
            self.lr = L.real("lr", self.lr, low=0, low_open=True)
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
        return dataclasses.replace(self, **{name: getattr(defaults, name) for name in RECIPE} | changes)

    def command(self) -> str:
        """The ``ibinn train`` command that makes this run (flags for the fields off their defaults).

        Example:
            >>> TrainConfig(dataset="cifar10", budget_minutes=50, out="runs/c").command()
            'ibinn train --dataset cifar10 --budget-minutes 50 --out runs/c'
        """
        defaults, words = TrainConfig(), ["ibinn", "train"]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "out" or value == getattr(defaults, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "model_overrides":
                words += [f"--arch {key}={json.dumps(v, separators=(',', ':'))}" for key, v in value.items()]
            elif isinstance(value, bool):
                words.append(flag)
            else:
                words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return " ".join(words + ["--out", self.out])

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["gamma"] = "inf" if math.isinf(self.gamma) else self.gamma
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["gamma"] = float(data["gamma"])
        if isinstance(data.get("augment"), bool):  # runs saved before flips came on their own
            data["augment"] = "flip-crop" if data["augment"] else "none"
        if "schedule" not in data:  # runs saved before the recipe had these parts: their recipe
            data |= LEGACY_RECIPE[data.get("optimizer", "adam")]
        return cls(**data)


#: The fields of a run's recipe: how it trains, not what model it makes (data set, network, loss,
#: γ, seed). :meth:`TrainConfig.with_recipe` resets them.
RECIPE = ("optimizer", "lr", "lr_mu_factor", "weight_decay", "grad_clip", "label_smoothing", "sigma",
          "augment", "batch_size", "epochs", "budget_minutes", "schedule", "warmup", "ema", "amp",
          "compile", "val_size")

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


@dataclass
class TrainResult:
    model: ImageClassifier
    out: Path
    history: list[dict]
    metrics: dict  #: ``metrics.json``; of a stopped run, ``steps``, ``total_steps``, ``train_seconds``
    finished: bool = True


def lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                warmup: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Torch's learning-rate scheduler for a run of ``total_steps`` optimiser steps.

    ``linear`` and ``cosine``: a linear warm-up over ``warmup`` of the steps, then a linear (as
    budgeted training recommends, Li et al., ICLR 2020) or cosine decay that reaches zero with the
    last step; ``one-cycle``: ``OneCycleLR`` (Smith & Topin, 2019) rising over ``warmup`` of the
    steps; ``step``: the paper's 10x decays at 1/3, 5/9 and 7/9 of training (appendix E), after
    the warm-up if any.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = lr_schedule(opt, "linear", total_steps=10, warmup=0.2)
        >>> rates = [sched.get_last_lr()[0]]
        >>> for _ in range(10):
        ...     opt.step(); sched.step(); rates.append(sched.get_last_lr()[0])
        >>> [round(r, 3) for r in rates]
        [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    """
    S = torch.optim.lr_scheduler
    if schedule == "one-cycle":
        return S.OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups],
                            total_steps=total_steps + 1, pct_start=max(warmup, 1 / (total_steps + 1)))
    warm = min(round(warmup * total_steps), total_steps - 1)
    rest = total_steps - warm
    if schedule == "linear":
        decay = S.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=rest)
    elif schedule == "cosine":
        decay = S.CosineAnnealingLR(optimizer, T_max=rest, eta_min=0.0)
    elif schedule == "step":
        decay = S.MultiStepLR(optimizer, [round(total_steps * f) - warm for f in (1 / 3, 5 / 9, 7 / 9)],
                              gamma=0.1)
    else:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if warm == 0:
        return decay
    # the warm-up rises to the full rate at its last step: (step + 1) / warm
    ramp = S.LinearLR(optimizer, start_factor=1 / warm, end_factor=1.0, total_iters=max(1, warm - 1))
    return S.SequentialLR(optimizer, [ramp, decay], milestones=[warm])


def budget_steps(budget_seconds: float, step_seconds: float, batch_size: int, steps_per_epoch: int,
                 val_images: int, test_images: int) -> int:
    """Optimiser steps that fit ``budget_seconds`` at ``step_seconds`` a step, leaving time for the
    validation pass at every epoch's end and the final test pass (an image's inference costs about
    a third of its training step: one forward pass of three). At least one step.

    Example:
        >>> budget_steps(600, 1.0, 100, 50, 1000, 10_000)  # 10 min at 1 s a step
        531
    """
    infer_seconds = step_seconds / batch_size / 3  # per image
    per_step = step_seconds + val_images * infer_seconds / steps_per_epoch
    return max(1, math.floor((budget_seconds - test_images * infer_seconds) / per_step))


class WeightAverage:
    """An exponential moving average of a model's trainable parameters (torch's
    ``AveragedModel``), and a copy of the model that carries it, for evaluation and saving.

    The decay gives the average a half-life of ``half_life`` of the run's ``total_steps``; early
    on it is capped at (1 + n) / (10 + n) after n updates, so that the random initial weights
    are forgotten fast (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``). Only
    trainable parameters are averaged: the IB-INN's fixed soft permutations (38M of CIFAR-10
    ``small``'s 40M parameters) never change. Buffers (batch-norm statistics) are the live model's.
    Non-finite steps (skipped by the NaN guard) leave the average unchanged, decided on the device.

    Reference: Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", 1992.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> average = WeightAverage(net, half_life=0.1, total_steps=100)
        >>> average.update(net, torch.tensor(True))
        >>> torch.equal(average.model().weight, net.weight)
        True
    """

    def __init__(self, model: torch.nn.Module, half_life: float, total_steps: int):
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        self.decay = 0.5 ** (1 / max(1.0, half_life * total_steps))
        self.average = torch.optim.swa_utils.AveragedModel(self._trainable(model),
                                                           multi_avg_fn=self._update)
        self._copy = copy.deepcopy(model)
        self._finite: torch.Tensor | None = None

    def _trainable(self, model: torch.nn.Module) -> torch.nn.ParameterList:
        params = dict(model.named_parameters())
        return torch.nn.ParameterList([params[name] for name in self.names])

    def _update(self, averaged: list[torch.Tensor], current: list[torch.Tensor],
                n_averaged: torch.Tensor | int) -> None:
        n = torch.as_tensor(n_averaged, dtype=averaged[0].dtype, device=averaged[0].device)
        weight = 1 - torch.clamp((1 + n) / (10 + n), max=self.decay)
        if self._finite is not None:
            weight = weight * self._finite.to(weight.dtype)
        torch._foreach_lerp_(averaged, current, weight)

    def update(self, model: torch.nn.Module, finite: torch.Tensor) -> None:
        """Fold the model's current weights in (not when ``finite`` is false)."""
        self._finite = finite
        self.average.update_parameters(self._trainable(model))

    @torch.no_grad()
    def model(self, live: torch.nn.Module | None = None) -> torch.nn.Module:
        """The model with the averaged weights (and ``live``'s buffers when given), in eval mode."""
        for name, value in zip(self.names, self.average.module, strict=True):
            self._copy.get_parameter(name).copy_(value)
        if live is not None:
            for (_, buffer), (_, value) in zip(self._copy.named_buffers(), live.named_buffers(),
                                               strict=True):
                buffer.copy_(value)
        return self._copy.eval()

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)


def _optimizer(model: ImageClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    lr = config.lr if config.lr is not None else (1e-3 if config.optimizer == "adam" else 0.07)
    # the network's weights, decayed; the IB-INN's class means μ and weights Φ have their own groups
    net_params = [p for name, p in model.named_parameters()
                  if p.requires_grad and name not in ("mu", "phi")]
    groups = [{"params": net_params, "weight_decay": config.weight_decay}]
    if isinstance(model, IBINN) and model.mu.requires_grad:
        mu_group = {"params": [model.mu], "lr": lr * config.lr_mu_factor, "weight_decay": 0.0}
        groups.append(mu_group | ({"momentum": 0.0} if config.optimizer == "sgd" else {}))
    if isinstance(model, IBINN) and model.phi.requires_grad:
        groups.append({"params": [model.phi], "weight_decay": 0.0})
    # fused: one kernel per step, and it honours ``found_inf`` (the NaN guard) without a sync
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, fused=True)
    return torch.optim.Adam(groups, lr=lr, fused=True)


def _make_model(config: TrainConfig, train_data: D.ImageData) -> ImageClassifier:
    mean, std = D.channel_stats(train_data.images)
    model_config = ModelConfig.from_preset(
        config.preset, train_data.image_shape, len(train_data.classes),
        classes=train_data.classes, mean=mean, std=std, dataset=config.dataset,
        mode=config.mode, gamma=config.gamma, seed=config.seed,
        learn_class_weights=config.learn_class_weights, **config.model_overrides)
    if config.mode == "class-nll-reg":  # the means stay where the official code starts them
        model_config = dataclasses.replace(
            model_config, fixed_mu_radius=initial_mean_radius(model_config.mu_init))
    return MODEL_TYPES[config.model](model_config)


def _seeded(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
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


@torch.no_grad()
def evaluate_split(model: ImageClassifier, data: D.ImageData, batch_size: int = 500) -> dict:
    """Error, mean bits/dim (absent for a model without likelihood) and size of a labelled set
    (clean images, no noise)."""
    result = model.infer(data.images, batch_size)
    figures = {"error": float((result.log_posterior.argmax(1) != data.labels).float().mean())}
    if result.bits_per_dim is not None:
        figures["bits_per_dim"] = float(result.bits_per_dim.mean())
    return figures | {"n": len(data)}


def estimate_minutes(config: TrainConfig) -> float:
    """Minutes of compute ``config`` needs in eager mode on its device: the model's training FLOPs
    per image (:func:`ibinn.limits.footprint`, which also checks the architecture against the
    limits) × training images × epochs, at :data:`TRAINING_EFFICIENCY` of the device's measured
    matmul peak; a run with ``budget_minutes`` needs its budget. Raises ``ValueError`` (a
    :class:`ibinn.data.DataError` for data) when the run cannot be built."""
    n_images, shape, n_classes = D.describe_dataset(config.dataset, config.root)
    model_config = ModelConfig.from_preset(config.preset, shape, max(n_classes, 2),
                                           **config.model_overrides)
    footprint = L.footprint(model_config.to_json())  # also checks the architecture
    if config.budget_minutes is not None:
        return config.budget_minutes
    flops = footprint.train_gflops_per_image * 1e9 * n_images * config.epochs
    rate = matmul_peak_gflops(resolve_device(config.device).type) * 1e9 * TRAINING_EFFICIENCY
    return flops / rate / 60


def snapshot_interval(total_steps: int, steps_per_epoch: int, frames: int) -> int:
    """Steps between latent snapshots so that a run keeps about ``frames`` of them (plus its
    first and last step): evenly spaced, on epoch ends whenever they are an epoch or more apart.
    A 1-epoch run thus still animates in ``frames`` frames, and a 100-epoch one in at most
    ``frames`` (every few epochs), so the file and the animation stay small however long it runs.

    Example:
        >>> snapshot_interval(10, 10, 40), snapshot_interval(1000, 10, 40)
        (1, 30)
    """
    every = max(1, math.ceil(total_steps / max(1, frames)))
    return steps_per_epoch * math.ceil(every / steps_per_epoch) if every >= steps_per_epoch else every


def load_snapshots(out: str | Path) -> dict[str, np.ndarray]:
    """The latent snapshots of the run in folder ``out`` (empty when it has none yet), as written
    by :meth:`_Run.snapshot`: ``step`` and ``epoch`` ``(F,)``, ``xy`` ``(F, N, 2)``, ``mu_xy``
    ``(F, K, 2)``, ``accuracy`` ``(F,)`` and ``explained`` ``(F, 2)`` per frame, and the images'
    ``labels`` ``(N,)`` and the ``classes`` ``(K,)``."""
    path = Path(out) / SNAPSHOTS_FILE
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def train(config: TrainConfig, callback: Callable[[dict], None] | None = None,
          resume: bool = False, progress: bool = True,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train an IB-INN or a baseline as ``config`` says, writing checkpoints and metrics to ``config.out``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its share of every global batch
    with ``DistributedDataParallel``; rank 0 alone writes, reports and evaluates.

    Args:
        callback: called with a dict of live figures (``step``, ``total_steps``, ``loss``, ``acc``,
            ``bits_per_dim`` (models with a likelihood only), ``lr``, and ``val_*`` at epoch ends)
            every :data:`REPORT_EVERY` steps and at epoch ends.
        resume: continue from ``out/train_state.pt`` when it exists. Without it, an ``out`` folder
            that already holds a run is an error, so that no run is overwritten by accident.
        progress: show a tqdm progress bar and a line of validation figures at each epoch's end
            (``False``: print nothing, as in the dashboard's workers).
        should_stop: polled every step (with several processes: every :data:`REPORT_EVERY`);
            returning True saves a checkpoint and stops (resumable).
    """
    dist = Distributed.from_env()
    device = dist.device(config.device)
    with dist.process_group(device), (run_folder_lock(config.out) if dist.is_main
                                      else contextlib.nullcontext()):
        return _train_locked(config, device, dist, callback, resume, progress, should_stop)


class _Objective(torch.nn.Module):
    """The model and its loss as one module: what torch.compile compiles and DDP wraps."""

    def __init__(self, model: ImageClassifier, amp: bool):
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            outputs = self.model(x)  # the IB-INN: (z, log_det); a baseline: (logits,) or (logits, info)
        outputs = tuple(o.float() for o in outputs)
        return self.model.loss(*outputs, y), outputs


@dataclass
class _Run:
    """Everything one training run holds, built by :meth:`start` (fresh or resumed).

    Nothing in a step waits for the device: the data set lives on it, batches are made there, the
    NaN guard decides there (the fused optimiser skips a step whose ``found_inf`` is set, as under
    ``GradScaler``), and the running figures stay there until :meth:`report` fetches them.
    """

    config: TrainConfig
    dist: Distributed
    out: Path
    model: ImageClassifier
    objective: torch.nn.Module  #: :class:`_Objective`, compiled and/or DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None  #: set by :meth:`plan`
    train_data: D.ImageData  #: images and labels on the training device
    val_data: D.ImageData
    test_data: D.ImageData
    augment: str
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    first_step: int = 0  #: > 0 when this process continued a run
    history: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    running: dict[str, float] = field(default_factory=dict)  #: as of the last :meth:`report`
    _order: tuple[int, torch.Tensor] | None = None  #: (epoch, its permutation of the training set)
    _sums: torch.Tensor | None = None  #: on the device: EMA of the figures, its weight, bad steps
    _skipped_reported: int = 0
    #: the objective before torch.compile, until the compiled one has run its first step
    _eager_objective: torch.nn.Module | None = None
    average: WeightAverage | None = None  #: the weights the run evaluates and saves (``ema`` > 0)
    #: a budget run's measurement (:meth:`plan`): seconds a step, seconds spent measuring
    planned: dict[str, float] = field(default_factory=dict)
    #: test images whose latents :meth:`snapshot` keeps (rank 0 of a run with snapshots, else None)
    snapshot_data: D.ImageData | None = None
    snapshot_every: int = 0
    #: the frames so far, per :func:`load_snapshots` key (lists of per-frame arrays)
    frames: dict[str, list] = field(default_factory=dict)

    @classmethod
    def start(cls, config: TrainConfig, device: torch.device, dist: Distributed, resume: bool) -> _Run:
        """Resume from ``out/train_state.pt`` or start afresh: data, model, optimiser, schedule."""
        out = Path(config.out)
        state_path = out / STATE_FILE
        if state_path.exists() and not resume:
            raise FileExistsError(f"{out} already holds a training run; pass resume=True "
                                  f"(`--resume`) to continue it, or choose another output folder")
        state = None
        if resume and state_path.exists():
            if dist.is_main:
                remove_stale_temporaries(out)  # from a run killed while writing a checkpoint
            state = load_state(state_path)
            # the saved run's settings win; only where and how it runs may change
            saved = TrainConfig.from_json(json.loads(state["train_config"]))
            config = dataclasses.replace(saved, **{k: getattr(config, k) for k in RUN_ONLY})
        if config.batch_size % dist.world:
            raise ValueError(f"batch size {config.batch_size} (the global batch) must divide evenly "
                             f"among {dist.world} processes")

        full = D.load_dataset(config.dataset, "train", config.root, config.download)
        train_data, val_data = D.split_train_val(full, min(config.val_size, len(full) // 10),
                                                 config.seed)
        test_data = D.load_dataset(config.dataset, "test", config.root, config.download)
        augment = (config.augment if config.augment is not None
                   else default_augment(config.dataset, train_data.image_shape[0]))
        steps_per_epoch = len(train_data) // config.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train_data)} training images < batch size {config.batch_size}")
        model = _make_model(config, train_data).to(device, memory_format=_memory_format(device))
        if dist.world > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        optimizer = _optimizer(model, config)
        _zero_momentum(optimizer)
        objective = _Objective(model, config.amp and fast_bf16(device))
        if dist.world > 1:
            objective = torch.nn.parallel.DistributedDataParallel(
                objective, device_ids=[device.index] if device.type == "cuda" else None)
        eager_objective = objective
        if _compile_pays(config, device):
            objective = compiled(objective, device,
                                 "reduce-overhead" if device.type == "cuda" and dist.world == 1 else None)
        train_data = dataclasses.replace(train_data, images=train_data.images.to(device),
                                         labels=train_data.labels.to(device))
        run = cls(config, dist, out, model, objective, optimizer, None, train_data, val_data,
                  test_data, augment, steps_per_epoch, 0,
                  _eager_objective=eager_objective if objective is not eager_objective else None)
        run.plan(state)
        if state is not None:  # the optimiser after the schedule, which sets its rates when built
            _load_parts(state_path, state, model=model, scheduler=run.scheduler, average=run.average,
                        optimizer=optimizer)
            _zero_momentum(optimizer)
            run.step, run.history, run.elapsed = state["step"], state["history"], state["elapsed"]
            run.first_step = run.step
        total_steps = run.total_steps
        if config.snapshots and isinstance(model, IBINN) and dist.is_main:
            per_class = max(1, SNAPSHOT_IMAGES // len(test_data.classes))
            run.snapshot_data = D.first_per_class(test_data, per_class)
            run.snapshot_every = snapshot_interval(total_steps, steps_per_epoch, config.snapshots)
            # a resumed run keeps the frames up to its checkpoint (later ones are taken again)
            if state is not None and (saved := load_snapshots(out)):
                kept = saved["step"] <= run.step
                run.frames = {key: list(saved[key][kept]) for key in FRAME_KEYS}
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(
                json.dumps(config.to_json(), indent=2)))
        return run

    @property
    def device(self) -> torch.device:
        return self.model.device

    def plan(self, state: dict | None) -> None:
        """Fix the run's length, then build its schedule and weight average for that length: the
        saved length of a resumed run, else the steps that fit ``budget_minutes`` (measured, see
        :meth:`measure_step_seconds`; every process takes rank 0's figure), else ``epochs``."""
        cfg = self.config
        if state is not None and "total_steps" in state:
            self.total_steps = int(state["total_steps"])
        elif cfg.budget_minutes is not None:
            step_seconds, spent = self.measure_step_seconds()
            planned = budget_steps(60 * cfg.budget_minutes - spent, step_seconds, cfg.batch_size,
                                   self.steps_per_epoch, len(self.val_data), len(self.test_data))
            self.total_steps = self.dist.broadcast_int(planned, self.device)
            self.planned = {"step_seconds": step_seconds, "measure_seconds": spent}
        else:
            self.total_steps = max(1, round(cfg.epochs * self.steps_per_epoch))
        self.scheduler = lr_schedule(self.optimizer, cfg.schedule, self.total_steps, cfg.warmup)
        if cfg.ema > 0:
            self.average = WeightAverage(self.model, cfg.ema, self.total_steps)

    def measure_step_seconds(self, warm: int = 2, timed: int = 8) -> tuple[float, float]:
        """Seconds of compute a training step takes here (the median of ``timed`` steps after
        ``warm`` ones, which pay for compilation and allocation) and the seconds the measurement
        took, on the device's compute clock (:func:`ibinn.device.compute_clock`: CPU time on the
        CPU, so that a budget means the same on a busy machine). The steps run on the run's own
        model and optimiser, which are restored afterwards, with the global RNG: the run then takes
        exactly the steps it would have taken unmeasured."""
        saved = copy.deepcopy({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()})
        clock, times = compute_clock(self.device), []
        began = clock()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            self.model.train()
            for _ in range(warm + timed):
                started = clock()
                self.train_step(measure=True)
                self.dist.synchronize(self.device)
                times.append(clock() - started)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        _zero_momentum(self.optimizer)
        self._sums = None
        return float(np.median(times[warm:])), clock() - began

    def eval_model(self) -> ImageClassifier:
        """The model the run evaluates and saves: the weight average (a copy, in eval mode) when
        there is one, else the live model (its mode unchanged)."""
        return self.model if self.average is None else self.average.model(live=self.model)

    def checkpoint(self) -> None:
        if self.dist.is_main:
            save_state(self.out / STATE_FILE, {
                "format": FORMAT, "train_config": json.dumps(self.config.to_json()), "step": self.step,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "history": self.history,
                "elapsed": self.elapsed, "total_steps": self.total_steps}
                | ({"average": self.average.state_dict()} if self.average is not None else {}))

    def snapshot_due(self) -> bool:
        """Whether this step (the start, every :attr:`snapshot_every` steps, the end) keeps a frame."""
        return self.snapshot_data is not None and (
            self.step % self.snapshot_every == 0 or self.step == self.total_steps)

    @torch.no_grad()
    def snapshot(self) -> None:
        """Keep a frame of the latent space (:func:`ibinn.explore.snapshot_frame` of the
        snapshot images) and rewrite :data:`SNAPSHOTS_FILE` atomically. The pass runs in eval
        mode and the global RNG is restored after it, so a run takes the same steps with or
        without snapshots."""
        data = self.snapshot_data
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            frame = explore.snapshot_frame(self.eval_model(), data.images, data.labels)
        values = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "xy": frame.xy,
                  "mu_xy": frame.mu_xy, "accuracy": frame.accuracy, "explained": frame.explained}
        for key in FRAME_KEYS:
            self.frames.setdefault(key, []).append(np.asarray(values[key]))
        arrays = {key: np.stack(self.frames[key]).astype(np.float32 if key != "step" else np.int64)
                  for key in FRAME_KEYS}
        arrays |= {"labels": data.labels.numpy(), "classes": np.array(data.classes)}

        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        atomic_write(self.out / SNAPSHOTS_FILE, save)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the step's global batch, a pure function of ``(seed, step)``
        (see the module docstring) whatever the number of processes."""
        cfg = self.config
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            order = torch.randperm(len(self.train_data), generator=_seeded(cfg.seed, epoch))
            self._order = (epoch, order.to(self.device))
        idx = self._order[1][within * cfg.batch_size:(within + 1) * cfg.batch_size]
        x, y = prepare_batch(self.train_data.images[idx], self.train_data.labels[idx], self.model, cfg,
                             _seeded(cfg.seed, 1 << 20, self.step, device=self.device), self.augment)
        if self.dist.world > 1:
            x, y = x.chunk(self.dist.world)[self.dist.rank], y.chunk(self.dist.world)[self.dist.rank]
        return x.contiguous(memory_format=_memory_format(self.device)), y

    def train_step(self, measure: bool = False) -> None:
        """One optimiser step, skipped on the device when the loss or the gradients are not finite
        (the schedule still advances, so that step counts and learning rates stay aligned with an
        unbroken run).

        The first step of a compiled objective is where torch.compile compiles: a failure there
        falls back to eager mode with one line, instead of ending the run.
        """
        if self._eager_objective is None:  # eager, or compiled and past its first step
            return self._step(measure)
        try:
            self._step(measure)
        except Exception as err:  # inductor raises many types (a missing compiler, a C++ error)
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            print(f"compile: failed ({first_line}); running eagerly", file=sys.stderr)
            self.objective = self._eager_objective
            self._step(measure)
        finally:
            self._eager_objective = None

    def _step(self, measure: bool) -> None:
        """One step; with ``measure``, the update alone (the schedule, the average, the step count
        and the running figures stay as they are: see :meth:`measure_step_seconds`)."""
        x, y = self.batch()
        torch.manual_seed(_seeded(self.config.seed, 2 << 20, self.step).initial_seed())
        loss, outputs = self.objective(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)
        self.optimizer.found_inf = (~finite).float()  # read by the fused optimiser's kernel
        self.optimizer.step()
        if measure:
            return
        with warnings.catch_warnings():  # the optimiser "step" may have been skipped on the device
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model, finite)
        self.step += 1
        with torch.no_grad():
            self._accumulate(loss.detach(), outputs, y, finite)

    def _accumulate(self, loss: torch.Tensor, outputs: tuple[torch.Tensor, ...], y: torch.Tensor,
                    finite: torch.Tensor) -> None:
        """Fold the step's figures into the running averages on the device (bias-corrected EMA
        over finite steps) and count non-finite steps, in a row and in all."""
        figures = [loss, (self.model.log_posterior_from(outputs[0]).argmax(1) == y.argmax(1)).float().mean()]
        if self.model.has_likelihood:
            figures.append(bits_per_dim(self.model.log_likelihood_from(*outputs),
                                        self.model.config.dim).mean())
        new = torch.stack(figures + [torch.ones((), device=loss.device)])
        if self._sums is None:
            self._sums = torch.zeros(len(new) + 2, device=loss.device)
        ema, bad_in_row, bad_total = self._sums[:-2], self._sums[-2], self._sums[-1]
        self._sums = torch.cat([torch.where(finite, 0.95 * ema + 0.05 * new, ema),
                                torch.where(finite, 0.0, bad_in_row + 1)[None], (bad_total + ~finite)[None]])

    def report(self) -> dict[str, float]:
        """Fetch the running figures from the device (one synchronisation); raise
        :class:`TrainingDiverged` after ``max_bad_steps`` non-finite steps in a row."""
        if self._sums is None:
            return self.running
        *ema, weight, bad_in_row, bad_total = self._sums.tolist()
        names = ["loss", "acc"] + (["bits_per_dim"] if self.model.has_likelihood else [])
        if weight > 0:
            self.running = {name: value / weight for name, value in zip(names, ema, strict=True)}
        if bad_total > self._skipped_reported and self.dist.is_main:
            tqdm.write(f"step {self.step}: {int(bad_total - self._skipped_reported)} step(s) with a "
                       f"non-finite loss or gradient skipped since the last report")
        self._skipped_reported = int(bad_total)
        if bad_in_row >= self.config.max_bad_steps:
            self.checkpoint()  # the weights are the last good ones: bad steps changed nothing
            raise TrainingDiverged(
                f"loss or gradients were NaN/inf for {int(bad_in_row)} steps in a row at step "
                f"{self.step}; try a smaller learning rate (--lr) or a larger gamma. The last good "
                f"state is in {self.out / STATE_FILE}")
        return self.running

    def end_epoch(self, started: float) -> dict:
        """Validation figures at an epoch's end (rank 0), appended to the history."""
        record = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
                  "elapsed_s": time.perf_counter() - started, **self.running}
        if self.dist.is_main:
            val = evaluate_split(self.eval_model(), self.val_data)
            self.model.train()
            record |= {f"val_{key}": value for key, value in val.items() if key != "n"}
        self.history.append(record)
        return record

    def finish(self) -> TrainResult:
        """Save the model, evaluate it on the test set, write ``metrics.json`` (rank 0)."""
        model = self.eval_model().eval()
        if not self.dist.is_main:
            return TrainResult(model, self.out, self.history, {})
        model.save(self.out / WEIGHTS_FILE)
        test = evaluate_split(model, self.test_data)
        metrics = {**{f"test_{key}": value for key, value in test.items() if key != "n"},
                   "n_test": test["n"], "steps": self.step, "resumed_from_step": self.first_step,
                   "epochs": self.step / self.steps_per_epoch, "train_seconds": self.elapsed,
                   "device": str(self.device), "processes": self.dist.world,
                   "parameters": model.num_parameters()}
        atomic_write(self.out / METRICS_FILE,
                     lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
        return TrainResult(model, self.out, self.history, metrics)


def _load_parts(path: Path, state: dict, **parts) -> None:
    """Load each named part of a saved run (``model=``, ``optimizer=``, ...) from ``state``."""
    try:
        for part, holder in parts.items():
            if holder is not None:
                holder.load_state_dict(state[part])
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{path} does not fit this run: {err}") from err
    if "optimizer" in parts:
        for group in parts["optimizer"].param_groups:  # states saved before the fused optimiser
            group.update(fused=True, foreach=None)


def _memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA, the layout cuDNN convolves fastest (tensor cores); the CPU keeps
    NCHW: on the 2-core CPU channels-last changed eager training by less than the run-to-run noise
    and slowed compiled Fashion-MNIST training."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _zero_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Give fused SGD its momentum buffers up front: a first step skipped through ``found_inf``
    would otherwise leave them uninitialised (torch 2.14; zeros are what a first step assumes)."""
    if isinstance(optimizer, torch.optim.SGD):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if group["momentum"] and "momentum_buffer" not in optimizer.state[p]:
                    optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)


def _compile_pays(config: TrainConfig, device: torch.device) -> bool:
    """``compile="auto"``: compile when the run is long enough to repay the compilation (see
    :data:`COMPILE_PAYS_AFTER_MINUTES`)."""
    if config.compile != "auto":
        return config.compile == "on"
    if compile_blocker(device) is not None:
        return False
    try:
        return estimate_minutes(config) >= COMPILE_PAYS_AFTER_MINUTES
    except ValueError:
        return False


def _train_locked(config: TrainConfig, device: torch.device, dist: Distributed,
                  callback: Callable[[dict], None] | None, resume: bool, progress: bool,
                  should_stop: Callable[[], bool] | None) -> TrainResult:
    run = _Run.start(config, device, dist, resume)
    cfg, total = run.config, run.total_steps
    what = {"ibinn": f"{cfg.mode} γ={cfg.gamma:g}", "vib": f"vib γ={cfg.gamma:g}"}.get(cfg.model, cfg.model)
    bar = tqdm(total=total, initial=run.step, disable=not (progress and dist.is_main), unit="step",
               desc=f"{cfg.dataset} {what}", dynamic_ncols=True)
    if run.planned and progress and dist.is_main:
        bar.write(f"budget {cfg.budget_minutes:g} min: {run.planned['step_seconds']:.3f} s of compute a "
                  f"step (measured in {run.planned['measure_seconds']:.0f} s): {total} steps, "
                  f"{total / run.steps_per_epoch:.2f} epochs")
    run.model.train()
    started = time.perf_counter() - run.elapsed
    if run.step == 0 and run.snapshot_due():
        run.snapshot()  # the untrained model: the first frame
    while run.step < total:
        run.train_step()
        if run.snapshot_due():
            run.snapshot()
        bar.update(1)
        epoch_end = run.step % run.steps_per_epoch == 0 or run.step == total
        if run.step % REPORT_EVERY == 0 or epoch_end:
            bar.set_postfix({k: f"{v:.3f}" for k, v in run.report().items()})
            if callback and dist.is_main:
                callback({"step": run.step, "total_steps": total, "lr": run.scheduler.get_last_lr()[0],
                          "epoch": run.step / run.steps_per_epoch,
                          "elapsed_s": time.perf_counter() - started, **run.running})
        if epoch_end:
            record = run.end_epoch(started)
            if progress and dist.is_main:
                bar.write(f"epoch {record['epoch']:.2f}: val error {record['val_error']:.4f}"
                          + (f", val bits/dim {record['val_bits_per_dim']:.4f}"
                             if "val_bits_per_dim" in record else ""))
            if callback and dist.is_main:
                callback({"total_steps": total, **record})
        run.elapsed = time.perf_counter() - started
        if run.step % cfg.checkpoint_every == 0 or epoch_end or run.step == total:
            run.checkpoint()
        poll = should_stop is not None and run.step < total and (dist.world == 1
                                                                  or run.step % REPORT_EVERY == 0)
        if poll and dist.any_true(should_stop(), device):
            run.report()
            run.checkpoint()
            bar.close()
            progress_so_far = {"steps": run.step, "total_steps": total, "train_seconds": run.elapsed}
            return TrainResult(run.eval_model().eval(), run.out, run.history, progress_so_far, finished=False)
    bar.close()
    return run.finish()

