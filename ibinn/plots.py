"""The figures of a γ sweep (the paper's Fig. 6, metric vs γ), from ``sweep.json`` rows or model
cards: interactive plotly (:func:`gamma_curves`, also the dashboard's) and static matplotlib PNGs.

The figure libraries come with the ``plots`` extra (``pip install 'ibinn[plots]'``; the ``app``
extra includes it) and are imported only when a figure is drawn, so this module imports without
them; :func:`missing_libraries` says up front what a figure file would need.

Example:
    >>> from ibinn import plots
    >>> plots.axis_label("ib", float("inf")), plots.library_for("fig6.html")
    ('∞', 'plotly')
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from pathlib import Path

from .checkpoint import atomic_write

#: How to get the figure libraries, for messages that find them missing.
INSTALL = "pip install 'ibinn[plots]'"

#: The metrics of Fig. 6: key → (section of an evaluation report, name there, panel title).
CURVES = {
    "error": ("test", "error", "test error (%) ↓"),
    "bits_per_dim": ("test", "bits_per_dim", "bits/dim ↓"),
    "calibration_geo_mean": ("test", "calibration_geo_mean", "calibration geo. mean (%) ↓"),
    "ece": ("test", "ece", "ECE (%) ↓"),
    "entropy_increase": ("ood_average", "entropy_increase", "OoD entropy increase (nats) ↑"),
    "auc": ("ood_average", "auc_typicality", "OoD ROC-AUC, geometric mean (%) ↑"),
}

#: Rates that may span decades along γ (near chance at γ = 0, a few percent elsewhere): drawn on a
#: log axis when they do. Differences such as the entropy increase stay linear.
LOG_SCALE_CURVES = ("error", "calibration_geo_mean", "ece")

#: Modes that lie on the IB path along γ (γ = 0 and γ = ∞ at its ends).
GAMMA_PATH_MODES = ("ib", "lx-only", "ly-only")


def headline(report: dict) -> dict[str, float | None]:
    """The Fig. 6 metrics (keys of ``CURVES``) of an evaluation report or model card's metrics,
    None where unmeasured or not finite."""
    values = {key: (report.get(section) or {}).get(name)
              for key, (section, name, _) in CURVES.items()}
    return {k: v if v is not None and math.isfinite(v) else None for k, v in values.items()}


def library_for(path: str | Path) -> str:
    """The library that draws a figure file: plotly for ``.html``, matplotlib for a PNG."""
    return "plotly" if Path(path).suffix == ".html" else "matplotlib"


def missing_libraries(paths: list[str | Path]) -> list[str]:
    """The libraries that writing the figure files ``paths`` needs and that do not import here."""
    missing = []
    for name in dict.fromkeys(library_for(p) for p in paths):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def plot_positions(rows: list[dict]) -> list[float]:
    """Where each run (a dict with ``mode``, ``gamma``, ``dim``) sits on the log γ axis: finite γ
    at γ, γ = 0 one decade left of the smallest finite γ, γ = ∞ one decade right of the largest,
    class-NLL at β = 1, i.e. γ = 1/dim (paper section 3.3)."""
    finite = [r["gamma"] for r in rows if r["mode"] == "ib" and 0 < r["gamma"] < math.inf]
    lo, hi = (min(finite), max(finite)) if finite else (0.1, 10.0)

    def position(mode: str, gamma: float, dim: int) -> float:
        if mode.startswith("class-nll"):
            return 1.0 / dim
        if mode == "lx-only" or gamma == 0:
            return lo / 10
        if mode == "ly-only" or math.isinf(gamma):
            return hi * 10
        return gamma

    return [position(r["mode"], r["gamma"], r["dim"]) for r in rows]


def axis_label(mode: str, gamma: float) -> str:
    """How the γ axis names a run's position: ``0`` and ``∞`` at the ends, class-NLL."""
    if mode.startswith("class-nll"):
        return "class-NLL"
    if mode == "lx-only" or gamma == 0:
        return "0"
    if mode == "ly-only" or math.isinf(gamma):
        return "∞"
    return f"{gamma:g}"


