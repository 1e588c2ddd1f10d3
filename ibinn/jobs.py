"""Training jobs for a shared server: each in a worker process, owned by one session, within limits.

The dashboard is one server for a whole class, so a training job must not be able to crash or
stall it, nor change its results, and no visitor may see, cancel or crowd out another's jobs.
A :class:`JobManager` (one per server) therefore

- runs each job's :func:`ibinn.train.train` in its own process (``spawn``; the worker lowers its
  priority so that page rendering comes first), which reports progress through a queue and
  stops at a checkpoint when its stop event is set;
- keeps each job's ``owner`` (a session id): a session lists and cancels only its own jobs and sees
  the others only as a count;
- refuses a job, before it starts and with the reason, beyond the limits of :mod:`ibinn.limits`:
  ``max_running_jobs`` (the rest wait in a queue), ``max_queued_per_session``,
  ``max_queued_total``, and ``max_job_minutes`` of compute, estimated by :func:`estimate_minutes`
  from the model's FLOPs per image × training images × epochs;
- writes every run to ``<runs_dir>/<name>``, the name reduced to a safe folder name.

Example:
    >>> from ibinn.jobs import JobManager
    >>> from ibinn.train import TrainConfig
    >>> manager = JobManager("runs/app")  # doctest: +SKIP
    >>> job = manager.submit(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=1),
    ...                      "first-run", owner="session-1")  # doctest: +SKIP
    >>> [j.status for j in manager.jobs("session-1")]  # doctest: +SKIP
    ['running']
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import limits as L
from .train import TrainConfig, estimate_minutes

#: Seconds a cancelled job may take to write its checkpoint before its process is ended.
STOP_GRACE_S = 60.0

#: The Train page's defaults: a first run worth watching. On the 2-core CPU it takes about a
#: minute of CPU time (one torch thread, as a job's worker) and classifies the demo set's 500
#: held-out images 74 % right (chance: 10 %); measured by ``benchmarks/first_run.py``. Its 40
#: epochs of 21 steps give curves of about 120 points and 41 frames of the latent space forming
#: (each costs about 1.4 training steps: 7 % of the run). Its estimate is far below
#: :data:`ibinn.objective.COMPILE_PAYS_AFTER_MINUTES`, so ``compile="auto"`` does not compile it.
FIRST_RUN = TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=40.0, batch_size=64,
                        snapshots=40, checkpoint_every=10_000)


class JobRefused(ValueError):
    """A job was not queued: a limit of :mod:`ibinn.limits` would be exceeded (the message says which)."""


@dataclass
class Job:
    """One training run and what its owner's page shows of it."""

    id: int
    name: str
    owner: str
    config: TrainConfig
    estimate_minutes: float
    status: str = "queued"  #: queued, running, finished, cancelled, failed
    history: list[dict] = field(default_factory=list)  #: every progress dict, in order
    latest: dict = field(default_factory=dict)
    error: str = ""
    error_kind: str = ""
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    metrics: dict = field(default_factory=dict)

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

    @property
    def remaining_seconds(self) -> float | None:
        """Expected seconds until a running job ends, at its measured speed since its first
        report (so data loading and compilation do not count); None before two reports."""
        timed = [h for h in self.history if "elapsed_s" in h and "step" in h]
        if self.status != "running" or len(timed) < 2 or timed[-1]["step"] <= timed[0]["step"]:
            return None
        first, last = timed[0], timed[-1]
        per_step = (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])
        return max(0.0, per_step * (last.get("total_steps", last["step"]) - last["step"]))


def worker_threads() -> int:
    """Torch threads of a job's worker: every core but one, which stays the server's (torch threads
    that share a core with it wait on each other)."""
    return max(1, (os.cpu_count() or 2) - 1)


