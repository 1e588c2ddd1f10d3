"""Training: one function, :func:`train`, behind the CLI, the tests and the dashboard.

The loop reads top to bottom: data in memory → model → optimiser and schedule → for each step, a
batch with the paper's noise and label smoothing, the model's loss (the IB loss; softmax
cross-entropy, or the VIB loss, for the baselines of :mod:`ibinn.baselines`), a NaN guard,
gradient clipping, an optimiser step → checkpoints every ``checkpoint_every`` steps and at the
end → test metrics. ``TrainConfig.model`` picks the model; everything else is the same for all.

Every batch is a pure function of ``(seed, step)``: the epoch's order comes from a generator
seeded by ``(seed, epoch)``, the batch's noise from one seeded by ``(seed, step)``, and the global
RNG, which stochastic layers (the VIB's sampling) draw from, is seeded by ``(seed, step)``. A run killed
at any point and resumed from its last checkpoint therefore takes exactly the steps the
uninterrupted run would have taken.

Optimisers: SGD as in the paper (appendix E: lr 0.07, momentum 0.9, weight decay 1e-4, lr decayed
10x at 1/3, 5/9 and 7/9 of training, μ at 3x the lr without momentum, as in the official code),
or Adam with warm-up and cosine decay for short CPU runs.

Example:
    >>> from ibinn.train import TrainConfig, train
    >>> result = train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=1,
    ...                            out="runs/demo"))  # doctest: +SKIP
    >>> resnet = train(TrainConfig(dataset="demo:fashion-mnist", model="resnet", preset="tiny",
    ...                            epochs=1, out="runs/demo-resnet"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data as D
from . import limits as L
from .baselines import MODEL_TYPES, Baseline
from .checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_write,
    load_state,
    remove_stale_temporaries,
    run_folder_lock,
    save_state,
)
from .device import resolve_device
from .losses import MODES
from .metrics import bits_per_dim
from .model import IBINN, ModelConfig

Classifier = IBINN | Baseline

STATE_FILE = "train_state.pt"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"


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
    amp: bool = False
    checkpoint_every: int = 200
    max_bad_steps: int = 20
    out: str = "runs/model"
    model_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODEL_TYPES:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODEL_TYPES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.model != "ibinn" and (self.mode != "ib" or self.learn_class_weights):
            raise ValueError(f"mode and learn_class_weights apply to the IB-INN only, not to "
                             f"model {self.model!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {self.optimizer!r}")
        self.gamma = L.real("gamma", self.gamma, low=0, allow_inf=True)
        self.epochs = L.real("epochs", self.epochs, low=0, high=1e6, low_open=True)
        self.batch_size = L.integer("batch_size", self.batch_size, 1, L.current().max_batch_size)
        if self.lr is not None:
            self.lr = L.real("lr", self.lr, low=0, low_open=True)
        for name, low, high in (("lr_mu_factor", 0, 1e6), ("weight_decay", 0, 1e3),
                                ("sigma", 0, 1.0), ("label_smoothing", 0, 0.999)):
            setattr(self, name, L.real(name, getattr(self, name), low=low, high=high))
        self.grad_clip = L.real("grad_clip", self.grad_clip, low=0, low_open=True)
        for name, low, high in (("val_size", 0, 10**9), ("seed", 0, 2**32 - 1),
                                ("checkpoint_every", 1, 10**9), ("max_bad_steps", 1, 10**9)):
            setattr(self, name, L.integer(name, getattr(self, name), low, high))
        if self.augment is not None:
            D.check_augmentation(self.augment)
        unknown = set(self.model_overrides) - set(ModelConfig.ARCHITECTURE)
        if unknown:
            raise ValueError(f"model_overrides may set {', '.join(ModelConfig.ARCHITECTURE)}; "
                             f"not {', '.join(sorted(unknown))}")

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
        return cls(**data)


@dataclass
class TrainResult:
    model: Classifier
    out: Path
    history: list[dict]
    metrics: dict
    finished: bool = True


def _seeded(*keys: int) -> torch.Generator:
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def _lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    if config.optimizer == "sgd":
        milestones = [round(total_steps * f) for f in (1 / 3, 5 / 9, 7 / 9)]
        return lambda step: 0.1 ** sum(step >= m for m in milestones)
    warmup = max(1, min(500, total_steps // 20))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
    return factor


def _optimizer(model: Classifier, config: TrainConfig) -> torch.optim.Optimizer:
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
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    return torch.optim.Adam(groups, lr=lr)


def _make_model(config: TrainConfig, train_data: D.ImageData) -> Classifier:
    mean, std = D.channel_stats(train_data.images)
    dim = math.prod(train_data.image_shape)
    model_config = ModelConfig.from_preset(
        config.preset, train_data.image_shape, len(train_data.classes),
        classes=train_data.classes, mean=mean, std=std, dataset=config.dataset,
        mode=config.mode, gamma=config.gamma, seed=config.seed,
        learn_class_weights=config.learn_class_weights,
        fixed_mu_radius=math.sqrt(dim) if config.mode == "class-nll-reg" else None,
        **config.model_overrides)
    return MODEL_TYPES[config.model](model_config)


def prepare_batch(images: torch.Tensor, labels: torch.Tensor, model: Classifier, config: TrainConfig,
                  generator: torch.Generator, augment: str = "none"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batch → normalised, dequantised, noisy inputs and smoothed labels on the model's device."""
    x = D.to_unit(images)
    x = D.augment(x, augment, generator)
    x = D.dequantize(x, config.sigma, generator)
    x = model.normalization.normalize(x).to(model.device, non_blocking=True)
    y = D.smooth_labels(labels, model.config.n_classes, config.label_smoothing).to(model.device)
    return x, y