@dataclasses.dataclass
class _Figure6:
    """What both renderings of Fig. 6 draw: per metric, the IB path along γ (a line) and the
    runs off it (class-NLL, lone markers), at log10 positions with named ticks."""

    panels: list[str]  # keys of CURVES that some run or baseline measured
    on_path: dict[str, list[tuple[float, float, str]]]  # key → (log10 γ position, value, name)
    apart: dict[str, list[tuple[float, float, str]]]
    baselines: dict[str, dict[str, float | None]]  # name → headline
    ticks: list[tuple[float, str]]  # (log10 position, label)

    @classmethod
    def of(cls, rows: list[dict], baselines: dict[str, dict] | None) -> _Figure6:
        runs = sorted(zip(plot_positions(rows), rows, strict=True), key=lambda p: p[0])
        lines = {name: headline(report) for name, report in (baselines or {}).items()}
        values = [(math.log10(pos), row, headline(row["report"])) for pos, row in runs]
        panels = [k for k in CURVES if any(h[k] is not None for *_, h in values)
                  or any(b[k] is not None for b in lines.values())] or ["error"]
        on_path = {k: [(x, h[k], r["name"]) for x, r, h in values
                       if h[k] is not None and r["mode"] in GAMMA_PATH_MODES] for k in panels}
        apart = {k: [(x, h[k], r["name"]) for x, r, h in values
                     if h[k] is not None and r["mode"] not in GAMMA_PATH_MODES] for k in panels}
        ticks = dict((x, axis_label(r["mode"], r["gamma"])) for x, r, _ in values)
        return cls(panels, on_path, apart, lines, sorted(ticks.items()))

    def log_ticks(self, key: str) -> list[float]:
        """1-2-5 ticks for a panel that reads better on a log scale (one of ``LOG_SCALE_CURVES``,
        its values spanning more than a decade: the error of γ = 0 near chance would flatten the
        rest); empty for a linear panel."""
        if key not in LOG_SCALE_CURVES:
            return []
        ys = [y for _, y, _ in self.on_path[key] + self.apart[key]]
        ys += [b[key] for b in self.baselines.values() if b[key] is not None]
        if not ys or min(ys) <= 0 or max(ys) <= 10 * min(ys):
            return []
        lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)]
        return [t for t in ticks if min(ys) / 2 <= t <= max(ys) * 2]

    @property
    def x_span(self) -> list[float]:
        """The γ range the baselines' horizontal lines span."""
        xs = [x for x, _ in self.ticks] or [0.0, 1.0]
        return [min(xs) - 0.2, max(xs) + 0.2]


