import json
import math

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


def _row(name, mode, gamma, error, bpd=None):
    return {"name": name, "mode": mode, "gamma": gamma, "dim": 784,
            "report": {"test": {"error": error, "bits_per_dim": bpd}}}


def test_plot_positions_put_the_ends_a_decade_out_and_class_nll_at_beta_1():
    rows = [_row("g0", "ib", 0.0, 90), _row("g0.1", "ib", 0.1, 12), _row("g10", "ib", 10.0, 9),
            _row("ginf", "ly-only", 1.0, 8), _row("nll", "class-nll", 1.0, 25)]
    assert ibinn.sweep.plot_positions(rows) == pytest.approx([0.01, 0.1, 10, 100, 1 / 784])


def test_gamma_curves_draw_the_path_the_off_path_modes_and_baselines():
    rows = [_row("gamma-inf", "ib", math.inf, 8.0), _row("gamma-1", "ib", 1.0, 9.5, 4.3),
            _row("class-nll", "class-nll", 1.0, 25.0, 4.0)]
    fig = ibinn.sweep.gamma_curves(rows, {"resnet": {"test": {"error": 7.7}}}, "t", "a caveat")
    assert [a.text for a in fig.layout.annotations] == ["test error (%) ↓", "bits/dim ↓"]
    error_panel = [t for t in fig.data if t.xaxis == "x"]
    path, apart, resnet = error_panel
    assert path.y == (9.5, 8.0) and path.x == pytest.approx((0.0, 1.0))  # log10 γ, sorted; ∞ at 10 · 1
    assert apart.text == ("class-nll",) and apart.mode == "markers"
    assert resnet.y == (7.7, 7.7) and resnet.line.dash == "dash"
    assert [t.y for t in fig.data if t.xaxis == "x2"] == [(4.3,), (4.0,)]  # ∞ has no bits/dim
    assert fig.layout.xaxis.ticktext == ("class-NLL", "1", "∞") and "a caveat" in fig.layout.title.text


def test_gamma_curves_use_a_log_y_axis_only_for_positive_values_spanning_a_decade():
    rows = [_row("gamma-0", "lx-only", 0.0, 90.0, 4.0), _row("gamma-1", "ib", 1.0, 8.0, 4.3)]
    fig = ibinn.sweep.gamma_curves(rows)
    assert fig.layout.yaxis.type == "log"  # error 8 → 90 %: the γ = 0 run would flatten the rest
    assert fig.layout.yaxis.tickvals == (5, 10, 20, 50, 100)
    assert fig.layout.yaxis2.type != "log"  # bits/dim 4.0 → 4.3


def test_differences_such_as_the_entropy_increase_stay_on_a_linear_axis():
    rows = [{**_row("gamma-0", "lx-only", 0.0, 90.0), "report": {"ood_average": {"entropy_increase": 0.01}}},
            {**_row("gamma-1", "ib", 1.0, 8.0), "report": {"ood_average": {"entropy_increase": 0.8}}}]
    fig = ibinn.sweep.gamma_curves(rows)
    assert [a.text for a in fig.layout.annotations] == ["OoD entropy increase (nats) ↑"]
    assert fig.layout.yaxis.type != "log"
