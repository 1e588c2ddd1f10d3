import json

import pytest

import ibinn.sweep
from ibinn.sweep import sweep
from ibinn.train import TrainConfig


def test_sweep_trains_reports_then_reuses(tmp_path, monkeypatch):
    base = TrainConfig(dataset="demo:fashion-mnist", preset="tiny", epochs=0.2, batch_size=64,
                       device="cpu", checkpoint_every=1000)
    out = tmp_path / "sweep"
    rows = sweep(base, [0.0, float("inf")], ["class-nll"], out, ood_sets=["inverted"],
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
    again = sweep(base, [0.0], [], out, ood_sets=["inverted"], progress=False)
    assert again[0]["report"]["test"]["error"] == pytest.approx(rows[0]["report"]["test"]["error"])

    with pytest.raises(ValueError, match="other settings.*epochs"):
        sweep(TrainConfig(**{**base.__dict__, "epochs": 0.5}), [0.0], [], out, progress=False)