def gamma_curves(rows: list[dict], baselines: dict[str, dict] | None = None, title: str = "",
                 note: str = ""):
    """Fig. 6 as an interactive plotly figure: one panel per metric, metric vs γ on a log axis.

    ``rows``: runs as dicts with ``name``, ``mode``, ``gamma``, ``dim`` and ``report`` (an
    ``ibinn.evaluate`` report or a card's metrics): ``sweep.json`` rows, ``ibinn.zoo.sweep_rows``;
    ``baselines``: name → report of discriminative classifiers, drawn as dashed horizontal lines;
    ``note``: a caveat printed under the title. Metrics no run measured get no panel.
    """
    from plotly.subplots import make_subplots

    fig6 = _Figure6.of(rows, baselines)
    cols = min(3, len(fig6.panels))
    nrows = math.ceil(len(fig6.panels) / cols)
    fig = make_subplots(rows=nrows, cols=cols, vertical_spacing=0.18, horizontal_spacing=0.07,
                        subplot_titles=[CURVES[k][2] for k in fig6.panels])
    tickvals, ticktext = zip(*fig6.ticks, strict=True) if fig6.ticks else ((), ())
    in_legend: set[str] = set()  # each baseline named once, all its panels toggled together
    for i, key in enumerate(fig6.panels):
        at = dict(row=i // cols + 1, col=i % cols + 1)
        _plotly_runs(fig, fig6, key, at)
        _plotly_baselines(fig, fig6, key, at, in_legend)
        fig.update_xaxes(tickvals=tickvals, ticktext=ticktext, title_text="γ (log scale)", **at)
        if ticks := fig6.log_ticks(key):
            fig.update_yaxes(type="log", tickvals=ticks, title_text="log scale", **at)
    _plotly_layout(fig, nrows, title, note)
    return fig


def _plotly_runs(fig, fig6: _Figure6, key: str, at: dict) -> None:
    """A panel's runs: the IB path along γ as a line, the runs off it as lone markers."""
    import plotly.graph_objects as go

    for pts, on_path in ((fig6.on_path[key], True), (fig6.apart[key], False)):
        if not pts:
            continue
        x, y, text = zip(*pts, strict=True)
        fig.add_trace(go.Scatter(
            x=x, y=y, text=text, mode="lines+markers" if on_path else "markers",
            name=CURVES[key][2], showlegend=False, line=dict(color="#1f77b4"),
            marker=dict(symbol="circle" if on_path else "diamond", size=8 if on_path else 11,
                        color="#1f77b4" if on_path else "#ff7f0e"),
            hovertemplate="%{text}<br>%{y:.4g}<extra></extra>"), **at)


def _plotly_baselines(fig, fig6: _Figure6, key: str, at: dict, in_legend: set[str]) -> None:
    """A panel's baselines as dashed horizontal lines, each named in the legend once (the names
    already there are in ``in_legend``, which this adds to)."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    for j, (name, values) in enumerate(fig6.baselines.items()):
        if values[key] is None:
            continue
        fig.add_trace(go.Scatter(
            x=fig6.x_span, y=[values[key]] * 2, mode="lines", name=name, legendgroup=name,
            showlegend=name not in in_legend,
            line=dict(dash="dash", color=qualitative.D3[(j + 2) % len(qualitative.D3)]),
            hovertemplate=f"{name}<br>%{{y:.4g}}<extra></extra>"), **at)
        in_legend.add(name)


def _plotly_layout(fig, nrows: int, title: str, note: str) -> None:
    """The title (with ``note`` under it), the figure's height and the legend below the panels."""
    if note:
        title = f"{title}<br><sup>{note}</sup>" if title else f"<sup>{note}</sup>"
    # 60 px even without a title: the first row's panel titles stay clear of plotly's toolbar
    top, bottom = 90 if note else 60, 85
    height = 300 * nrows + top
    # the legend sits below the last row's axis title: 62 px, as a fraction of the plotting area
    fig.update_layout(height=height, title=title or None, margin=dict(l=10, r=10, t=top, b=bottom),
                      legend=dict(orientation="h", yanchor="top", y=-62 / (height - top - bottom),
                                  x=0, title_text="discriminative baselines"))


def _png(fig6: _Figure6, path: Path, title: str, note: str) -> None:
    """Fig. 6 as a static matplotlib PNG (for reports and READMEs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    cols = min(3, len(fig6.panels))
    nrows = math.ceil(len(fig6.panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.7 * cols, 3.6 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(fig6.panels):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, fig6.panels, strict=False):
        for pts, style in ((fig6.on_path[key], "o-"), (fig6.apart[key], "D")):
            if not pts:
                continue
            x, y, _ = zip(*pts, strict=True)
            ax.plot(x, y, style, color="C0" if style == "o-" else "C1")
            for xi, yi, name in pts:
                ax.annotate(name, (xi, yi), fontsize=7, textcoords="offset points", xytext=(0, 4))
        for j, (name, values) in enumerate(fig6.baselines.items()):
            if values[key] is not None:
                ax.plot(fig6.x_span, [values[key]] * 2, "--", color=f"C{j + 2}", label=name)
        ax.set_xticks([x for x, _ in fig6.ticks], [t for _, t in fig6.ticks], fontsize=8)
        ticks = fig6.log_ticks(key)
        ax.set_title(CURVES[key][2] + (" (log scale)" if ticks else ""), fontsize=9)
        if ticks:
            ax.set_yscale("log")
            ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
            ax.yaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
    if fig6.baselines:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=len(labels),
                   title="discriminative baselines", title_fontsize=8)
    fig.suptitle(f"{title}\n(γ = 0 and ∞ drawn at the ends, class-NLL at γ = 1/dim)")
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.05 if note or fig6.baselines else 0, 1, 1))
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_curves(rows: list[dict], path: str | Path, baselines: dict[str, dict] | None = None,
                 data: str = "", note: str = "") -> Path:
    """Write Fig. 6 of ``rows`` (see ``gamma_curves``) as interactive HTML for a ``.html`` path,
    as a PNG otherwise; ``data`` names the data set, ``note`` is its caveat (``dataset_note``)."""
    path = Path(path)
    title = f"IB-INN{' on ' + data if data else ''}: metrics vs γ"
    if path.suffix == ".html":
        fig = gamma_curves(rows, baselines, title, note)
        atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
    else:
        atomic_write(path, lambda tmp: _png(_Figure6.of(rows, baselines), Path(tmp), title, note))
    return path
