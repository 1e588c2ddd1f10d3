"""Plotly figures of the dashboard: pure functions, NumPy arrays in, ``go.Figure`` out.

Images are float arrays ``(C, H, W)`` in [0, 1] (C = 1 or 3) unless stated otherwise. The figures
set no template (Streamlit applies its theme) and draw reference lines and bands as layout shape
dicts, not with ``add_hline`` / ``add_hrect``: plotly's validation makes those cost tenths of a
second each on a slow CPU, which adds up on every rerun.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ibinn import plots

PALETTE = qualitative.D3 + qualitative.Set3

#: Fig. 6, metrics vs γ: the figure that `ibinn sweep` and `ibinn zoo --plot` write too.
gamma_curves = plots.gamma_curves


def _axis(kind: str, i: int) -> str:
    """Plotly's name of the ``i``-th (1-based) subplot's x or y axis in shape references."""
    return kind if i == 1 else f"{kind}{i}"


def hband(lo: float, hi: float, i: int = 1, **style) -> dict:
    """A horizontal band from ``lo`` to ``hi`` across subplot ``i``."""
    return dict(type="rect", xref=f"{_axis('x', i)} domain", x0=0, x1=1, yref=_axis("y", i), y0=lo,
                y1=hi, layer="below", line_width=0, **style)


def vline(x: float, i: int = 1, **line) -> dict:
    return dict(type="line", yref=f"{_axis('y', i)} domain", y0=0, y1=1, xref=_axis("x", i), x0=x, x1=x,
                line=line)


def class_color(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def to_rgb(image: np.ndarray, scale: int = 1) -> np.ndarray:
    """A float (C, H, W) image in [0, 1] as uint8 (H·scale, W·scale, 3), for display."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    img = np.clip(img, 0, 1)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    out = (img.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def _mosaic(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """(R, S, C, H, W) → one RGB uint8 array with white gaps."""
    r, s = images.shape[:2]
    h, w = images.shape[-2:]
    canvas = np.full((r * (h + pad) - pad, s * (w + pad) - pad, 3), 255, np.uint8)
    for i in range(r):
        for j in range(s):
            canvas[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = to_rgb(images[i, j])
    return canvas


#: Screen pixels per image in :func:`image_grid`: at least 64, so that a 32 x 32 image reads.
CELL_PX = 72


def image_grid(images: np.ndarray, row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
               title: str = "", cell_px: int = CELL_PX) -> go.Figure:
    """A grid of images ``(R, S, C, H, W)`` with row and column labels (e.g. classes x samples),
    ``cell_px`` screen pixels per image (drag a box on it to zoom in, double-click to zoom out)."""
    images = np.asarray(images)
    r, s = images.shape[:2]
    h, w = images.shape[-2:]
    pad = 2
    fig = go.Figure(go.Image(z=_mosaic(images, pad), hoverinfo="skip"))
    yticks = [i * (h + pad) + h / 2 for i in range(r)]
    xticks = [j * (w + pad) + w / 2 for j in range(s)]
    fig.update_xaxes(tickvals=xticks if col_labels else [], ticktext=list(col_labels), side="top",
                     showgrid=False, zeroline=False)
    fig.update_yaxes(tickvals=yticks if row_labels else [], ticktext=list(row_labels),
                     showgrid=False, zeroline=False)
    label_px = 110 if row_labels else 10
    fig.update_layout(title=title or None, margin=dict(l=label_px, r=10,
                      t=(60 if title else 30) + (20 if col_labels else 0), b=10),
                      height=max(160, r * cell_px + (90 if title else 50)),
                      width=min(1400, s * cell_px + label_px + 20))
    return fig


#: Class-mean labels: font size, and the box that a character and a line of it take on screen (px).
LABEL_FONT = 13
LABEL_CHAR_PX, LABEL_LINE_PX = 7.5, 20.0


def label_offsets(xy: np.ndarray, texts: Sequence[str],
                  extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
                  plot_px: tuple[float, float] = (700.0, 450.0)) -> list[tuple[float, float]]:
    """Where each point's label goes, as the pixel offset (right, down) of the label's centre from
    the point, so that labels clear the other points and each other: the most crowded point
    first, each label takes, among 16 directions just clear of its point (or 28 px further), the
    spot whose box keeps the most room to every other point and every label placed so far.
    ``extent``: the plot's x and y ranges (default: the points' own), drawn on ``plot_px`` pixels."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not len(xy):
        return []
    lo, hi = (np.array(extent, dtype=np.float64).T if extent is not None else (xy.min(0), xy.max(0)))
    span = hi - lo
    screen = (xy - lo) / np.where(span > 0, span, 1.0) * np.asarray(plot_px)
    screen[:, 1] = plot_px[1] - screen[:, 1]  # y down
    half = np.stack([np.array([len(t) for t in texts]) * LABEL_CHAR_PX + 8,
                     np.full(len(xy), LABEL_LINE_PX)], axis=1) / 2  # each label's half box
    angles = -np.pi / 2 + np.linspace(0, 2 * np.pi, 16, endpoint=False)  # up first
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    gap = np.linalg.norm(screen[:, None] - screen[None], axis=-1) + np.eye(len(xy)) * 1e9
    placed: dict[int, np.ndarray] = {}
    for i in np.argsort(gap.min(1)):  # the most crowded point first
        # the box's centre clears its own point (a star's radius, 8 px, plus 4) in every direction
        steps = np.concatenate([direction * (half[i] + 12 + extra) for extra in (0, 28)])
        centres = screen[i] + steps
        others = [(screen[j], np.full(2, 8.0)) for j in range(len(xy)) if j != i]
        others += [(c, half[j]) for j, c in placed.items()]
        if others:  # room: how many box sizes the nearest obstacle is away (> 1: no overlap)
            room = np.min([np.max(np.abs(centres - c) / (half[i] + h), axis=1) for c, h in others], axis=0)
        else:
            room = np.full(len(steps), np.inf)
        score = np.minimum(room, 1.5) - np.repeat([0.0, 0.05], len(angles))  # near, if it fits
        placed[int(i)] = centres[int(np.argmax(score))]
    return [tuple(float(v) for v in placed[i] - screen[i]) for i in range(len(xy))]


