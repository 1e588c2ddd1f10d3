"""The γ sweep: train (or reuse) one model per γ and mode, evaluate each, and plot metric vs γ.

Run folders are ``<out>/gamma-<γ>`` and ``<out>/<mode>``; a folder that already holds a finished
model with the same settings is reused, an interrupted one is resumed. Outputs: ``sweep.json``,
``sweep.md`` (Table 1 columns), ``sweep.html`` (interactive plotly curves, paper Fig. 6) and
``sweep.png``.

Example:
    ibinn sweep --dataset fashion-mnist --gammas 0,0.1,1,10,inf --modes class-nll --epochs 8
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from .checkpoint import atomic_write
from .data import load_dataset
from .evaluate import _jsonable, dataset_note, evaluate, markdown_table, write_report
from .model import IBINN
from .train import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, TrainConfig, train

#: (key in the evaluation report, label, better) for the curves.
CURVES = [
    (("test", "error"), "Classification error %", "lower"),
    (("test", "bits_per_dim"), "Bits/dim", "lower"),
    (("test", "calibration_geo_mean"), "Calibration error, geo. mean %", "lower"),
    (("test", "ece"), "ECE %", "lower"),
    (("ood_average", "entropy_increase"), "OoD entropy increase (nats)", "higher"),
    (("ood_average", "auc_typicality"), "OoD detection AUC %", "higher"),
]


def run_name(mode: str, gamma: float) -> str:
    """``gamma-1``, ``gamma-0.1``, ``gamma-inf`` for the IB loss; the mode's name otherwise."""
    if mode != "ib":
        return mode
    return "gamma-inf" if math.isinf(gamma) else f"gamma-{gamma:g}"


def plot_position(mode: str, gamma: float, dim: int, finite: list[float]) -> float:
    """Where a run sits on the log γ axis: γ = 0 one decade left of the smallest finite γ,
    γ = ∞ one decade right of the largest, class-NLL at β = 1, i.e. γ = 1/dim (section 3.3)."""
    if mode.startswith("class-nll"):
        return 1.0 / dim
    lo, hi = (min(finite), max(finite)) if finite else (0.1, 10.0)
    if mode == "lx-only" or gamma == 0:
        return lo / 10
    if mode == "ly-only" or math.isinf(gamma):
        return hi * 10
    return gamma


#: Modes that lie on the IB path along γ (γ = 0 and γ = ∞ at its ends).
GAMMA_PATH_MODES = ("ib", "lx-only", "ly-only")


def axis_label(mode: str, gamma: float) -> str:
    """How the γ axis names a run's ``plot_position``: ``0`` and ``∞`` at the ends, class-NLL."""
    if mode.startswith("class-nll"):
        return "class-NLL"
    if mode == "lx-only" or gamma == 0:
        return "0"
    if mode == "ly-only" or math.isinf(gamma):
        return "∞"
    return f"{gamma:g}"


def curve_points(rows: list[dict], section: str, key: str
                 ) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    """(x, y, name) points of one metric: the IB runs along γ (drawn as a line), and the other
    modes (class-NLL, drawn as lone markers, since they are not a point on the γ path)."""
    finite = [r["gamma"] for r in rows if r["mode"] == "ib" and 0 < r["gamma"] < math.inf]
    pts = sorted((plot_position(r["mode"], r["gamma"], r["dim"], finite),
                  r["report"][section][key], r["name"], r["mode"]) for r in rows
                 if r["report"][section].get(key) is not None)
    on_path = [p[:3] for p in pts if p[3] in GAMMA_PATH_MODES]
    apart = [p[:3] for p in pts if p[3] not in GAMMA_PATH_MODES]
    return on_path, apart


