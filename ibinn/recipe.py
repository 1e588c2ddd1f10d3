"""How a run trains: the optimiser, the learning-rate schedule, the weight average, and the
number of steps that fit a compute budget.

Adam or SGD with momentum (the paper's, appendix E: lr 0.07, momentum 0.9, weight decay 1e-4, μ
at 3x the lr without momentum, as in the official code; :func:`make_optimizer`), under one of
torch's learning-rate schedules sized to the run (:func:`lr_schedule`: linear warm-up, then linear
or cosine decay to zero, one-cycle, or the paper's steps), and an exponential moving average of
the weights (:class:`WeightAverage`, torch's ``AveragedModel``) that is what the run evaluates and
saves. With ``budget_minutes`` the run is sized to a compute budget instead of a number of
epochs: a short measurement of the step speed (:meth:`ibinn.train._Run.measure_step_seconds`)
fixes the number of steps that fit (:func:`budget_steps`), and the run re-plans that number once
from its own first steps (:class:`StepTimer`, :func:`resized_schedule`), so the schedule reaches
zero when the budget ends. The steps are saved with the checkpoints: a resumed run continues the
same schedule and average. :func:`estimate_minutes` tells beforehand how long a run takes.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import torch

from . import data as D
from . import limits as L
from .classifier import ImageClassifier
from .device import matmul_peak_gflops, resolve_device
from .model import IBINN
from .model_config import ModelConfig
from .train_config import SCHEDULES, TrainConfig

#: Share of the device's fp32 matmul peak that eager training reaches (50-75 % on a laptop CPU,
#: see the README's throughput table), for :func:`estimate_minutes`.
TRAINING_EFFICIENCY = 0.5

#: A budget run times its steps up to this one and re-plans its length from them (:class:`StepTimer`):
#: ten steps measured at the start move by ±20 % with what else the machine runs (two CIFAR-10 runs
#: side by side planned the same network at 5,264 and 7,834 steps), 190 steps far less.
REPLAN_AT_STEP = 200
#: Steps after the start (or a resume) that the timer leaves out: they pay for compilation and
#: allocation.
REPLAN_WARM_STEPS = 10


def make_optimizer(model: ImageClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    """The run's fused Adam or SGD, with parameter groups for the IB-INN's μ and Φ."""
    lr = config.lr
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


def zero_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Give fused SGD its momentum buffers up front: a first step skipped through ``found_inf``
    would otherwise leave them uninitialised (torch 2.14; zeros are what a first step assumes)."""
    if isinstance(optimizer, torch.optim.SGD):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if group["momentum"] and "momentum_buffer" not in optimizer.state[p]:
                    optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)


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
        # its rise must end after its first step: OneCycleLR divides by the rise's length
        rise = min(1.0, max(warmup, 2 / (total_steps + 1)))
        return S.OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups],
                            total_steps=total_steps + 1, pct_start=rise)
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


def resized_schedule(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int, warmup: float,
                     base_lrs: list[float], done: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The :func:`lr_schedule` of a run re-planned to ``total_steps`` after ``done`` steps: the
    rates (and one-cycle's momenta) of a run planned at that length from the start, as of its step
    ``done``. ``base_lrs``: each parameter group's rate before any schedule touched it.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = lr_schedule(opt, "linear", total_steps=100, warmup=0.0)
        >>> for _ in range(10):
        ...     opt.step(); sched.step()
        >>> round(resized_schedule(opt, "linear", 20, 0.0, [1.0], done=10).get_last_lr()[0], 3)
        0.5
    """
    for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"] = lr
        group.pop("initial_lr", None)
    scheduler = lr_schedule(optimizer, schedule, total_steps, warmup)
    with warnings.catch_warnings():  # no optimiser step between these scheduler steps
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for _ in range(done):
            scheduler.step()
    return scheduler


@dataclass
class StepTimer:
    """The compute a budget run's steps ``first`` to ``last`` (excluded) take, from which the run
    re-plans its length at step ``last`` (:meth:`ibinn.train._Run.replan`): a measurement twenty
    times longer than the first one, taken while the run itself trains.

    Example:
        >>> timer = StepTimer.of_run(total_steps=4000)
        >>> (timer.first, timer.last), timer.times(5), timer.times(10)
        ((10, 200), False, True)
        >>> timer.seconds = 95.0
        >>> timer.step_seconds
        0.5
    """

    first: int
    last: int
    seconds: float = 0.0

    @classmethod
    def of_run(cls, total_steps: int, resumed_at: int = 0) -> StepTimer | None:
        """The timer of a run of ``total_steps`` started (or resumed) at step ``resumed_at``: it
        re-plans at :data:`REPLAN_AT_STEP` or a quarter of the run if sooner; None when fewer
        than two steps would be timed."""
        last = min(REPLAN_AT_STEP, total_steps // 4)
        first = resumed_at + min(REPLAN_WARM_STEPS, last // 2)
        return cls(first, last) if last - first >= 2 else None

    def times(self, step: int) -> bool:
        """Whether the step that starts at ``step`` is timed."""
        return self.first <= step < self.last

    @property
    def step_seconds(self) -> float:
        return self.seconds / (self.last - self.first)


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
        self.half_life = half_life
        self.resize(total_steps)
        self.average = torch.optim.swa_utils.AveragedModel(self._trainable(model),
                                                           multi_avg_fn=self._update)
        self._copy = copy.deepcopy(model)
        self._finite: torch.Tensor | None = None

    def resize(self, total_steps: int) -> None:
        """Set the decay for a run of ``total_steps`` (a re-planned run's: the average so far stays)."""
        self.decay = 0.5 ** (1 / max(1.0, self.half_life * total_steps))

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