def mean_labels(mu_xy: np.ndarray, classes: Sequence[str],
                extent: tuple[tuple[float, float], tuple[float, float]],
                plot_px: tuple[float, float]) -> list[dict]:
    """The class means' labels as boxed annotations, each placed by :func:`label_offsets` and tied
    to its star by a line: on a dense cloud of points a bare label is unreadable."""
    return [dict(x=x, y=y, text=name, ax=ax, ay=ay, showarrow=True, arrowhead=0, arrowwidth=1,
                 arrowcolor="#444", font=dict(size=LABEL_FONT, color="black"),
                 bgcolor="rgba(255,255,255,0.85)", bordercolor=class_color(k), borderwidth=1.5, borderpad=2)
            for k, ((x, y), name, (ax, ay)) in enumerate(zip(
                mu_xy, classes, label_offsets(mu_xy, classes, extent, plot_px), strict=True))]


def latent_scatter(xy: np.ndarray, color_by: np.ndarray, classes: Sequence[str], mu_xy: np.ndarray,
                   confidence: np.ndarray, nll: np.ndarray, bits_per_dim: np.ndarray,
                   labels: np.ndarray, predicted: np.ndarray, axis_titles: tuple[str, str] = ("", ""),
                   title: str = "", height: int = 560, legend_below: bool = False,
                   axis_ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
                   plot_width: int = 700) -> go.Figure:
    """Demo-set latents in 2D, one trace per class of ``color_by`` (-1: not drawn), class means as
    large stars. ``customdata`` of every point starts with its index into the demo set, for
    selection events; the hover shows true and predicted class, top posterior and NLL.
    ``legend_below``: for narrow small multiples, whose plot a legend at the side squeezes.
    ``axis_ranges``: fixed x and y ranges, so that small multiples share their scale.
    ``plot_width``: about how wide the plot area will be (px), to place the class means' labels."""
    fig = go.Figure()
    idx = np.arange(len(xy))
    for k, name in enumerate(classes):
        m = color_by == k
        if not m.any():
            continue
        custom = np.stack([idx[m], confidence[m], nll[m], bits_per_dim[m]], axis=1)
        text = [f"true: {classes[t]}<br>predicted: {classes[p]}"
                for t, p in zip(labels[m], predicted[m], strict=True)]
        fig.add_trace(go.Scatter(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, legendgroup=name,
            marker=dict(size=5, color=class_color(k), opacity=0.7), customdata=custom, text=text,
            hovertemplate="#%{customdata[0]}<br>%{text}<br>top posterior %{customdata[1]:.3f}"
                          "<br>NLL %{customdata[2]:.1f} nats (%{customdata[3]:.3f} bits/dim)"
                          "<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=mu_xy[:, 0], y=mu_xy[:, 1], mode="markers", name="class means μ_y", text=list(classes),
        marker=dict(size=16, symbol="star", color=[class_color(k) for k in range(len(classes))],
                    line=dict(width=1.5, color="black")),
        hovertemplate="μ of %{text}<extra></extra>"))
    fig.update_layout(annotations=mean_labels(mu_xy, classes, axis_ranges or shared_ranges(xy, mu_xy),
                                              (plot_width, height - (210 if legend_below else 100))))
    fig.update_layout(title=title or None, height=height,
                      margin=dict(l=10, r=10, t=50 if title else 36, b=10),  # room for the modebar
                      legend=dict(itemsizing="constant", **(dict(orientation="h", yanchor="top", y=-0.18)
                                                             if legend_below else {})),
                      dragmode="lasso",
                      xaxis_title=axis_titles[0], yaxis_title=axis_titles[1])
    if axis_ranges is not None:
        fig.update_layout(xaxis_range=list(axis_ranges[0]), yaxis_range=list(axis_ranges[1]))
    return fig


