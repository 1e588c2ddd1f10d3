"""Training: one function, :func:`train`, behind the CLI, the tests and the dashboard.

The loop reads top to bottom: data on the training device → model → optimiser and schedule →
for each step, a batch with the paper's noise and label smoothing, the model's loss (the IB loss;
softmax cross-entropy, or the VIB loss, for the baselines of :mod:`ibinn.baselines`), gradient
clipping, a NaN guard, an optimiser step → running figures every :data:`REPORT_EVERY` steps →
checkpoints every ``checkpoint_every`` steps and at the end → test metrics. With
``snapshots`` > 0, an IB-INN run also keeps that many frames of its latent space forming
(:data:`~ibinn.run_snapshots.SNAPSHOTS_FILE`, see :meth:`_Run.snapshot`). ``TrainConfig.model``
picks the model; everything else is the same for all. A step never waits for the device (see
:class:`_Run`); ``compile`` runs the model and loss through ``torch.compile``; under ``torchrun``
the processes share each global batch through ``DistributedDataParallel``.

Every batch is a pure function of ``(seed, step)`` (:mod:`ibinn.run_data`), and so is the global
RNG that stochastic layers (the VIB's sampling) draw from: a run killed at any point and resumed
from its last checkpoint (:mod:`ibinn.run_state`) takes exactly the steps the uninterrupted run
would have taken, on the same device and number of processes.

The run's other pieces live in modules of their own, whose public names this module also gives
(``from ibinn.train import TrainConfig`` keeps working): the config and the files of a run folder
in :mod:`ibinn.train_config`, the recipe (optimiser, schedule, weight average, budget) in
:mod:`ibinn.recipe`, the model and loss a step runs in :mod:`ibinn.objective`, the running
figures and progress in :mod:`ibinn.run_progress`, the latent snapshots in :mod:`ibinn.run_snapshots`.

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
import json
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
from .checkpoint import atomic_write, run_folder_lock
from .classifier import ImageClassifier
from .device import Distributed, compute_clock, fast_bf16
from .model import IBINN
from .objective import COMPILE_PAYS_AFTER_MINUTES, objectives
from .recipe import (
    TRAINING_EFFICIENCY,
    StepTimer,
    WeightAverage,
    budget_steps,
    estimate_minutes,
    lr_schedule,
    make_optimizer,
    resized_schedule,
    zero_momentum,
)
from .run_data import load_splits, memory_format, on_device, prepare_batch, seeded_generator
from .run_progress import REPORT_EVERY, Progress, fold_figures, read_figures, step_figures
from .run_snapshots import (
    FRAME_KEYS,
    SNAPSHOT_IMAGES,
    SNAPSHOTS_FILE,
    Snapshots,
    load_snapshots,
    snapshot_interval,
)
from .run_state import load_parts, resume_point, save_run_state
from .train_config import (
    AUGMENTED,
    CONFIG_FILE,
    LEGACY_RECIPE,
    MAX_SNAPSHOTS,
    METRICS_FILE,
    RECIPE,
    RUN_ONLY,
    SCHEDULES,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    default_augment,
)

__all__ = [
    "AUGMENTED", "COMPILE_PAYS_AFTER_MINUTES", "CONFIG_FILE", "FRAME_KEYS", "LEGACY_RECIPE",
    "MAX_SNAPSHOTS", "METRICS_FILE", "RECIPE", "REPORT_EVERY", "RUN_ONLY", "SCHEDULES",
    "SNAPSHOTS_FILE", "SNAPSHOT_IMAGES", "STATE_FILE", "TRAINING_EFFICIENCY", "WEIGHTS_FILE",
    "TrainConfig", "TrainResult", "TrainingDiverged", "WeightAverage", "budget_steps",
    "default_augment", "estimate_minutes", "evaluate_split", "load_snapshots", "lr_schedule",
    "prepare_batch", "snapshot_interval", "train",
]

class TrainingDiverged(RuntimeError):
    """The loss or the gradients were NaN/inf for too many steps in a row."""


@dataclass
class TrainResult:
    model: ImageClassifier
    out: Path
    history: list[dict]
    metrics: dict  #: ``metrics.json``; of a stopped run, ``steps``, ``total_steps``, ``train_seconds``
    finished: bool = True


@torch.no_grad()
def evaluate_split(model: ImageClassifier, data: D.ImageData, batch_size: int = 500) -> dict:
    """Error, mean bits/dim (absent for a model without likelihood) and size of a labelled set
    (clean images, no noise)."""
    result = model.infer(data.images, batch_size)
    figures = {"error": float((result.log_posterior.argmax(1) != data.labels).float().mean())}
    if result.bits_per_dim is not None:
        figures["bits_per_dim"] = float(result.bits_per_dim.mean())
    return figures | {"n": len(data)}


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
    objective: torch.nn.Module  #: :class:`~ibinn.objective.Objective`, compiled and/or DDP-wrapped
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
    layout: torch.memory_format = torch.contiguous_format  #: of the model and its batches
    average: WeightAverage | None = None  #: the weights the run evaluates and saves (``ema`` > 0)
    #: a budget run's measurement (:meth:`plan`): seconds a step, seconds spent measuring
    planned: dict[str, float] = field(default_factory=dict)
    #: times a budget run's first steps until it re-plans (:meth:`replan`); None after, or unbudgeted
    timer: StepTimer | None = None
    base_lrs: list[float] = field(default_factory=list)  #: the groups' rates before the schedule
    #: the latent snapshots :meth:`snapshot` keeps (rank 0 of an IB-INN run with snapshots)
    snapshots: Snapshots | None = None

    @classmethod
    def start(cls, config: TrainConfig, device: torch.device, dist: Distributed, resume: bool) -> _Run:
        """Resume from ``out/train_state.pt`` or start afresh: data, model, optimiser, schedule."""
        config, state = resume_point(config, resume, clean=dist.is_main)
        if config.batch_size % dist.world:
            raise ValueError(f"batch size {config.batch_size} (the global batch) must divide evenly "
                             f"among {dist.world} processes")
        train_data, val_data, test_data = load_splits(config)
        steps_per_epoch = len(train_data) // config.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train_data)} training images < batch size {config.batch_size}")
        layout = memory_format(device, bf16=config.amp and fast_bf16(device))
        model = config.build_model(train_data).to(device, memory_format=layout)
        if dist.world > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        optimizer = make_optimizer(model, config)
        zero_momentum(optimizer)
        objective, eager_objective = objectives(model, config, device, dist)
        augment = (config.augment if config.augment is not None
                   else default_augment(config.dataset, train_data.image_shape[0]))
        run = cls(config, dist, Path(config.out), model, objective, optimizer, None,
                  on_device(train_data, device), val_data, test_data, augment, steps_per_epoch, 0,
                  _eager_objective=eager_objective, layout=layout)
        run.plan(state)
        if state is not None:
            run.restore(state)
        if config.snapshots and isinstance(model, IBINN) and dist.is_main:
            run.snapshots = Snapshots.start(run.out, test_data, run.total_steps, steps_per_epoch,
                                            config.snapshots, run.step if state is not None else None)
        if dist.is_main:
            config.save(run.out)
        return run

    @property
    def device(self) -> torch.device:
        return self.model.device

    def plan(self, state: dict | None) -> None:
        """Fix the run's length, then build its schedule and weight average for that length: the
        saved length of a resumed run, else the steps that fit ``budget_minutes`` (measured, see
        :meth:`measure_step_seconds`, and re-planned by :meth:`replan`), else ``epochs``."""
        cfg = self.config
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        if state is not None and "total_steps" in state:
            self.total_steps, self.planned = int(state["total_steps"]), state.get("planned", {})
            if state.get("replan_pending", False):
                self.timer = StepTimer.of_run(self.total_steps, state["step"])
        elif cfg.budget_minutes is not None:
            step_seconds, spent = self.measure_step_seconds()
            self.total_steps = self.steps_in_budget(step_seconds, spent)
            self.planned = {"step_seconds": step_seconds, "measure_seconds": spent}
            self.timer = StepTimer.of_run(self.total_steps)
        else:
            self.total_steps = max(1, round(cfg.epochs * self.steps_per_epoch))
        self.scheduler = lr_schedule(self.optimizer, cfg.schedule, self.total_steps, cfg.warmup)
        if cfg.ema > 0:
            self.average = WeightAverage(self.model, cfg.ema, self.total_steps)

    def steps_in_budget(self, step_seconds: float, spent: float) -> int:
        """The steps of ``step_seconds`` that fit the budget less ``spent`` (:func:`budget_steps`;
        every process takes rank 0's figure)."""
        planned = budget_steps(60 * self.config.budget_minutes - spent, step_seconds,
                               self.config.batch_size, self.steps_per_epoch, len(self.val_data),
                               len(self.test_data))
        return self.dist.broadcast_int(planned, self.device)

    def timed_step(self) -> bool:
        """:meth:`train_step`, on the compute clock while :attr:`timer` times this step; at the
        timer's last step, :meth:`replan`. Returns whether the run re-planned."""
        if self.timer is None or not self.timer.times(self.step):
            self.train_step()
            return False
        clock = compute_clock(self.device)
        self.dist.synchronize(self.device)
        started = clock()
        self.train_step()
        self.dist.synchronize(self.device)
        self.timer.seconds += clock() - started
        if self.step != self.timer.last:
            return False
        self.replan()
        return True

    def replan(self) -> None:
        """Re-plan a budget run's length from its own steps' speed (:attr:`timer`, a measurement
        of ~190 steps instead of 8) and resize its schedule, weight average and snapshots to it:
        the run then ends when its budget does, whatever the machine did during the first one."""
        step_seconds, self.timer = self.timer.step_seconds, None
        spent = self.planned.get("measure_seconds", 0.0)
        self.total_steps = max(self.step + 1, self.steps_in_budget(step_seconds, spent))
        self.planned |= {"replanned_step_seconds": step_seconds}
        cfg = self.config
        self.scheduler = resized_schedule(self.optimizer, cfg.schedule, self.total_steps, cfg.warmup,
                                          self.base_lrs, self.step)
        if self.average is not None:
            self.average.resize(self.total_steps)
        if self.snapshots is not None:
            self.snapshots.resize(self.total_steps, self.steps_per_epoch, cfg.snapshots)

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
        zero_momentum(self.optimizer)
        self._sums = None
        return float(np.median(times[warm:])), clock() - began

    def eval_model(self) -> ImageClassifier:
        """The model the run evaluates and saves: the weight average (a copy, in eval mode) when
        there is one, else the live model (its mode unchanged)."""
        return self.model if self.average is None else self.average.model(live=self.model)

    def checkpoint(self) -> None:
        """Save the training state (rank 0), which :meth:`restore` continues from."""
        if self.dist.is_main:
            save_run_state(self.out / STATE_FILE, self.config,
                           {"step": self.step, "history": self.history, "elapsed": self.elapsed,
                            "total_steps": self.total_steps, "planned": self.planned,
                            "replan_pending": self.timer is not None},
                           model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                           average=self.average)

    def restore(self, state: dict) -> None:
        """Continue the saved run ``state``: its weights, schedule, average and optimiser (after
        the schedule, which sets the rates when built), step, history and time."""
        load_parts(self.out / STATE_FILE, state, model=self.model, scheduler=self.scheduler,
                    average=self.average, optimizer=self.optimizer)
        zero_momentum(self.optimizer)
        self.step, self.history, self.elapsed = state["step"], state["history"], state["elapsed"]
        self.first_step = self.step

    @property
    def snapshot_data(self) -> D.ImageData | None:
        """The test images whose latents :meth:`snapshot` keeps (None: the run keeps none)."""
        return None if self.snapshots is None else self.snapshots.data

    def snapshot_due(self) -> bool:
        """Whether this step keeps a frame of the latent space (:meth:`Snapshots.due`)."""
        return self.snapshots is not None and self.snapshots.due(self.step)

    def snapshot(self) -> None:
        """Keep a frame of the latent space of the model the run evaluates (:meth:`Snapshots.take`)."""
        self.snapshots.take(self.eval_model(), self.step, self.step / self.steps_per_epoch)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the step's global batch, a pure function of ``(seed, step)``
        (see the module docstring) whatever the number of processes."""
        cfg = self.config
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            order = torch.randperm(len(self.train_data), generator=seeded_generator(cfg.seed, epoch))
            self._order = (epoch, order.to(self.device))
        idx = self._order[1][within * cfg.batch_size:(within + 1) * cfg.batch_size]
        x, y = prepare_batch(self.train_data.images[idx], self.train_data.labels[idx], self.model, cfg,
                             seeded_generator(cfg.seed, 1 << 20, self.step, device=self.device), self.augment)
        if self.dist.world > 1:
            x, y = x.chunk(self.dist.world)[self.dist.rank], y.chunk(self.dist.world)[self.dist.rank]
        return x.contiguous(memory_format=self.layout), y

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
        torch.manual_seed(seeded_generator(self.config.seed, 2 << 20, self.step).initial_seed())
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
        """Fold the step's figures into the running ones on the device (:func:`fold_figures`)."""
        self._sums = fold_figures(self._sums, step_figures(self.model, loss, outputs, y), finite)

    def report(self) -> dict[str, float]:
        """Fetch the running figures from the device (one synchronisation); raise
        :class:`TrainingDiverged` after ``max_bad_steps`` non-finite steps in a row."""
        if self._sums is None:
            return self.running
        running, bad_in_row, bad_total = read_figures(self._sums, self.model)
        self.running = running if running is not None else self.running
        if bad_total > self._skipped_reported and self.dist.is_main:
            tqdm.write(f"step {self.step}: {bad_total - self._skipped_reported} step(s) with a "
                       f"non-finite loss or gradient skipped since the last report")
        self._skipped_reported = bad_total
        if bad_in_row >= self.config.max_bad_steps:
            self.checkpoint()  # the weights are the last good ones: bad steps changed nothing
            raise TrainingDiverged(
                f"loss or gradients were NaN/inf for {bad_in_row} steps in a row at step "
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

def _train_locked(config: TrainConfig, device: torch.device, dist: Distributed,
                  callback: Callable[[dict], None] | None, resume: bool, progress: bool,
                  should_stop: Callable[[], bool] | None) -> TrainResult:
    """:func:`train` in its locked run folder: start or resume the run, then step to its end (or
    until ``should_stop``), reporting, validating, keeping snapshots and checkpoints on the way."""
    run = _Run.start(config, device, dist, resume)
    shown = Progress(run.config, run.total_steps, run.step, progress and dist.is_main,
                     callback if dist.is_main else None)
    shown.plan(run.planned, run.steps_per_epoch)
    run.model.train()
    started = time.perf_counter() - run.elapsed
    if run.step == 0 and run.snapshot_due():
        run.snapshot()  # the untrained model: the first frame
    while run.step < run.total_steps:
        if run.timed_step():
            shown.replan(run.planned, run.total_steps, run.steps_per_epoch)
        if run.snapshot_due():
            run.snapshot()
        shown.bar.update(1)
        epoch_end = run.step % run.steps_per_epoch == 0 or run.step == run.total_steps
        if run.step % REPORT_EVERY == 0 or epoch_end:
            shown.figures(run.report(), {"step": run.step, "total_steps": run.total_steps,
                                         "lr": run.scheduler.get_last_lr()[0],
                                         "epoch": run.step / run.steps_per_epoch,
                                         "elapsed_s": time.perf_counter() - started})
        if epoch_end:
            shown.epoch(run.end_epoch(started))
        run.elapsed = time.perf_counter() - started
        if run.step % run.config.checkpoint_every == 0 or epoch_end or run.step == run.total_steps:
            run.checkpoint()
        poll = should_stop is not None and run.step < run.total_steps and (dist.world == 1
                                                                  or run.step % REPORT_EVERY == 0)
        if poll and dist.any_true(should_stop(), device):
            run.report()
            run.checkpoint()
            shown.bar.close()
            so_far = {"steps": run.step, "total_steps": run.total_steps, "train_seconds": run.elapsed}
            return TrainResult(run.eval_model().eval(), run.out, run.history, so_far, finished=False)
    shown.bar.close()
    return run.finish()
