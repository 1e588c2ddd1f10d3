"""Latent-space figures: the demo set's latents in 2D with the class means labelled, an image's
latent travelling under a growing distortion (the paper's Fig. 12), and the latent space forming
during training."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .images import to_rgb
from .parts import class_color, shared_ranges

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
    ``extent``: the plot's x and y ranges, drawn on ``plot_px`` pixels; given, the labels stay in
    the plot (a spot inside first; a box that fits nowhere is pushed in). Default: the points' own
    ranges, with no edge."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not len(xy):
        return []
    lo, hi = (np.array(extent, dtype=np.float64).T if extent is not None else (xy.min(0), xy.max(0)))
    span, size = hi - lo, np.asarray(plot_px, dtype=np.float64)
    screen = (xy - lo) / np.where(span > 0, span, 1.0) * size
    screen[:, 1] = size[1] - screen[:, 1]  # y down
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
        if extent is not None:  # inside the plot before anything else: past its edge, a label is cut
            inside = np.all((centres >= half[i]) & (centres <= size - half[i]), axis=1)
            score = score - 2.0 * ~inside
        best = centres[int(np.argmax(score))]
        # a box that fits nowhere inside is pushed in
        placed[int(i)] = best if extent is None else np.clip(best, half[i], np.maximum(half[i],
                                                                                     size - half[i]))
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


def latent_forming(xy: np.ndarray, mu_xy: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   steps: np.ndarray, accuracy: np.ndarray, height: int = 520,
                   plot_width: int = 440) -> go.Figure:
    """The latent space forming during training: one frame per snapshot (images as points
    coloured by true class, class means as stars), with play / pause and a slider of steps; it
    opens on the last frame. Arrays as :func:`ibinn.run_snapshots.load_snapshots` gives them, aligned by
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