def gamma_curves(rows: list[dict], data: str = "", note: str = ""):
    """Plotly figure: one panel per metric, metric vs γ (log axis). ``rows``: ``sweep.json`` rows;
    ``data`` names the data set in the title, ``note`` is printed under the panels."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=3, subplot_titles=[f"{label} ({better} is better)"
                                                        for _, label, better in CURVES])
    for i, ((section, key), label, _) in enumerate(CURVES):
        for pts, style in zip(curve_points(rows, section, key), ("lines+markers+text",
                                                                 "markers+text"), strict=True):
            if not pts:
                continue
            x, y, names = zip(*pts, strict=True)
            fig.add_scatter(x=x, y=y, text=names, mode=style, textposition="top center",
                            name=label, row=i // 3 + 1, col=i % 3 + 1, showlegend=False,
                            marker_symbol="circle" if style.startswith("lines") else "diamond",
                            hovertemplate="%{text}<br>" + label + ": %{y:.3f}<extra></extra>")
        fig.update_xaxes(type="log", title_text="γ (0 and ∞ at the ends)", row=i // 3 + 1,
                         col=i % 3 + 1)
    fig.update_layout(height=700, title=f"IB-INN{' on ' + data if data else ''}: metrics vs γ",
                      margin=dict(t=80, b=90 if note else 40))
    if note:
        fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0, y=-0.14,
                           xanchor="left", font=dict(size=11))
    return fig


def _png(rows: list[dict], path: Path, data: str, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r["gamma"] for r in rows if r["mode"] == "ib" and 0 < r["gamma"] < math.inf]
    at = {plot_position(r["mode"], r["gamma"], r["dim"], finite): (r["mode"], r["gamma"])
          for r in rows}
    ticks, labels = sorted(at), [at[t] for t in sorted(at)]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax, ((section, key), label, better) in zip(axes.flat, CURVES, strict=True):
        for pts, style in zip(curve_points(rows, section, key), ("o-", "D"), strict=True):
            if not pts:
                continue
            x, y, _ = zip(*pts, strict=True)
            ax.plot(x, y, style, color="C0" if style == "o-" else "C1")
            for xi, yi, n in pts:
                ax.annotate(n, (xi, yi), fontsize=7, textcoords="offset points", xytext=(0, 4))
        ax.set_xscale("log")
        ax.set_xticks(ticks, [axis_label(m, g) for m, g in labels], fontsize=8)
        ax.minorticks_off()
        ax.set_title(f"{label} ({better} better)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"IB-INN{' on ' + data if data else ''}: metrics vs γ "
                 "(γ = 0 and ∞ drawn at the ends, class-NLL at γ = 1/dim)")
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_curves(rows: list[dict], path: str | Path, data: str = "", note: str = "") -> Path:
    """Write the metric-vs-γ curves of ``rows`` (``sweep.json`` rows, or
    ``ibinn.zoo.sweep_rows`` of shipped cards) as interactive HTML for a ``.html`` path, as a PNG
    otherwise; ``data`` names the data set, ``note`` is its caveat (``dataset_note``)."""
    path = Path(path)
    if path.suffix == ".html":
        fig = gamma_curves(rows, data, note)
        atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
    else:
        atomic_write(path, lambda tmp: _png(rows, Path(tmp), data, note))
    return path


#: Settings that change where or how a run executes, not the model it makes.
_RUN_ONLY = {"out", "root", "download", "device", "checkpoint_every"}


def _check_same_settings(folder: Path, config: TrainConfig) -> None:
    """Refuse to reuse or resume a run folder that was trained with other settings."""
    saved_path = folder / CONFIG_FILE
    if not saved_path.exists():
        return
    saved = json.loads(saved_path.read_text())
    wanted = json.loads(json.dumps(config.to_json()))  # as saved: tuples become lists
    differ = sorted(k for k in wanted if k not in _RUN_ONLY and saved.get(k) != wanted[k])
    if differ:
        changes = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} asked" for k in differ)
        raise ValueError(f"{folder} holds a run with other settings ({changes}); "
                         f"choose another --out for the sweep or delete that folder")


def sweep(base: TrainConfig, gammas: list[float], modes: list[str], out: str | Path,
          ood_sets: list[str] | None = None, progress: bool = True) -> list[dict]:
    """Train or reuse one model per γ (IB loss) and per extra mode, evaluate, write the reports."""
    out = Path(out)
    runs = [("ib", g) for g in gammas] + [(m, 1.0) for m in modes]
    test = load_dataset(base.dataset, "test", base.root, base.download)
    rows = []
    for mode, gamma in runs:
        name = run_name(mode, gamma)
        config = dataclasses.replace(base, mode=mode, gamma=gamma, out=str(out / name))
        folder = Path(config.out)
        _check_same_settings(folder, config)
        if not (folder / WEIGHTS_FILE).exists() or not (folder / METRICS_FILE).exists():
            train(config, resume=True, progress=progress)
        model = IBINN.from_file(folder / WEIGHTS_FILE)
        report = evaluate(model, test, ood_sets, root=base.root, progress=progress)
        write_report(report, folder, name)
        train_metrics = json.loads((folder / METRICS_FILE).read_text())
        rows.append({"name": name, "mode": mode, "gamma": gamma, "dim": model.config.dim,
                     "train": train_metrics, "report": report})
    note = dataset_note(base.dataset)
    table = markdown_table({r["name"]: r["report"] for r in rows}, note)
    atomic_write(out / "sweep.md", lambda tmp: Path(tmp).write_text(table))
    saved = [r | {"gamma": "inf" if math.isinf(r["gamma"]) else r["gamma"]} for r in rows]
    atomic_write(out / "sweep.json", lambda tmp: Path(tmp).write_text(
        json.dumps(_jsonable(saved), indent=2)))
    for path in (out / "sweep.html", out / "sweep.png"):
        write_curves(rows, path, base.dataset, note)
    return rows
