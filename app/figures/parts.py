"""Drawing parts that several figures share: the class palette, reference bands and lines as
layout shapes, and the axis ranges that panels share."""

from __future__ import annotations

import numpy as np
from plotly.colors import qualitative

PALETTE = qualitative.D3 + qualitative.Set3


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


def value_range(*arrays: np.ndarray) -> tuple[float, float]:
    """The finite range of all ``arrays`` together, for panels that must share an axis."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)


def shared_ranges(*point_sets: np.ndarray, pad: float = 0.05
                  ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x and y ranges that hold every ``(N, 2)`` point set, padded by ``pad`` of the span."""
    points = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in point_sets])
    lo, hi = points.min(0), points.max(0)
    margin = pad * np.maximum(hi - lo, 1e-9)
    return ((float(lo[0] - margin[0]), float(hi[0] + margin[0])),
            (float(lo[1] - margin[1]), float(hi[1] + margin[1])))
