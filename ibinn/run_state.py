"""A run's saved training state, :data:`~ibinn.train_config.STATE_FILE`: what a checkpoint holds
and how a resumed run gets it back.

A checkpoint holds the run's config, its step, history and time, and the state of each of its
parts (model, optimiser, schedule, weight average), so that a run killed at any point continues
exactly where its last checkpoint was taken. A resumed run's saved settings win over the command's,
but those of :data:`~ibinn.train_config.RUN_ONLY` (where and how it runs).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .checkpoint import FORMAT, CheckpointError, load_state, remove_stale_temporaries, save_state
from .train_config import RUN_ONLY, STATE_FILE, TrainConfig


def resume_point(config: TrainConfig, resume: bool, clean: bool) -> tuple[TrainConfig, dict | None]:
    """The run's config and, when it resumes, its saved state (``clean``: first remove the
    temporaries of a run killed while writing a checkpoint). Without ``resume``, a folder that
    already holds a run is refused, so that no run is overwritten by accident."""
    out = Path(config.out)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a training run; pass resume=True "
                              f"(`--resume`) to continue it, or choose another output folder")
    if not (resume and state_path.exists()):
        return config, None
    if clean:
        remove_stale_temporaries(out)
    state = load_state(state_path)
    saved = TrainConfig.from_json(json.loads(state["train_config"]))
    return dataclasses.replace(saved, **{k: getattr(config, k) for k in RUN_ONLY}), state


def save_run_state(path: Path, config: TrainConfig, progress: dict[str, Any], **parts: Any) -> None:
    """Save a run: its config, ``progress`` (step, history, ...) and the state of each of its
    ``parts`` (``model=``, ``optimizer=``, ...; None: the run has no such part)."""
    save_state(path, {"format": FORMAT, "train_config": json.dumps(config.to_json()), **progress}
               | {name: part.state_dict() for name, part in parts.items() if part is not None})


def load_parts(path: Path, state: dict, **parts: Any) -> None:
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
