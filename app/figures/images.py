"""Images for display: a model's float images as RGB pixels, and grids of them with labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


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
