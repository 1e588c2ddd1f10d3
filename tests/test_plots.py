"""The figures of a sweep (Fig. 6), and what happens without the ``plots`` extra."""

import math
import sys

import pytest

from ibinn import plots
from ibinn.cli import main


def _row(name, mode, gamma, error, bpd=None):
    return {"name": name, "mode": mode, "gamma": gamma, "dim": 784,
            "report": {"test": {"error": error, "bits_per_dim": bpd}}}


def test_plot_positions_put_the_ends_a_decade_out_and_class_nll_at_beta_1():
    rows = [_row("g0", "ib", 0.0, 90), _row("g0.1", "ib", 0.1, 12), _row("g10", "ib", 10.0, 9),
            _row("ginf", "ly-only", 1.0, 8), _row("nll", "class-nll", 1.0, 25)]
    assert plots.plot_positions(rows) == pytest.approx([0.01, 0.1, 10, 100, 1 / 784])


def test_gamma_curves_draw_the_path_the_off_path_modes_and_baselines():
    rows = [_row("gamma-inf", "ib", math.inf, 8.0), _row("gamma-1", "ib", 1.0, 9.5, 4.3),
            _row("class-nll", "class-nll", 1.0, 25.0, 4.0)]
    fig = plots.gamma_curves(rows, {"resnet": {"test": {"error": 7.7}}}, "t", "a caveat")
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
    fig = plots.gamma_curves(rows)
    assert fig.layout.yaxis.type == "log"  # error 8 → 90 %: the γ = 0 run would flatten the rest
    assert fig.layout.yaxis.tickvals == (5, 10, 20, 50, 100)
    assert fig.layout.yaxis2.type != "log"  # bits/dim 4.0 → 4.3


def test_differences_such_as_the_entropy_increase_stay_on_a_linear_axis():
    rows = [{**_row("gamma-0", "lx-only", 0.0, 90.0), "report": {"ood_average": {"entropy_increase": 0.01}}},
            {**_row("gamma-1", "ib", 1.0, 8.0), "report": {"ood_average": {"entropy_increase": 0.8}}}]
    fig = plots.gamma_curves(rows)
    assert [a.text for a in fig.layout.annotations] == ["OoD entropy increase (nats) ↑"]
    assert fig.layout.yaxis.type != "log"


def test_zoo_plot_without_the_figure_library_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    assert plots.missing_libraries([tmp_path / "a.png", tmp_path / "b.png"]) == ["matplotlib"]
    with pytest.raises(SystemExit, match=r"needs matplotlib.*pip install 'ibinn\[plots\]'"):
        main(["zoo", "--dataset", "fashion-mnist", "--plot", str(tmp_path / "fig6.png")])
    assert not (tmp_path / "fig6.png").exists()
