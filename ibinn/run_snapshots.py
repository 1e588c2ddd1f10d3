"""The latent snapshots a training run keeps: frames of its latent space forming, in one file.

With ``TrainConfig.snapshots`` > 0 an IB-INN run projects a fixed, class-balanced subset of test
images (and the class means) onto its means' plane every few steps
(:func:`ibinn.explore.snapshot_frame`) and rewrites :data:`SNAPSHOTS_FILE` in its folder;
:func:`load_snapshots` reads it back (the dashboard animates it). This module holds the file and
its timing, and a run's :class:`Snapshots`, which the training loop asks for a frame at every
step (:meth:`ibinn.train._Run.snapshot`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write
from .classifier import ImageClassifier
from .data import ImageData, first_per_class
from .explore import snapshot_frame

#: Latent snapshots of a run with ``snapshots`` > 0: per frame, a fixed subset of test images and
#: the class means projected to 2D (see :func:`ibinn.explore.snapshot_frame`); plain arrays.
SNAPSHOTS_FILE = "snapshots.npz"
#: Test images whose latents each snapshot keeps (class-balanced, the same in every frame): enough
#: for clusters to read, few enough that a snapshot costs about one training step.
SNAPSHOT_IMAGES = 300
#: What each frame keeps, in :data:`SNAPSHOTS_FILE`.
FRAME_KEYS = ("step", "epoch", "xy", "mu_xy", "accuracy", "explained")


def snapshot_images(test_data: ImageData) -> ImageData:
    """The test images whose latents every frame keeps: :data:`SNAPSHOT_IMAGES`, class-balanced."""
    return first_per_class(test_data, max(1, SNAPSHOT_IMAGES // len(test_data.classes)))


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
    by :func:`save_snapshots`: ``step`` and ``epoch`` ``(F,)``, ``xy`` ``(F, N, 2)``, ``mu_xy``
    ``(F, K, 2)``, ``accuracy`` ``(F,)`` and ``explained`` ``(F, 2)`` per frame, and the images'
    ``labels`` ``(N,)`` and the ``classes`` ``(K,)``."""
    path = Path(out) / SNAPSHOTS_FILE
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def frames_until(out: str | Path, step: int) -> dict[str, list]:
    """The frames of the run in ``out`` up to ``step``, per :data:`FRAME_KEYS` key: what a run
    resumed from its checkpoint at ``step`` keeps (it takes the later ones again)."""
    saved = load_snapshots(out)
    if not saved:
        return {}
    kept = saved["step"] <= step
    return {key: list(saved[key][kept]) for key in FRAME_KEYS}


def add_frame(frames: dict[str, list], values: dict[str, Any]) -> None:
    """Append one frame's ``values`` (one per :data:`FRAME_KEYS` key) to ``frames``."""
    for key in FRAME_KEYS:
        frames.setdefault(key, []).append(np.asarray(values[key]))


def save_snapshots(out: str | Path, frames: dict[str, list], data: ImageData) -> None:
    """Write ``frames`` of the snapshot images ``data`` to ``out``'s :data:`SNAPSHOTS_FILE`
    (atomically: a reader sees the old file or the new one)."""
    arrays = {key: np.stack(frames[key]).astype(np.float32 if key != "step" else np.int64)
              for key in FRAME_KEYS}
    arrays |= {"labels": data.labels.numpy(), "classes": np.array(data.classes)}

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(Path(out) / SNAPSHOTS_FILE, save)


@dataclass
class Snapshots:
    """The latent snapshots of one run: its snapshot images, when a frame is due, the frames so
    far, and the run folder they are written to."""

    out: Path
    data: ImageData  #: the test images whose latents every frame keeps (:func:`snapshot_images`)
    every: int  #: steps between frames (:func:`snapshot_interval`)
    total_steps: int  #: the run's last step, which keeps a frame too
    #: the frames so far, per :data:`FRAME_KEYS` key (lists of per-frame arrays)
    frames: dict[str, list] = field(default_factory=dict)

    @classmethod
    def start(cls, out: str | Path, test_data: ImageData, total_steps: int, steps_per_epoch: int,
              n_frames: int, resumed_at: int | None = None) -> Snapshots:
        """About ``n_frames`` snapshots of a run of ``total_steps``; a run resumed at step
        ``resumed_at`` keeps the frames up to it (it takes the later ones again)."""
        frames = frames_until(out, resumed_at) if resumed_at is not None else {}
        return cls(Path(out), snapshot_images(test_data),
                   snapshot_interval(total_steps, steps_per_epoch, n_frames), total_steps, frames)

    def resize(self, total_steps: int, steps_per_epoch: int, n_frames: int) -> None:
        """Space the later frames for a run re-planned to ``total_steps`` (the earlier ones stay)."""
        self.every = snapshot_interval(total_steps, steps_per_epoch, n_frames)
        self.total_steps = total_steps

    def due(self, step: int) -> bool:
        """Whether ``step`` (the start, every :attr:`every` steps, the end) keeps a frame."""
        return step % self.every == 0 or step == self.total_steps

    @torch.no_grad()
    def take(self, model: ImageClassifier, step: int, epoch: float) -> None:
        """Keep a frame of ``model``'s latent space (:func:`ibinn.explore.snapshot_frame` of the
        snapshot images) and rewrite :data:`SNAPSHOTS_FILE` atomically. The pass runs in eval
        mode and the global RNG is restored after it, so a run takes the same steps with or
        without snapshots."""
        device = model.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            frame = snapshot_frame(model, self.data.images, self.data.labels)
        add_frame(self.frames, {"step": step, "epoch": epoch, "xy": frame.xy, "mu_xy": frame.mu_xy,
                                "accuracy": frame.accuracy, "explained": frame.explained})
        save_snapshots(self.out, self.frames, self.data)
