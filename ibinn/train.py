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


def _train_locked(config: TrainConfig, callback: Callable[[dict], None] | None, resume: bool,
                  progress: bool, should_stop: Callable[[], bool] | None) -> TrainResult:
    out = Path(config.out)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a training run; pass resume=True "
                              f"(`--resume`) to continue it, or choose another output folder")
    if resume and state_path.exists():
        remove_stale_temporaries(out)  # from a run killed while writing a checkpoint
        state = load_state(state_path)
        # the saved run's settings win; only where it runs and writes may change
        saved = TrainConfig.from_json(json.loads(state["train_config"]))
        config = dataclasses.replace(saved, device=config.device, out=config.out)
    else:
        state = None
    device = resolve_device(config.device)

    full = D.load_dataset(config.dataset, "train", config.root, config.download)
    train_data, val_data = D.split_train_val(full, min(config.val_size, len(full) // 10), config.seed)
    test_data = D.load_dataset(config.dataset, "test", config.root, config.download)
    augment = (config.augment if config.augment is not None
               else default_augment(config.dataset, train_data.image_shape[0]))

    model = _make_model(config, train_data).to(device)
    optimizer = _optimizer(model, config)
    steps_per_epoch = len(train_data) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_data)} training images < batch size {config.batch_size}")
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, total_steps))
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step, history, bad_steps, elapsed = 0, [], 0, 0.0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{state_path} does not fit this run: {err}") from err
        step, history, elapsed = state["step"], state["history"], state["elapsed"]
    first_step = step  # > 0 when this process continued a run

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / CONFIG_FILE, lambda tmp: Path(tmp).write_text(
        json.dumps(config.to_json(), indent=2)))

    def checkpoint() -> None:
        save_state(state_path, {
            "format": FORMAT, "train_config": json.dumps(config.to_json()), "step": step,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "history": history, "elapsed": elapsed})

    dim = model.config.dim
    likelihood = getattr(model, "has_likelihood", True)
    gamma_text = f"γ={config.gamma:g}"
    what = {"ibinn": f"{config.mode} {gamma_text}", "vib": f"vib {gamma_text}"}.get(config.model,
                                                                                    config.model)
    bar = tqdm(total=total_steps, initial=step, disable=not progress, unit="step",
               desc=f"{config.dataset} {what}", dynamic_ncols=True)
    running: dict[str, float] = {}
    order, order_epoch = None, -1
    model.train()
    started = time.perf_counter() - elapsed
    while step < total_steps:
        epoch, within = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order = torch.randperm(len(train_data), generator=_seeded(config.seed, epoch))
            order_epoch = epoch
        idx = order[within * config.batch_size:(within + 1) * config.batch_size]
        x, y = prepare_batch(train_data.images[idx], train_data.labels[idx], model, config,
                             _seeded(config.seed, 1 << 20, step), augment)

        torch.manual_seed(_seeded(config.seed, 2 << 20, step).initial_seed())
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            outputs = model(x)  # the IB-INN: (z, log_det); a baseline: (logits,) or (logits, info loss)
        outputs = tuple(o.float() for o in outputs)
        loss = model.loss(*outputs, y)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            finite = bool(torch.isfinite(grad_norm))
        if not finite:  # NaN guard: skip the step, stop if it keeps happening
            bad_steps += 1
            optimizer.zero_grad(set_to_none=True)
            tqdm.write(f"step {step}: non-finite loss or gradient, step skipped "
                       f"({bad_steps} in a row)")
            if bad_steps >= config.max_bad_steps:
                checkpoint()
                raise TrainingDiverged(
                    f"loss or gradients were NaN/inf for {bad_steps} steps in a row at step {step}"
                    f"; try a smaller learning rate (--lr) or a larger gamma. The last good "
                    f"state is in {state_path}")
            with warnings.catch_warnings():  # a skipped step still advances the schedule, so
                # that step counts and learning rates stay aligned with an unbroken run
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()
            step += 1
            continue
        bad_steps = 0
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1

        with torch.no_grad():
            figures = {"loss": float(loss.detach()),
                       "acc": float((model.log_posterior_from(outputs[0]).argmax(1)
                                     == y.argmax(1)).float().mean())}
            if likelihood:
                figures["bits_per_dim"] = float(bits_per_dim(model.log_likelihood_from(*outputs),
                                                             dim).mean())
        for key, value in figures.items():
            running[key] = value if key not in running else 0.95 * running[key] + 0.05 * value
        bar.update(1)
        if step % 20 == 0 or step == total_steps:
            bar.set_postfix(loss=f"{running['loss']:.3f}", acc=f"{running['acc']:.3f}",
                            **({"bpd": f"{running['bits_per_dim']:.3f}"} if likelihood else {}))
            if callback:
                callback({"step": step, "total_steps": total_steps, "epoch": step / steps_per_epoch,
                          "lr": scheduler.get_last_lr()[0], **running})

        epoch_end = step % steps_per_epoch == 0 or step == total_steps
        if epoch_end:
            val = evaluate_split(model, val_data)
            model.train()
            record = {"step": step, "epoch": step / steps_per_epoch,
                      "elapsed_s": time.perf_counter() - started, **running,
                      **{f"val_{key}": value for key, value in val.items() if key != "n"}}
            history.append(record)
            tqdm.write(f"epoch {record['epoch']:.2f}: val error {val['error']:.4f}"
                       + (f", val bits/dim {val['bits_per_dim']:.4f}" if likelihood else ""))
            if callback:
                callback({"total_steps": total_steps, **record})
        elapsed = time.perf_counter() - started
        if step % config.checkpoint_every == 0 or epoch_end or step == total_steps:
            checkpoint()
        if should_stop is not None and step < total_steps and should_stop():
            checkpoint()
            bar.close()
            return TrainResult(model.eval(), out, history, {}, finished=False)
    bar.close()

    model.eval()
    model.save(out / WEIGHTS_FILE)
    test = evaluate_split(model, test_data)
    metrics = {**{f"test_{key}": value for key, value in test.items() if key != "n"},
               "n_test": test["n"], "steps": step, "resumed_from_step": first_step,
               "epochs": step / steps_per_epoch,
               "train_seconds": elapsed, "device": str(device),
               "parameters": model.num_parameters()}
    atomic_write(out / METRICS_FILE, lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    return TrainResult(model, out, history, metrics)
