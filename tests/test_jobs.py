"""ibinn.jobs: each job in its own process, owned by one session, within the limits."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ibinn
from ibinn.jobs import FIRST_RUN, Job, JobManager, JobRefused, estimate_minutes, safe_name, worker_threads
from ibinn.limits import Limits
from ibinn.model import build_inn
from ibinn.objective import compile_pays
from ibinn.train import REPORT_EVERY, TrainConfig, train

from .conftest import assert_same_weights, torch_threads


@pytest.fixture()
def managers():
    """Managers made by a test; every job they still run is stopped when it ends."""
    made: list[JobManager] = []
    yield lambda *args: made.append(JobManager(*args)) or made[-1]
    for manager in made:
        manager.shutdown()


QUICK = dict(dataset="demo:fashion-mnist", preset="tiny", epochs=0.2, device="cpu", checkpoint_every=5)


def wait(manager: JobManager, owner: str, job_id: int, limit: float = 180.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = next(j for j in manager.jobs(owner) if j.id == job_id)
        if not job.active:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status} after {limit:.0f} s")


@pytest.mark.parametrize("name", ["..", ".", "../../etc", "/etc/passwd", "a/../../b", "", "-", "~root",
                                  "x" * 500, "\x00", ".hidden"])
def test_run_names_never_leave_the_runs_folder(tmp_path, name):
    folder = (tmp_path / safe_name(name)).resolve()
    assert folder.parent == tmp_path.resolve() and folder.name not in ("", ".", "..")
    assert not folder.name.startswith(".") and len(folder.name) <= 60


@pytest.mark.slow
def test_a_job_trains_in_its_own_process_unaffected_by_the_server(tmp_path, managers):
    """The worker's weights equal an in-process run's, although the server builds models (which
    draw from private generators) and draws random numbers all the while."""
    manager = managers(tmp_path / "runs")
    job = manager.submit(TrainConfig(**QUICK), "isolated", owner="a")
    config = ibinn.ModelConfig.from_preset("tiny", (1, 28, 28), 10, seed=123)
    while manager.jobs("a")[0].active:
        build_inn(config)
        torch.rand(100)
    done = wait(manager, "a", job.id)
    assert done.status == "finished", done.error
    assert done.history and done.metrics["steps"] > 0
    with torch_threads(worker_threads()):  # as many as the worker
        reference = train(TrainConfig(**QUICK, out=str(tmp_path / "reference")), progress=False)
    assert_same_weights(ibinn.load(done.out, device="cpu"), reference.model)


@pytest.mark.slow
def test_jobs_are_private_to_their_owner_and_limited(tmp_path, managers):
    limits = Limits(max_queued_per_session=2, max_queued_total=3)
    manager = managers(tmp_path / "runs", limits)
    long = TrainConfig(**{**QUICK, "epochs": 300.0})
    first = manager.submit(long, "mine", owner="a")
    second = manager.submit(long, "mine", owner="a")
    assert second.name == "mine-2"
    with pytest.raises(JobRefused, match="2 per session"):
        manager.submit(long, "third", owner="a")
    theirs = manager.submit(long, "theirs", owner="b")
    with pytest.raises(JobRefused, match="queue is full"):
        manager.submit(long, "fourth", owner="c")
    assert [j.name for j in manager.jobs("b")] == ["theirs"]
    assert manager.others_active("b") == 2 and manager.others_active("c") == 3
    assert not manager.cancel(first.id, owner="b")  # not b's job: nothing happens
    assert manager.jobs("a")[0].active
    for job in (second, first):
        assert manager.cancel(job.id, owner="a")
    assert wait(manager, "a", first.id).status == "cancelled"
    assert manager.jobs("a")[1].status == "cancelled"
    manager.shutdown()
    assert wait(manager, "b", theirs.id).status == "cancelled"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_session=st.integers(1, 4), total=st.integers(1, 12),
       owners=st.lists(st.sampled_from("abcd"), min_size=2, max_size=24))
def test_limits_hold_when_sessions_submit_at_once(monkeypatch, per_session, total, owners):
    """Submissions that arrive together are counted together: each a thread released at once, with
    a slow estimate between arrival and queueing (where the check and the add used to part)."""
    def slow_estimate(config):
        time.sleep(0.02)
        return 1.0

    monkeypatch.setattr("ibinn.jobs.estimate_minutes", slow_estimate)
    limits = Limits(max_running_jobs=0, max_queued_per_session=per_session, max_queued_total=total)
    with tempfile.TemporaryDirectory() as runs:
        manager = JobManager(runs, limits)  # no job starts: all stay queued
        start = threading.Barrier(len(owners))
        accepted: list[str] = []

        def submit(owner: str) -> None:
            start.wait()
            try:
                manager.submit(TrainConfig(**QUICK), "run", owner)
                accepted.append(owner)
            except JobRefused:
                pass

        threads = [threading.Thread(target=submit, args=(owner,)) for owner in owners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        manager.shutdown()
    per_owner = Counter(accepted)
    assert max(per_owner.values()) <= per_session and len(accepted) <= total, per_owner
    # every refusal had a full limit behind it: as many accepted as the limits allow
    assert len(accepted) == min(total, sum(min(per_session, n) for n in Counter(owners).values()))
    assert len({j.name for o in per_owner for j in manager.jobs(o)}) == len(accepted)


def test_a_job_over_the_time_limit_is_refused_before_it_starts(tmp_path, managers):
    manager = managers(tmp_path / "runs")
    huge = TrainConfig(dataset="cifar10", preset="paper", epochs=500, device="cpu")
    assert estimate_minutes(huge) > 15
    with pytest.raises(JobRefused, match="minutes of compute"):
        manager.submit(huge, "huge", owner="a")
    assert manager.jobs("a") == [] and not (Path(tmp_path) / "runs").exists()


@pytest.mark.slow
def test_a_failing_job_reports_a_plain_reason(tmp_path, managers):
    manager = managers(tmp_path / "runs")
    # 0.5 epochs of the 1,500 demo training images: 5 steps, the first finite, then NaN in a row
    diverging = TrainConfig(**{**QUICK, "epochs": 0.5, "lr": 1e9, "max_bad_steps": 2})
    job = manager.submit(diverging, "nan", owner="a")
    done = wait(manager, "a", job.id)
    assert done.status == "failed" and done.error_kind == "training diverged (NaN)", done.error
    assert "Traceback" not in done.error


def test_remaining_time_comes_from_the_measured_step_speed():
    job = Job(1, "run", "me", TrainConfig(dataset="demo:fashion-mnist"), 1.0, status="running")
    assert job.remaining_seconds is None  # nothing measured yet
    job.history = [{"step": 20, "total_steps": 220, "elapsed_s": 12.0},  # after data and model
                   {"step": 40, "total_steps": 220, "elapsed_s": 14.0, "loss": 1.0},
                   {"step": 60, "total_steps": 220, "elapsed_s": 16.0}]
    assert job.remaining_seconds == pytest.approx(16.0)  # 0.1 s a step, 160 steps to go
    job.status = "finished"
    assert job.remaining_seconds is None


def test_the_first_run_is_quick_watched_and_not_compiled():
    assert FIRST_RUN.snapshots > 0 and FIRST_RUN.dataset.startswith("demo:")
    steps = FIRST_RUN.epochs * (1350 // FIRST_RUN.batch_size)  # demo training images less validation
    assert steps / REPORT_EVERY >= 30  # curves of many points
    assert not compile_pays(FIRST_RUN, torch.device("cpu"))
    assert estimate_minutes(FIRST_RUN) < 2
