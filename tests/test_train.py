import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ibinn
from ibinn.checkpoint import RunFolderBusy, run_folder_lock
from ibinn.train import STATE_FILE, TrainConfig, train

from .conftest import assert_same_weights


def _config(tmp_path, **kw) -> TrainConfig:
    base = dict(dataset="demo:fashion-mnist", preset="tiny", epochs=1, batch_size=64, val_size=200,
                checkpoint_every=5, device="cpu", out=str(tmp_path / "run"))
    return TrainConfig(**(base | kw))


def test_loss_falls_and_model_is_saved(tmp_path):
    seen = []
    result = train(_config(tmp_path, epochs=2), callback=seen.append, progress=False)
    losses = [r["loss"] for r in seen if "loss" in r and "val_error" not in r]
    assert losses[-1] < losses[0] - 0.5
    assert result.metrics["steps"] == 2 * (1800 // 64)
    assert result.history[-1]["val_error"] < 0.6  # far better than chance (0.9) after 56 steps
    loaded = ibinn.load(tmp_path / "run")
    assert loaded.config.dataset == "demo:fashion-mnist"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_error"] < 0.6


def test_interrupted_run_resumes_exactly(tmp_path):
    full = train(_config(tmp_path / "a"), progress=False)
    calls = {"n": 0}

    def stop_after_12() -> bool:
        calls["n"] += 1
        return calls["n"] >= 12

    cfg = _config(tmp_path / "b")
    partial = train(cfg, should_stop=stop_after_12, progress=False)
    assert not partial.finished
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, progress=False)
    leftover = Path(cfg.out) / f".{STATE_FILE}.x1y2z3.tmp"  # as a kill mid-write leaves it
    leftover.write_bytes(b"half a checkpoint")
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.metrics["steps"] == full.metrics["steps"]
    assert_same_weights(full.model, resumed.model)
    assert not leftover.exists()


def test_nan_guard_stops_with_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(ibinn.IBINN, "loss", lambda self, z, log_det, y: z.sum() * float("nan"))
    with pytest.raises(ibinn.TrainingDiverged, match="NaN/inf for 4 steps"):
        train(_config(tmp_path, max_bad_steps=4), progress=False)
    assert (tmp_path / "run" / STATE_FILE).exists()


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown mode"):
        _config(tmp_path, mode="softmax")
    with pytest.raises(ValueError, match="gamma"):
        _config(tmp_path, gamma=-1.0)
    with pytest.raises(ibinn.DataError, match="unknown data set"):
        train(_config(tmp_path, dataset="imagenet"), progress=False)
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        _config(tmp_path, augment="mixup")
    with pytest.raises(ValueError, match="not depth"):
        _config(tmp_path, model_overrides={"depth": 3})
    for field, value in (("epochs", float("nan")), ("batch_size", 0), ("seed", 2.5), ("lr", -1.0),
                         ("label_smoothing", 1.0), ("checkpoint_every", 0), ("epochs", "5")):
        with pytest.raises(ValueError, match=field):
            _config(tmp_path, **{field: value})


def test_configs_saved_with_boolean_augment_still_load(tmp_path):
    saved = _config(tmp_path).to_json() | {"augment": True}
    assert TrainConfig.from_json(saved).augment == "flip-crop"
    assert TrainConfig.from_json(saved | {"augment": False}).augment == "none"


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing(tmp_path):
    """A real process killed with SIGKILL mid-run resumes to the same step count."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", "demo:fashion-mnist",
           "--preset", "tiny", "--epochs", "30", "--batch-size", "64", "--checkpoint-every", "3",
           "--device", "cpu", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / STATE_FILE).exists() and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(out / STATE_FILE, weights_only=True)["step"]
    assert 0 < step_at_kill < 30 * 28, "kill came too late to test anything"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 30 * 28
    # the resumed process continued where the killed one stopped: it ran fewer than all steps
    assert metrics["resumed_from_step"] == step_at_kill > 0
    assert not list(out.glob(".*.tmp"))


def test_a_second_run_into_a_busy_folder_refuses(tmp_path):
    """While a run holds its folder, another run into it (CLI or library) refuses and writes nothing."""
    out = tmp_path / "run"
    with run_folder_lock(out):
        with pytest.raises(RunFolderBusy, match=f"pid.*{os.getpid()}"):
            train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.1, device="cpu",
                              out=str(out)), progress=False)
        cmd = [sys.executable, "-m", "ibinn.cli", "train", "--dataset", "demo:fashion-mnist",
               "--preset", "tiny", "--epochs", "0.1", "--device", "cpu", "--quiet", "--out", str(out)]
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and "in use by a run that is still going" in busy.stderr
        assert sorted(p.name for p in out.iterdir()) == [".ibinn.lock"]
    # released: the folder is usable again
    result = train(TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.1, device="cpu",
                               out=str(out)), progress=False)
    assert result.finished and (out / "model.safetensors").exists()
