"""Figures of scores: posteriors, scores against a distortion's strength, calibration,
histograms, a confusion matrix, training curves and Fig. 6's metrics against γ."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ibinn import plots

from .parts import class_color, hband, vline

#: Fig. 6, metrics vs γ: the figure that `ibinn sweep` and `ibinn zoo --plot` write too.
gamma_curves = plots.gamma_curves


def posterior_bars(proba: np.ndarray, classes: Sequence[str], true_class: int | None = None,
                   title: str = "Posterior q(y | x)", height: int = 260) -> go.Figure:
    colors = [class_color(k) for k in range(len(classes))]
    fig = go.Figure(go.Bar(x=list(classes), y=proba, marker_color=colors,
                           marker_line=dict(width=[3 if k == true_class else 0 for k in
                                                   range(len(classes))], color="black"),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=height, yaxis_range=[0, 1],
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def posterior_path(t: np.ndarray, proba: np.ndarray, classes: Sequence[str], title: str = "",
                   height: int = 260) -> go.Figure:
    """Posterior of every class along a path (stacked areas sum to 1). The legend, below the
    plot where no toolbar covers it, names only the classes that reach 2 % somewhere on the path
    (the others are too thin to see; the hover lists every class)."""
    fig = go.Figure()
    proba = np.asarray(proba)
    shown = proba.max(0) >= 0.02
    for k, name in enumerate(classes):
        fig.add_trace(go.Scatter(x=t, y=proba[:, k], name=name, stackgroup="p", mode="lines",
                                 line=dict(width=0.5, color=class_color(k)), showlegend=bool(shown[k]),
                                 hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"))
    # a long legend wraps to more rows in a narrow column: the figure grows with it, so that the
    # plot (and with it the legend's distance below the axis title) keeps its height
    fig.update_layout(title=title or None, height=height + 60 + 15 * max(0, int(shown.sum()) - 3),
                      yaxis_range=[0, 1],
                      xaxis_title="t (0 = image A, 1 = image B)", yaxis_title="q(y | z)",
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0),
                      margin=dict(l=10, r=10, t=40 if title else 30, b=10), hovermode="x unified")
    return fig


def trajectory_curves(strengths: np.ndarray, series: dict[str, np.ndarray],
                      bands: dict[str, tuple[float, float]], strength_label: str,
                      marker_at: float | None = None, height: int = 300) -> go.Figure:
    """One panel per score vs distortion strength, the in-distribution range shaded."""
    names = list(series)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    shapes = []
    for i, name in enumerate(names, start=1):
        fig.add_trace(go.Scatter(x=strengths, y=series[name], mode="lines+markers", name=name,
                                 line=dict(color="black"), showlegend=False,
                                 hovertemplate=f"{strength_label} %{{x:.3g}}<br>{name} %{{y:.3g}}"
                                               "<extra></extra>"), row=1, col=i)
        if name in bands:
            shapes.append(hband(*bands[name], i, fillcolor="green", opacity=0.15))
        if marker_at is not None:
            shapes.append(vline(marker_at, i, dash="dot", color="grey"))
        fig.update_xaxes(title_text=strength_label, row=1, col=i)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10), shapes=shapes)
    return fig


def reliability_diagrams(diagrams: dict[str, dict], dashed: set[str] = frozenset(),
                         height: int = 380) -> go.Figure:
    """Calibration curves (accuracy vs confidence per bin), one trace per model, diagonal = perfect;
    the models named in ``dashed`` (discriminative baselines) are drawn dashed. The legend sits
    below the plot, clear of the curves (which fill the upper left and lower right)."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line=dict(dash="dash", color="grey")))
    for j, (name, d) in enumerate(diagrams.items()):
        counts = np.asarray(d["counts"])
        used = counts > 0
        fig.add_trace(go.Scatter(
            x=np.asarray(d["confidence"])[used], y=np.asarray(d["accuracy"])[used],
            mode="lines+markers", name=name,
            line=dict(color=class_color(j), dash="dash" if name in dashed else "solid"),
            customdata=counts[used],
            hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>%{customdata} predictions"
                          "<extra></extra>"))
    rows = math.ceil((len(diagrams) + 1) / 2)  # two legend entries a row
    fig.update_layout(height=height + 22 * rows, xaxis_title="predicted probability (bin)",
                      yaxis_title="fraction correct", xaxis_range=[0, 1], yaxis_range=[0, 1],
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
                      margin=dict(l=10, r=10, t=40, b=10), title="Reliability diagram")
    return fig


