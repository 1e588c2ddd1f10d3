"""What a training step runs: the model and its loss as one module, :class:`Objective`.

One module, so that ``torch.compile`` compiles the forward pass and the loss together and
``DistributedDataParallel`` wraps both; the forward pass runs under bf16 autocast where the device
computes bf16 natively (:func:`ibinn.device.fast_bf16`), the loss in fp32.
"""

from __future__ import annotations

import torch

from .classifier import ImageClassifier


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
