"""Plotly figures of the dashboard: pure functions, NumPy arrays in, ``go.Figure`` out.

Images are float arrays ``(C, H, W)`` in [0, 1] (C = 1 or 3) unless stated otherwise. The figures
set no template (Streamlit applies its theme) and draw reference lines and bands as layout shape
dicts, not with ``add_hline`` / ``add_hrect``: plotly's validation makes those cost tenths of a
second each on a slow CPU, which adds up on every rerun.

The figures live in :mod:`figures.images` (images and grids), :mod:`figures.latent` (latent
space) and :mod:`figures.scores` (curves, bars and histograms of scores), the parts they share in
:mod:`figures.parts`; the pages and ``figure_cache.figure`` name them all from here.
"""

from .images import CELL_PX, image_grid, to_rgb
from .latent import (
    LABEL_CHAR_PX,
    LABEL_FONT,
    LABEL_LINE_PX,
    label_offsets,
    latent_forming,
    latent_scatter,
    mean_labels,
    trajectory_animation,
)
from .parts import PALETTE, class_color, hband, shared_ranges, value_range, vline
from .scores import (
    confusion_heatmap,
    gamma_curves,
    histograms,
    posterior_bars,
    posterior_path,
    reliability_diagrams,
    training_curves,
    trajectory_curves,
    versus_curves,
)

__all__ = [
    "CELL_PX", "LABEL_CHAR_PX", "LABEL_FONT", "LABEL_LINE_PX", "PALETTE", "class_color",
    "confusion_heatmap", "gamma_curves", "hband", "histograms", "image_grid", "label_offsets",
    "latent_forming", "latent_scatter", "mean_labels", "posterior_bars", "posterior_path",
    "reliability_diagrams", "shared_ranges", "to_rgb", "training_curves", "trajectory_animation",
    "trajectory_curves",
    "value_range", "versus_curves", "vline",
]
