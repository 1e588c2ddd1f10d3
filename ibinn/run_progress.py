"""What a training run tells as it goes: its running figures and the progress a person or a
callback sees.

The running figures (loss, accuracy and, for a model with a likelihood, bits/dim) stay on the
training device as a bias-corrected exponential moving average over the finite steps, with counts
of the non-finite steps in a row and in all (:func:`fold_figures`); the loop fetches them every
:data:`REPORT_EVERY` steps (:func:`read_figures`, one synchronisation) and shows them
(:class:`Progress`: a tqdm bar, a line per epoch, the callback's live figures).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .classifier import ImageClassifier
from .metrics import bits_per_dim
from .train_config import TrainConfig

#: Steps between fetches of the running figures from the device (the only host-device
#: synchronisation of the loop besides epoch ends and checkpoints).
REPORT_EVERY = 20


def step_figures(model: ImageClassifier, loss: torch.Tensor, outputs: tuple[torch.Tensor, ...],
                 y: torch.Tensor) -> list[torch.Tensor]:
    """One step's figures, on the device: loss, accuracy (against the smoothed labels' classes)
    and, for a model with a likelihood, bits/dim."""
    figures = [loss, (model.log_posterior_from(outputs[0]).argmax(1) == y.argmax(1)).float().mean()]
    if model.has_likelihood:
        figures.append(bits_per_dim(model.log_likelihood_from(*outputs), model.config.dim).mean())
    return figures


def fold_figures(sums: torch.Tensor | None, figures: list[torch.Tensor],
                 finite: torch.Tensor) -> torch.Tensor:
    """``sums`` (the EMA of each figure, its weight, the non-finite steps in a row and in all; None
    before the first step) with one step's ``figures`` folded in: only a ``finite`` step moves the
    average, a non-finite one is counted. On the device: nothing waits for it."""
    new = torch.stack(figures + [torch.ones((), device=figures[0].device)])
    if sums is None:
        sums = torch.zeros(len(new) + 2, device=new.device)
    ema, bad_in_row, bad_total = sums[:-2], sums[-2], sums[-1]
    return torch.cat([torch.where(finite, 0.95 * ema + 0.05 * new, ema),
                      torch.where(finite, 0.0, bad_in_row + 1)[None], (bad_total + ~finite)[None]])


def read_figures(sums: torch.Tensor, model: ImageClassifier
                 ) -> tuple[dict[str, float] | None, int, int]:
    """Fetch :func:`fold_figures`' ``sums`` from the device: the running figures by name (None
    before a finite step), and the non-finite steps in a row and in all."""
    *ema, weight, bad_in_row, bad_total = sums.tolist()
    names = ["loss", "acc"] + (["bits_per_dim"] if model.has_likelihood else [])
    running = ({name: value / weight for name, value in zip(names, ema, strict=True)}
               if weight > 0 else None)
    return running, int(bad_in_row), int(bad_total)


class Progress:
    """A run's progress as it goes: a tqdm bar (``show``), its running figures, a line per epoch
    and the plan of a budget run, and the live figures passed to ``callback`` (when given)."""

    def __init__(self, config: TrainConfig, total_steps: int, done: int, show: bool,
                 callback: Callable[[dict], None] | None):
        what = {"ibinn": f"{config.mode} γ={config.gamma:g}",
                "vib": f"vib γ={config.gamma:g}"}.get(config.model, config.model)
        self.bar = tqdm(total=total_steps, initial=done, disable=not show, unit="step",
                        desc=f"{config.dataset} {what}", dynamic_ncols=True)
        self.config, self.total_steps, self.show, self.callback = config, total_steps, show, callback

    def plan(self, planned: dict[str, float], steps_per_epoch: int) -> None:
        """The line of a budget run (``planned``: its measurement; empty for other runs)."""
        if planned and self.show:
            self.bar.write(f"budget {self.config.budget_minutes:g} min: {planned['step_seconds']:.3f} s "
                           f"of compute a step (measured in {planned['measure_seconds']:.0f} s): "
                           f"{self.total_steps} steps, {self.total_steps / steps_per_epoch:.2f} epochs")

    def replan(self, planned: dict[str, float], total_steps: int, steps_per_epoch: int) -> None:
        """A budget run re-planned from its own steps (:meth:`ibinn.train._Run.replan`): the bar's
        new length, and a line."""
        self.total_steps = self.bar.total = total_steps
        self.bar.refresh()
        if self.show:
            self.bar.write(f"re-planned from the run's own steps: {planned['replanned_step_seconds']:.3f} s "
                           f"a step: {total_steps} steps, {total_steps / steps_per_epoch:.2f} epochs")

    def figures(self, running: dict[str, float], live: dict) -> None:
        """The running figures on the bar, and with the ``live`` ones (step, rate, ...) to the
        callback."""
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        if self.callback:
            self.callback({**live, **running})

    def epoch(self, record: dict) -> None:
        """An epoch's end: its validation figures as a line and to the callback."""
        if self.show:
            self.bar.write(f"epoch {record['epoch']:.2f}: val error {record['val_error']:.4f}"
                           + (f", val bits/dim {record['val_bits_per_dim']:.4f}"
                              if "val_bits_per_dim" in record else ""))
        if self.callback:
            self.callback({"total_steps": self.total_steps, **record})
