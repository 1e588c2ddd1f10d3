import dataclasses
import json
import multiprocessing
import os
import sys
import threading

import pytest
import torch

import ibinn.sweep
from ibinn.checkpoint import load_weights
from ibinn.sweep import sweep
from ibinn.train import WEIGHTS_FILE, TrainConfig

from .conftest import torch_threads

BASE = TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.2, batch_size=64,
                   device="cpu", checkpoint_every=1000)


@pytest.mark.slow
def test_sweep_trains_reports_then_reuses(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    rows = sweep(BASE, [0.0, float("inf")], ["class-nll"], out, ood_sets=["inverted"],
                 progress=False)
    assert [r["name"] for r in rows] == ["gamma-0", "gamma-inf", "class-nll"]
    for name in ("sweep.json", "sweep.md", "sweep.html", "sweep.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "sweep.json").read_text())
    assert [r["gamma"] for r in saved] == [0.0, "inf", 1.0]
    assert "| gamma-inf |" in (out / "sweep.md").read_text()
    assert all(0 < r["report"]["test"]["bits_per_dim"] < 100 for r in rows)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run with the same settings must be reused")

    monkeypatch.setattr(ibinn.sweep, "train", no_training)
    again = sweep(BASE, [0.0], [], out, ood_sets=["inverted"], progress=False)
    assert again[0]["report"]["test"]["error"] == pytest.approx(rows[0]["report"]["test"]["error"])

    with pytest.raises(ValueError, match="other settings.*epochs"):
        sweep(TrainConfig(**{**BASE.__dict__, "epochs": 0.5}), [0.0], [], out, progress=False)

    # without the `plots` extra: said before any training, then the reports without the figures
    for library in ("matplotlib", "plotly"):
        monkeypatch.setitem(sys.modules, library, None)  # `import matplotlib` now fails
    for name in ibinn.sweep.FIGURES:
        (out / name).unlink()
    capsys.readouterr()
    with pytest.raises(AssertionError, match="must be reused"):  # γ = 10 is not trained yet
        sweep(BASE, [10.0], [], out, progress=False)
    (said,) = capsys.readouterr().err.splitlines()
    assert "not installed" in said and "pip install 'ibinn[plots]'" in said
    sweep(BASE, [0.0], [], out, ood_sets=["inverted"], progress=False)
    assert (out / "sweep.md").exists() and (out / "sweep.json").exists()
    assert not any((out / name).exists() for name in ibinn.sweep.FIGURES)


def test_a_worker_waits_for_its_device_to_reach_the_queue(monkeypatch):
    """The parent's puts reach a multiprocessing queue through a feeder thread: a worker that
    starts before its device has arrived must wait for it, not fail (it did once in CI)."""
    queue = multiprocessing.get_context("spawn").Queue()
    threading.Timer(0.3, queue.put, args=("cpu",)).start()
    monkeypatch.setattr(ibinn.sweep, "_worker_device", "")
    with torch_threads(torch.get_num_threads()):  # the worker sets its own count
        ibinn.sweep._start_worker(queue, 1)
    assert ibinn.sweep._worker_device == "cpu"


@pytest.mark.slow
def test_runs_spread_over_devices_match_the_runs_in_process(tmp_path):
    """Two CPU workers train what this process would: training is a function of (seed, step).

    The runs here train with the thread count each of the two workers gets (half the cores), as
    float reductions, and so the weights, may differ in their last bits between thread counts."""
    base = dataclasses.replace(BASE, epochs=0.1)
    spread = sweep(base, [0.1, 10.0], [], tmp_path / "spread", ood_sets=[], progress=False,
                   devices=["cpu", "cpu"])
    with torch_threads(max(1, (os.cpu_count() or 1) // 2)):
        here = sweep(base, [0.1, 10.0], [], tmp_path / "here", ood_sets=[], progress=False,
                     devices=[])
    assert [r["name"] for r in spread] == [r["name"] for r in here] == ["gamma-0.1", "gamma-10"]
    for a, b in zip(spread, here, strict=True):
        weights_a, _ = load_weights(tmp_path / "spread" / a["name"] / WEIGHTS_FILE)
        weights_b, _ = load_weights(tmp_path / "here" / b["name"] / WEIGHTS_FILE)
        assert weights_a.keys() == weights_b.keys()
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a), a["name"]
        assert a["report"]["test"] == b["report"]["test"]