def shared_ranges(*point_sets: np.ndarray, pad: float = 0.05
                  ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x and y ranges that hold every ``(N, 2)`` point set, padded by ``pad`` of the span."""
    points = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in point_sets])
    lo, hi = points.min(0), points.max(0)
    margin = pad * np.maximum(hi - lo, 1e-9)
    return ((float(lo[0] - margin[0]), float(hi[0] + margin[0])),
            (float(lo[1] - margin[1]), float(hi[1] + margin[1])))


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


def trajectory_animation(xy: np.ndarray, labels: np.ndarray, classes: Sequence[str], mu_xy: np.ndarray,
                         path_xy: np.ndarray, images: np.ndarray, strengths: np.ndarray,
                         strength_label: str, axis_titles: tuple[str, str] = ("", ""),
                         height: int = 520, active: int = -1) -> go.Figure:
    """Fig. 12 as an animation: the distorted image (left) and its latent point travelling
    through the projected demo set (right), with play/pause buttons and a slider that opens on
    step ``active`` (by default the last, the strongest distortion); Play starts from the first."""
    active = range(len(strengths))[active]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.12,
                        subplot_titles=("distorted image", "its latent, projected"))
    fig.add_trace(go.Image(z=to_rgb(images[active]), hoverinfo="skip"), row=1, col=1)
    for k, name in enumerate(classes):
        m = labels == k
        fig.add_trace(go.Scatter(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name,
                                 marker=dict(size=4, color=class_color(k), opacity=0.35),
                                 hoverinfo="skip"), row=1, col=2)
    fig.add_trace(go.Scatter(x=mu_xy[:, 0], y=mu_xy[:, 1], mode="markers", name="μ_y",
                             marker=dict(size=13, symbol="star", color=[class_color(k) for k in
                                         range(len(classes))], line=dict(width=1, color="black")),
                             text=list(classes), hovertemplate="μ of %{text}<extra></extra>"),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=path_xy[:, 0], y=path_xy[:, 1], mode="lines+markers", name="path",
                             line=dict(color="black", width=1.5), marker=dict(size=4, color="black"),
                             customdata=strengths, hovertemplate=f"{strength_label} "
                             "%{customdata:.3g}<extra></extra>"), row=1, col=2)
    current = len(fig.data)
    fig.add_trace(go.Scatter(x=path_xy[active:active + 1, 0], y=path_xy[active:active + 1, 1],
                             mode="markers", name="current",
                             marker=dict(size=16, color="black", symbol="x")), row=1, col=2)
    frames, steps = [], []
    for i, s in enumerate(strengths):
        name = f"{i}"
        frames.append(go.Frame(name=name, traces=[0, current], data=[
            go.Image(z=to_rgb(images[i])),
            go.Scatter(x=path_xy[i:i + 1, 0], y=path_xy[i:i + 1, 1])]))
        steps.append(dict(method="animate", label=f"{s:.2g}", args=[[name], dict(
            mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))]))
    fig.frames = frames
    pad = 0.1 * (np.ptp(np.vstack([xy, path_xy]), axis=0) + 1e-9)
    lo = np.vstack([xy, path_xy, mu_xy]).min(0) - pad
    hi = np.vstack([xy, path_xy, mu_xy]).max(0) + pad
    fig.update_xaxes(range=[lo[0], hi[0]], title_text=axis_titles[0], row=1, col=2)
    fig.update_yaxes(range=[lo[1], hi[1]], title_text=axis_titles[1], row=1, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    fig.update_layout(height=height + 70, margin=dict(l=10, r=10, t=40, b=110),
                      **_player(steps, f"{strength_label}: ", active=active, from_start=True))
    return fig


def _player(steps: list[dict], prefix: str | None, active: int = 0, frame_ms: int = 400,
            from_start: bool = False, stacked: bool = False) -> dict:
    """Layout of an animation's play / pause buttons and its slider of ``steps`` (one
    ``method="animate"`` step per frame), below the plot; ``prefix`` of the slider's current
    label (None: no current label shown); ``active``: the slider's start;
    ``from_start``: Play always starts at the first frame (else where the slider is);
    ``stacked``: the slider across the whole width, clear of an x-axis title, and the buttons
    under it (for a narrow figure, where beside it they would cover its start)."""
    slider_at = dict(x=0.0, y=-0.1, len=1.0) if stacked else dict(x=0.16, y=-0.04, len=0.84)
    return dict(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.3 if stacked else -0.08,
                          xanchor="left",
                          yanchor="top", showactive=False, buttons=[
                              dict(label="▶ Play", method="animate", args=[None, dict(
                                  frame=dict(duration=frame_ms, redraw=True),
                                  fromcurrent=not from_start,
                                  transition=dict(duration=0))]),
                              dict(label="❚❚ Pause", method="animate", args=[[None], dict(
                                  mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=active, steps=steps, **slider_at,
                      currentvalue=dict(prefix=prefix or "", xanchor="right",
                                        visible=prefix is not None), pad=dict(t=30))])


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


def value_range(*arrays: np.ndarray) -> tuple[float, float]:
    """The finite range of all ``arrays`` together, for panels that must share an axis."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)


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


