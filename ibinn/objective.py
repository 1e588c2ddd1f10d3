"""What a training step runs: the model and its loss as one module, :class:`Objective`.

One module, so that ``torch.compile`` compiles the forward pass and the loss together and
``DistributedDataParallel`` wraps both; the forward pass runs under bf16 autocast where the device
computes bf16 natively (:func:`ibinn.device.fast_bf16`), the loss in fp32. :func:`objectives`
compiles it with ``torch.compile`` where a run is long enough to repay the compilation
(:func:`compile_pays`).
"""

from __future__ import annotations

import torch

from .classifier import ImageClassifier
from .device import Distributed, compile_blocker, compiled, fast_bf16
from .recipe import estimate_minutes
from .train_config import TrainConfig

#: ``compile="auto"`` compiles runs estimated to take at least this long in eager mode. On the
#: 2-core CPU, compilation takes about a minute (less with a warm cache) and buys 1.2-1.3x; see
#: the README's throughput table.
COMPILE_PAYS_AFTER_MINUTES = 10.0


class Objective(torch.nn.Module):
    """The model and its loss as one module: what torch.compile compiles and DDP wraps."""

    def __init__(self, model: ImageClassifier, amp: bool):
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            outputs = self.model(x)  # the IB-INN: (z, log_det); a baseline: (logits,) or (logits, info)
        outputs = tuple(o.float() for o in outputs)
        return self.model.loss(*outputs, y), outputs


def make_objective(model: ImageClassifier, amp: bool, device: torch.device, world: int) -> torch.nn.Module:
    """The :class:`Objective` of ``model``, wrapped in ``DistributedDataParallel`` when ``world``
    processes share each batch."""
    objective = Objective(model, amp)
    if world > 1:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)
    return objective


def objectives(model: ImageClassifier, config: TrainConfig, device: torch.device,
               dist: Distributed) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """What a step runs, :func:`make_objective`'s (compiled where it pays), and, when compiled,
    the eager objective to fall back on if compilation fails."""
    objective = make_objective(model, config.amp and fast_bf16(device), device, dist.world)
    if not compile_pays(config, device):
        return objective, None
    fast = compiled(objective, device,
                    "reduce-overhead" if device.type == "cuda" and dist.world == 1 else None)
    return fast, (objective if fast is not objective else None)


def compile_pays(config: TrainConfig, device: torch.device) -> bool:
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
