"""Background training for the dashboard: one job at a time per server, the rest queued.

A :class:`JobManager` (one per server, held by ``st.cache_resource``) owns a worker thread that
runs :func:`ibinn.train.train` for each queued :class:`Job`. The UI only reads job snapshots, so
pages stay responsive and a job survives page changes and browser reloads. Cancelling sets a flag
that ``train``'s ``should_stop`` polls: the run checkpoints and stops (it could be resumed).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

import ibinn
from ibinn.train import TrainConfig, train


@dataclass
class Job:
    """One training run and what the UI shows of it."""

    id: int
    name: str
    config: TrainConfig
    status: str = "queued"  #: queued, running, finished, cancelled, failed
    history: list[dict] = field(default_factory=list)  #: every callback dict, in order
    latest: dict = field(default_factory=dict)
    error: str = ""
    error_kind: str = ""
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    metrics: dict = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def progress(self) -> float:
        total = self.latest.get("total_steps") or 0
        return min(1.0, self.latest.get("step", 0) / total) if total else 0.0

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


class JobManager:
    """Queue and run training jobs in one background thread."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._work, name="ibinn-train", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ UI side
    def submit(self, config: TrainConfig, name: str) -> Job:
        """Queue a run; its output folder is ``<runs_dir>/<name>`` (made unique)."""
        base = _slug(name)
        with self._lock:
            taken = {j.name for j in self._jobs}
            candidate = base
            for n in itertools.count(2):
                if candidate not in taken and not (self.runs_dir / candidate).exists():
                    break
                candidate = f"{base}-{n}"
            config = dataclasses.replace(config, out=str(self.runs_dir / candidate))
            job = Job(next(self._ids), candidate, config)
            self._jobs.append(job)
            self._wake.notify_all()
        return job

    def cancel(self, job_id: int) -> None:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id:
                    job.stop.set()
                    if job.status == "queued":
                        job.status, job.ended = "cancelled", time.time()

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.active]

    # ------------------------------------------------------------------ worker
    def _next(self) -> Job:
        with self._lock:
            while True:
                for job in self._jobs:
                    if job.status == "queued":
                        job.status, job.started = "running", time.time()
                        return job
                self._wake.wait()

    def _work(self) -> None:
        while True:
            job = self._next()
            self._run(job)

    def _run(self, job: Job) -> None:
        def callback(info: dict) -> None:
            job.history.append(dict(info))
            job.latest = {**job.latest, **info}

        try:
            result = train(job.config, callback=callback, progress=False,
                           should_stop=job.stop.is_set)
            job.metrics = dict(result.metrics)
            job.status = "finished" if result.finished else "cancelled"
        except torch.OutOfMemoryError as err:
            job.status, job.error_kind = "failed", "out of memory"
            job.error = (f"The device ran out of memory: {err}. Try a smaller preset, a smaller "
                         "batch, or the CPU.")
        except ibinn.TrainingDiverged as err:
            job.status, job.error_kind, job.error = "failed", "training diverged (NaN)", str(err)
        except ibinn.DataError as err:
            job.status, job.error_kind, job.error = "failed", "data missing", str(err)
        except (ValueError, FileExistsError, ibinn.CheckpointError) as err:
            job.status, job.error_kind, job.error = "failed", "invalid settings", str(err)
        except Exception as err:  # noqa: BLE001 - the UI must show every failure, not die
            job.status, job.error_kind = "failed", type(err).__name__
            job.error = f"{err}\n\n{traceback.format_exc(limit=4)}"
        finally:
            job.ended = time.time()