def latent_forming(xy: np.ndarray, mu_xy: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   steps: np.ndarray, accuracy: np.ndarray, height: int = 520,
                   plot_width: int = 440) -> go.Figure:
    """The latent space forming during training: one frame per snapshot (images as points
    coloured by true class, class means as stars), with play / pause and a slider of steps; it
    opens on the last frame. Arrays as :func:`ibinn.train.load_snapshots` gives them, aligned by
    :func:`ibinn.explore.align_frames`; the axes hold every frame, so motion reads as motion.
    Play runs from the first frame (the untrained model). ``plot_width``: about how wide the plot
    area will be (px), to place the means' labels."""
    n_frames = len(steps)
    colours = [class_color(k) for k in range(len(classes))]

    def traces(i: int) -> list[go.Scatter]:
        points = [go.Scatter(x=xy[i, labels == k, 0], y=xy[i, labels == k, 1], mode="markers",
                             name=name, hovertemplate=f"{name}<extra></extra>",
                             marker=dict(size=5, color=colours[k], opacity=0.6))
                  for k, name in enumerate(classes)]
        # the means carry the class names: no legend, so that a narrow column keeps its plot
        return points + [go.Scatter(x=mu_xy[i, :, 0], y=mu_xy[i, :, 1], mode="markers",
                                    name="μ_y", text=list(classes),
                                    hovertemplate="μ of %{text}<extra></extra>",
                                    marker=dict(size=14, symbol="star", color=colours,
                                                line=dict(width=1, color="black")))]

    x_range, y_range = shared_ranges(xy.reshape(-1, 2)[np.isfinite(xy.reshape(-1, 2)).all(1)],
                                       mu_xy.reshape(-1, 2))

    def layout(i: int) -> dict:  # each frame's title and its means' labels
        return dict(title=dict(text=f"step {int(steps[i])} · held-out accuracy {accuracy[i]:.0%}", x=0.01),
                    annotations=mean_labels(mu_xy[i], classes, (x_range, y_range),
                                            (plot_width, height - 60)))

    last = n_frames - 1
    fig = go.Figure(traces(last))
    fig.frames = [go.Frame(name=str(i), data=traces(i), layout=layout(i)) for i in range(n_frames)]
    every = math.ceil(n_frames / 6)  # about six step numbers under the slider: more would overlap
    slider = [dict(method="animate", label=str(int(steps[i])) if i % every == 0 or i == last else "",
                   args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                        transition=dict(duration=0))])
              for i in range(n_frames)]
    fig.update_layout(height=height + 110, margin=dict(l=10, r=10, t=40, b=150), showlegend=False,
                      **layout(last),
                      xaxis=dict(range=x_range, title="PC 1 of μ_y"),
                      yaxis=dict(range=y_range, title="PC 2 of μ_y"),
                      **_player(slider, None, active=last, frame_ms=300, from_start=True, stacked=True))
    return fig


# --------------------------------------------------------------------------- latent-space questions

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