def safe_name(text: str) -> str:
    """A run name as a single safe folder name: letters, digits, ``.``, ``_`` and ``-``, not
    starting with a dot (so never ``.`` or ``..``), at most 60 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).lstrip(".-")[:60].rstrip(".-") or "model"


# --------------------------------------------------------------------------- the worker process

def _failure(err: BaseException) -> tuple[str, str]:
    """A failed run as (kind, message) for its owner: plain words, no traceback."""
    import torch

    from .checkpoint import CheckpointError, RunFolderBusy
    from .data import DataError
    from .train import TrainingDiverged

    if isinstance(err, torch.OutOfMemoryError):
        return "out of memory", (f"The device ran out of memory: {err}. Try a smaller preset, a "
                                 "smaller batch, or the CPU.")
    if isinstance(err, TrainingDiverged):
        return "training diverged (NaN)", str(err)
    if isinstance(err, DataError):
        return "data missing", str(err)
    if isinstance(err, ValueError | FileExistsError | CheckpointError | RunFolderBusy):
        return "invalid settings", str(err)
    return type(err).__name__, str(err)[:1000]


def _work(config_json: dict, messages, stop) -> None:
    """Entry point of a worker process: train, reporting progress and the outcome on ``messages``."""
    import torch

    from .train import train

    if hasattr(os, "nice"):
        os.nice(10)  # the server's page rendering comes first
    torch.set_num_threads(worker_threads())
    try:
        result = train(TrainConfig.from_json(config_json), progress=False,
                       callback=lambda info: messages.put(("progress", dict(info))),
                       should_stop=stop.is_set)
        messages.put(("done", {"metrics": dict(result.metrics), "finished": result.finished}))
    except BaseException as err:  # noqa: BLE001 - every failure is reported, the process then ends
        messages.put(("failed", _failure(err)))


@dataclass
class _Running:
    job: Job
    process: multiprocessing.process.BaseProcess
    messages: object
    stop: object
    stop_sent: float | None = None
    outcome: tuple[str, object] | None = None


# --------------------------------------------------------------------------- the manager

class JobManager:
    """Queue training jobs, run each in a worker process, and keep them apart by owner."""

    def __init__(self, runs_dir: str | Path, limits: L.Limits | None = None):
        self.runs_dir = Path(runs_dir)
        self.limits = limits or L.current()
        self._jobs: list[Job] = []
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._thread = threading.Thread(target=self._loop, name="ibinn-jobs", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ what sessions call
    def submit(self, config: TrainConfig, name: str, owner: str) -> Job:
        """Queue a run for ``owner`` into ``<runs_dir>/<safe name>`` (made unique).

        Raises :class:`JobRefused` beyond a limit, ``ValueError`` for settings that cannot train.
        """
        with self._lock:  # refused early, before the estimate's cost, when there is no room
            self._check_room(owner)
        minutes = estimate_minutes(config)
        if minutes > self.limits.max_job_minutes:
            raise JobRefused(f"this run would take about {minutes:.0f} minutes of compute on this "
                             f"server (estimated from the model's FLOPs per image × images × epochs); "
                             f"the limit is {self.limits.max_job_minutes:g} minutes a job: use fewer "
                             f"epochs, a smaller preset or the demo data")
        base = safe_name(name)
        # checked again and added in one critical section: sessions submitting at once can
        # otherwise all pass the check above before any of them is added
        with self._lock:
            self._check_room(owner)
            taken = {j.name for j in self._jobs}
            candidate = base
            for n in itertools.count(2):
                if candidate not in taken and not (self.runs_dir / candidate).exists():
                    break
                candidate = f"{base}-{n}"
            config = dataclasses.replace(config, out=str(self.runs_dir / candidate))
            job = Job(next(self._ids), candidate, owner, config, minutes)
            self._jobs.append(job)
            self._wake.notify_all()
        return job

    def _check_room(self, owner: str) -> None:
        """Raise :class:`JobRefused` when ``owner`` or the server has no room for one more job
        (called with the lock held)."""
        lim = self.limits
        active = [j for j in self._jobs if j.active]
        mine = sum(j.owner == owner for j in active)
        if mine >= lim.max_queued_per_session:
            raise JobRefused(f"you already have {mine} jobs queued or running; the limit is "
                             f"{lim.max_queued_per_session} per session: wait for one to end or "
                             f"cancel one")
        if len(active) >= lim.max_queued_total:
            raise JobRefused(f"the server's queue is full ({len(active)} jobs, limit "
                             f"{lim.max_queued_total}): try again later")

    def cancel(self, job_id: int, owner: str) -> bool:
        """Stop ``owner``'s job ``job_id`` (a running one checkpoints first); False if there is no
        such job of this owner."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id and j.owner == owner), None)
            if job is None or not job.active:
                return False
            if job.status == "queued":
                job.status, job.ended = "cancelled", time.time()
            elif job.id in self._running:
                self._stop(self._running[job.id])
            self._wake.notify_all()
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every queued job and stop every running one (at a checkpoint, or ended after
        ``timeout`` seconds), e.g. when a server or a test is done with this manager."""
        with self._lock:
            for job in self._jobs:
                if job.status == "queued":
                    job.status, job.ended = "cancelled", time.time()
            running = list(self._running.values())
            for run in running:
                self._stop(run)
            self._wake.notify_all()
        for run in running:
            run.process.join(timeout)
            if run.process.is_alive():
                run.process.terminate()

    def jobs(self, owner: str) -> list[Job]:
        """``owner``'s jobs, oldest first (copies: safe to read while the jobs go on)."""
        with self._lock:
            return [dataclasses.replace(j, history=list(j.history), latest=dict(j.latest))
                    for j in self._jobs if j.owner == owner]

    def active(self, owner: str) -> list[Job]:
        return [j for j in self.jobs(owner) if j.active]

    def others_active(self, owner: str) -> int:
        """How many queued or running jobs belong to other sessions."""
        with self._lock:
            return sum(j.active and j.owner != owner for j in self._jobs)

    # ------------------------------------------------------------------ the scheduler thread
    def _stop(self, run: _Running) -> None:
        run.stop.set()
        run.stop_sent = run.stop_sent or time.monotonic()

    def _start(self, job: Job) -> None:
        messages, stop = self._context.Queue(), self._context.Event()
        process = self._context.Process(target=_work, args=(job.config.to_json(), messages, stop),
                                        name=f"ibinn-job-{job.id}", daemon=True)
        job.status, job.started = "running", time.time()
        process.start()
        self._running[job.id] = _Running(job, process, messages, stop)

    def _poll(self, run: _Running) -> None:
        job = run.job
        while True:
            try:
                kind, payload = run.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                job.history.append(payload)
                job.latest = {**job.latest, **payload}
            else:
                run.outcome = (kind, payload)
        over_time = job.started and time.time() - job.started > 120 + 120 * self.limits.max_job_minutes
        if over_time and run.stop_sent is None:  # the estimate was far off: stop at a checkpoint
            job.error_kind, job.error = "time limit", "stopped: ran twice as long as the time limit"
            self._stop(run)
        if run.stop_sent is not None and time.monotonic() - run.stop_sent > STOP_GRACE_S:
            run.process.terminate()

    def _finish(self, run: _Running) -> None:
        job = run.job
        job.ended = time.time()
        kind, payload = run.outcome or ("failed", ("worker ended", "the training process ended "
                                                    f"unexpectedly (exit code {run.process.exitcode})"))
        if kind == "done":
            job.metrics = payload["metrics"]
            job.status = "finished" if payload["finished"] else "cancelled"
        else:
            job.status = "failed"
            job.error_kind, job.error = payload
        del self._running[job.id]

    def _loop(self) -> None:
        while True:
            with self._lock:
                for run in list(self._running.values()):
                    self._poll(run)
                    if not run.process.is_alive():
                        run.process.join()
                        self._poll(run)  # messages sent just before the end
                        self._finish(run)
                queued = [j for j in self._jobs if j.status == "queued"]
                while queued and len(self._running) < self.limits.max_running_jobs:
                    self._start(queued.pop(0))
                self._wake.wait(timeout=0.25 if self._running else None)