@torch.no_grad()
def evaluate_split(model: Classifier, data: D.ImageData, batch_size: int = 500) -> dict:
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

    Args:
        callback: called with a dict of live figures (``step``, ``total_steps``, ``loss``, ``acc``,
            ``bits_per_dim`` (models with a likelihood only), ``lr``, and ``val_*`` at epoch ends)
            every few steps.
        resume: continue from ``out/train_state.pt``. Without it, an ``out`` folder that already
            holds a run is an error, so that no run is overwritten by accident.
        progress: show a tqdm progress bar.
        should_stop: polled every step; returning True saves a checkpoint and stops (resumable).
    """
    with run_folder_lock(config.out):  # a second run into the same folder refuses
        return _train_locked(config, callback, resume, progress, should_stop)


@dataclass
class _Run:
    """Everything one training run holds, built by :meth:`start` (fresh or resumed)."""

    config: TrainConfig
    out: Path
    model: Classifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    train_data: D.ImageData
    val_data: D.ImageData
    test_data: D.ImageData
    augment: str
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    first_step: int = 0  #: > 0 when this process continued a run
    history: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    bad_steps: int = 0
    running: dict[str, float] = field(default_factory=dict)
    _order: tuple[int, torch.Tensor] | None = None  #: (epoch, its permutation of the training set)

    @classmethod
    def start(cls, config: TrainConfig, resume: bool) -> _Run:
        """Resume from ``out/train_state.pt`` or start afresh: data, model, optimiser, schedule."""
        out = Path(config.out)
        state_path = out / STATE_FILE
        if state_path.exists() and not resume:
            raise FileExistsError(f"{out} already holds a training run; pass resume=True "
                                  f"(`--resume`) to continue it, or choose another output folder")
        state = None
        if resume and state_path.exists():
            remove_stale_temporaries(out)  # from a run killed while writing a checkpoint
            state = load_state(state_path)
            # the saved run's settings win; only where it runs and writes may change
            saved = TrainConfig.from_json(json.loads(state["train_config"]))
            config = dataclasses.replace(saved, device=config.device, out=config.out)
        device = resolve_device(config.device)

        full = D.load_dataset(config.dataset, "train", config.root, config.download)
        train_data, val_data = D.split_train_val(full, min(config.val_size, len(full) // 10),
                                                 config.seed)
        test_data = D.load_dataset(config.dataset, "test", config.root, config.download)
        augment = (config.augment if config.augment is not None
                   else default_augment(config.dataset, train_data.image_shape[0]))
        steps_per_epoch = len(train_data) // config.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train_data)} training images < batch size {config.batch_size}")
        total_steps = max(1, round(config.epochs * steps_per_epoch))

        model = _make_model(config, train_data).to(device)
        optimizer = _optimizer(model, config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, total_steps))
        scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
        run = cls(config, out, model, optimizer, scheduler, scaler, train_data, val_data, test_data,
                  augment, steps_per_epoch, total_steps)
        if state is not None:
            try:
                for part in ("model", "optimizer", "scheduler", "scaler"):
                    getattr(run, part).load_state_dict(state[part])
            except (KeyError, RuntimeError, ValueError) as err:
                raise CheckpointError(f"{state_path} does not fit this run: {err}") from err
            run.step, run.history, run.elapsed = state["step"], state["history"], state["elapsed"]
            run.first_step = run.step
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(
            json.dumps(config.to_json(), indent=2)))
        return run

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def has_likelihood(self) -> bool:
        return getattr(self.model, "has_likelihood", True)

    def checkpoint(self) -> None:
        save_state(self.out / STATE_FILE, {
            "format": FORMAT, "train_config": json.dumps(self.config.to_json()), "step": self.step,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "history": self.history, "elapsed": self.elapsed})

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's batch, a pure function of ``(seed, step)`` (see the module docstring)."""
        cfg = self.config
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, torch.randperm(len(self.train_data), generator=_seeded(cfg.seed, epoch)))
        idx = self._order[1][within * cfg.batch_size:(within + 1) * cfg.batch_size]
        return prepare_batch(self.train_data.images[idx], self.train_data.labels[idx], self.model,
                             cfg, _seeded(cfg.seed, 1 << 20, self.step), self.augment)

    def train_step(self) -> dict[str, float] | None:
        """One optimiser step; its figures, or None when the NaN guard skipped it."""
        x, y = self.batch()
        torch.manual_seed(_seeded(self.config.seed, 2 << 20, self.step).initial_seed())
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.scaler.is_enabled()):
            outputs = self.model(x)  # the IB-INN: (z, log_det); a baseline: (logits,) or (logits, info)
        outputs = tuple(o.float() for o in outputs)
        loss = self.model.loss(*outputs, y)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            finite = bool(torch.isfinite(grad_norm))
        self.step += 1
        if not finite:
            self._skip()
            return None
        self.bad_steps = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with torch.no_grad():
            figures = {"loss": float(loss.detach()),
                       "acc": float((self.model.log_posterior_from(outputs[0]).argmax(1)
                                     == y.argmax(1)).float().mean())}
            if self.has_likelihood:
                figures["bits_per_dim"] = float(bits_per_dim(
                    self.model.log_likelihood_from(*outputs), self.model.config.dim).mean())
        for key, value in figures.items():
            old = self.running.get(key)
            self.running[key] = value if old is None else 0.95 * old + 0.05 * value
        return figures

    def _skip(self) -> None:
        """NaN guard: the step is skipped (the schedule still advances, so that step counts and
        learning rates stay aligned with an unbroken run); too many in a row stop the run."""
        self.bad_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        tqdm.write(f"step {self.step - 1}: non-finite loss or gradient, step skipped "
                   f"({self.bad_steps} in a row)")
        if self.bad_steps >= self.config.max_bad_steps:
            self.step -= 1  # the state saved is the last good one
            self.checkpoint()
            raise TrainingDiverged(
                f"loss or gradients were NaN/inf for {self.bad_steps} steps in a row at step "
                f"{self.step}; try a smaller learning rate (--lr) or a larger gamma. The last good "
                f"state is in {self.out / STATE_FILE}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()

    def end_epoch(self, started: float) -> dict:
        """Validation figures at an epoch's end, appended to the history."""
        val = evaluate_split(self.model, self.val_data)
        self.model.train()
        record = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
                  "elapsed_s": time.perf_counter() - started, **self.running,
                  **{f"val_{key}": value for key, value in val.items() if key != "n"}}
        self.history.append(record)
        tqdm.write(f"epoch {record['epoch']:.2f}: val error {val['error']:.4f}"
                   + (f", val bits/dim {val['bits_per_dim']:.4f}" if self.has_likelihood else ""))
        return record

    def finish(self) -> TrainResult:
        """Save the model, evaluate it on the test set, write ``metrics.json``."""
        self.model.eval()
        self.model.save(self.out / WEIGHTS_FILE)
        test = evaluate_split(self.model, self.test_data)
        metrics = {**{f"test_{key}": value for key, value in test.items() if key != "n"},
                   "n_test": test["n"], "steps": self.step, "resumed_from_step": self.first_step,
                   "epochs": self.step / self.steps_per_epoch, "train_seconds": self.elapsed,
                   "device": str(self.device), "parameters": self.model.num_parameters()}
        atomic_write(self.out / METRICS_FILE,
                     lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
        return TrainResult(self.model, self.out, self.history, metrics)


def _train_locked(config: TrainConfig, callback: Callable[[dict], None] | None, resume: bool,
                  progress: bool, should_stop: Callable[[], bool] | None) -> TrainResult:
    run = _Run.start(config, resume)
    cfg, total = run.config, run.total_steps
    what = {"ibinn": f"{cfg.mode} γ={cfg.gamma:g}", "vib": f"vib γ={cfg.gamma:g}"}.get(cfg.model, cfg.model)
    bar = tqdm(total=total, initial=run.step, disable=not progress, unit="step",
               desc=f"{cfg.dataset} {what}", dynamic_ncols=True)
    run.model.train()
    started = time.perf_counter() - run.elapsed
    while run.step < total:
        if run.train_step() is None:  # skipped by the NaN guard
            continue
        bar.update(1)
        if run.step % 20 == 0 or run.step == total:
            bar.set_postfix({k: f"{v:.3f}" for k, v in run.running.items()})
            if callback:
                callback({"step": run.step, "total_steps": total, "lr": run.scheduler.get_last_lr()[0],
                          "epoch": run.step / run.steps_per_epoch, **run.running})
        epoch_end = run.step % run.steps_per_epoch == 0 or run.step == total
        if epoch_end:
            record = run.end_epoch(started)
            if callback:
                callback({"total_steps": total, **record})
        run.elapsed = time.perf_counter() - started
        if run.step % cfg.checkpoint_every == 0 or epoch_end or run.step == total:
            run.checkpoint()
        if should_stop is not None and run.step < total and should_stop():
            run.checkpoint()
            bar.close()
            return TrainResult(run.model.eval(), run.out, run.history, {}, finished=False)
    bar.close()
    return run.finish()