def histograms(values: dict[str, np.ndarray], x_title: str, title: str = "",
               vlines: dict[str, float] | None = None, height: int = 300,
               x_range: tuple[float, float] | None = None, legend_below: bool = False) -> go.Figure:
    """Overlaid normalised histograms, e.g. bits/dim in vs out of distribution; ``x_range``: a
    fixed x range (and 50 bins across it), so that several histograms share one scale;
    ``legend_below``: for a narrow column, whose plot a legend at the side squeezes."""
    fig = go.Figure()
    bins = None if x_range is None else dict(start=x_range[0], end=x_range[1],
                                             size=(x_range[1] - x_range[0]) / 50 or 1)
    for j, (name, v) in enumerate(values.items()):
        fig.add_trace(go.Histogram(x=np.asarray(v), name=name, opacity=0.55, histnorm="probability",
                                   marker_color=class_color(j), nbinsx=50, xbins=bins))
    if x_range is not None:
        pad = 0.02 * (x_range[1] - x_range[0])
        fig.update_xaxes(range=[x_range[0] - pad, x_range[1] + pad])
    vlines = vlines or {}
    fig.update_layout(
        shapes=[vline(x, dash="dash", color="black") for x in vlines.values()],
        annotations=[dict(x=x, xref="x", y=1, yref="y domain", text=name, showarrow=False,
                          yanchor="bottom") for name, x in vlines.items()])
    fig.update_layout(barmode="overlay", height=height, title=title or None,
                      xaxis_title=x_title, yaxis_title="share of images",
                      margin=dict(l=10, r=10, t=50 if title or vlines else 30, b=10))
    if legend_below:
        fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


def training_curves(history: list[dict], keys: dict[str, str], per_row: int | None = None
                    ) -> go.Figure:
    """Live training curves: one panel per key (e.g. loss, accuracy, bits/dim) vs step, in one
    row or ``per_row`` panels a row."""
    cols = per_row or len(keys)
    rows = math.ceil(len(keys) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(keys.values()),
                        horizontal_spacing=0.07, vertical_spacing=0.45 / rows)
    for i, key in enumerate(keys):
        at = dict(row=i // cols + 1, col=i % cols + 1)
        pts = [(h["step"], h[key]) for h in history if h.get(key) is not None and "step" in h]
        if pts:
            x, y = zip(*pts, strict=True)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", showlegend=False,
                                     marker=dict(size=4)), **at)
        fig.update_xaxes(title_text="step", **at)
    # 60 px on top: the first row's panel titles stay clear of plotly's toolbar
    fig.update_layout(height=280 * rows, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def confusion_heatmap(counts: np.ndarray, classes: Sequence[str], height: int = 480) -> go.Figure:
    """A confusion matrix ``(K, K)`` (rows: true class, columns: predicted) as a heatmap with its
    counts written in; the colour shows each count as a share of its row, so that rare classes'
    mistakes read as clearly as common ones'."""
    counts = np.asarray(counts)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    names = list(classes)
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, text=counts, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1, colorbar=dict(title="share of row", tickformat=".0%"),
        hovertemplate="true %{y}, predicted %{x}: %{text} images (%{z:.1%} of the row)"
                      "<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="predicted class", side="top"),
                      yaxis=dict(title="true class", autorange="reversed"))
    return fig


def versus_curves(strengths: np.ndarray, series: dict[str, dict[str, np.ndarray]],
                  bands: dict[str, tuple[float, float]], strength_label: str,
                  missing: dict[str, str], height: int = 600) -> go.Figure:
    """Scores of several models against one distortion's strength, a 2 × 2 grid of panels.

    ``series`` maps a model to its panels (name → values per strength); a panel whose values are
    all NaN for a model says ``missing[panel]`` for it in words inside the panel, e.g. that a
    discriminative model has no likelihood, instead of staying blank. ``bands`` shades a panel's
    in-distribution range.
    """
    panels = list(dict.fromkeys(name for scores in series.values() for name in scores))

    def values_of(scores: dict, panel: str) -> np.ndarray:
        return np.asarray(scores.get(panel, np.full(len(strengths), np.nan)), dtype=np.float64)

    # a model's missing panel is said under the panel's title, where no curve can cross it
    titles = [panel + "".join(f"<br><span style='font-size:11px;color:grey'>{model}: "
                              f"{missing.get(panel, 'not available')}</span>"
                              for model, scores in series.items() if np.isnan(values_of(scores, panel)).all())
              for panel in panels]
    # room between the rows for the first row's axis title and a second row's title of two lines
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.1,
                        vertical_spacing=0.3)
    shapes = []
    for i, panel in enumerate(panels, start=1):
        row, col = (i - 1) // 2 + 1, (i - 1) % 2 + 1
        for j, (model, scores) in enumerate(series.items()):
            values = values_of(scores, panel)
            if np.isnan(values).all():
                continue
            fig.add_trace(go.Scatter(
                x=strengths, y=values, mode="lines+markers", name=model, legendgroup=model,
                showlegend=i == 1, line=dict(color=class_color(j), dash="dash" if j else "solid"),
                hovertemplate=f"{model}<br>{strength_label} %{{x:.3g}}<br>{panel} %{{y:.3g}}"
                              "<extra></extra>"), row=row, col=col)
        if panel in bands:
            shapes.append(hband(*bands[panel], i, fillcolor="green", opacity=0.15))
        fig.update_xaxes(title_text=strength_label, row=row, col=col)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=80, b=10), shapes=shapes,
                      legend=dict(orientation="h", y=1.16))
    return fig
