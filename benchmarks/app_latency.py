"""Dashboard latency on this machine: first render of every page and warm main interactions.

    python benchmarks/app_latency.py [--repeat 4] [--skip-umap]

Runs the app in this process with ``streamlit.testing.v1.AppTest`` (the server side of a real
session: the page script with its model work, caches and figure building; not the browser's
drawing). "First render" clears every ``st.cache_data`` / ``st.cache_resource`` first, so it is a
page opened first on a fresh server (the models are loaded and the demo set run through them);
Python imports are reported apart, as the server start. An interaction is timed from the widget
change to the end of the rerun; "first" is its first use, "warm" the median of the next
``--repeat`` uses (new values where the result is not cached, e.g. another temperature). UMAP's
first fit (behind a spinner in the app, then cached) is reported apart.

Every time is given as wall-clock seconds and, in brackets, the CPU seconds this process used:
on a machine busy with other work (e.g. training at a higher priority) the wall time is inflated,
while the CPU time stays close to what the same step takes on an idle core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app" / "main.py"
PAGES = {"Models": "models", "Latent space": "latent", "Interpolation": "interpolation",
         "Sampling": "sampling", "OoD trajectories": "ood", "γ comparison": "gamma", "Train": "train",
         "Your image": "your_image", "Generative vs discriminative": "versus"}
FIRST_RENDER_TARGET, INTERACTION_TARGET = 1.0, 0.1  #: issue 18's targets on 2 cores


def check(at) -> None:
    if at.exception:
        raise RuntimeError(at.exception[0].value)


Timing = tuple[float, float]  #: (wall-clock seconds, CPU seconds of this process)


def timed(action: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def median(times: list[Timing]) -> Timing:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def fmt(t: Timing) -> str:
    return f"{t[0]:.2f} ({t[1]:.2f})"


def session(page: str | None = None):
    """A fresh browser session, on ``page``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=900).run()
    check(at)
    if page:
        at.switch_page(f"views/{page}.py").run()
        check(at)
    return at


def clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def first_renders() -> list[tuple[str, Timing, Timing]]:
    """(page, first render on empty caches, warm rerun) per page."""
    rows = []
    for title, page in PAGES.items():
        at = session()
        clear_caches()
        first = timed(lambda at=at, page=page: at.switch_page(f"views/{page}.py").run())
        check(at)
        warm = median([timed(at.run) for _ in range(3)])
        rows.append((title, first, warm))
    return rows


def interaction(page: str, change: Callable, values: list) -> tuple[Timing, Timing]:
    """(first, warm median) seconds of ``change(at, value).run()`` for each value in turn."""
    at = session(page)
    times = []
    for value in values:
        times.append(timed(lambda value=value: change(at, value).run()))
        check(at)
    return times[0], median(times[1:])


def interactions(repeat: int, umap: bool) -> list[tuple[str, Timing, Timing]]:
    from ibinn import zoo

    def alternate(a, b) -> list:
        return [a if i % 2 == 0 else b for i in range(repeat + 1)]

    selector = session().multiselect(key="selected_models")
    default = selector.value[0] if selector.value else None
    # another model of the default's data set (a zoo name is "<family>/<model>")
    others = [m for m in selector.options if default and m != default
              and m.split("/")[0] == default.split("/")[0]]
    rows = [
        ("Latent space: change projection (PCA of μ_y ↔ PCA of z)",
         *interaction("latent", lambda at, v: at.radio(key="latent_projection").set_value(v),
                      alternate("pca", "pca-means"))),
        ("Latent space: colour by true / predicted class",
         *interaction("latent", lambda at, v: at.radio(key="latent_color").set_value(v),
                      alternate("predicted class", "true class"))),
        ("Latent space: plane through three class means ↔ PCA of μ_y",
         *interaction("latent", lambda at, v: at.radio(key="latent_projection").set_value(v),
                      alternate("class-plane", "pca-means"))),
        ("Latent space: confusion matrix (first: open it; warm: another true class)",
         *interaction("latent", lambda at, v: at.radio(key="latent_question").set_value("confusion")
                      if v is None else at.selectbox(key="latent_cm_true").set_value(v),
                      [None, *(1 + i % 9 for i in range(repeat))])),
        ("Latent space: nearest neighbours (first: open, the demo latents; warm: another image)",
         *interaction("latent", lambda at, v: at.radio(key="latent_question").set_value("neighbours")
                      if v is None else at.number_input(key="latent_nn_index").set_value(v),
                      [None, *(10 + i for i in range(repeat))])),
        ("Sampling: change temperature (new samples each time)",
         *interaction("sampling", lambda at, v: at.slider(key="sample_temperature").set_value(v),
                      [0.5 + 0.05 * i for i in range(repeat + 1)])),
        ("Sampling: independent noise per class on / off",
         *interaction("sampling", lambda at, v: at.toggle(key="sample_independent").set_value(v),
                      alternate(True, False))),
        ("OoD: change the largest strength α / amplitude (new trajectory)",
         *interaction("ood", lambda at, v: next(s for s in at.slider if s.key.startswith("ood_max_"))
                      .set_value(v), [0.2 + 0.02 * i for i in range(repeat + 1)])),
        ("OoD: step through the strength slider",
         *interaction("ood", lambda at, v: at.select_slider(key="ood_step").set_value(v),
                      list(range(repeat + 1)))),
        ("OoD: change the image (new trajectory)",
         *interaction("ood", lambda at, v: at.selectbox(key="ood_image_class").set_value(v),
                      [1 + i % 9 for i in range(repeat + 1)])),
        ("Interpolation: change image B",
         *interaction("interpolation", lambda at, v: at.selectbox(key="interp_b_class").set_value(v),
                      [2 + i % 8 for i in range(repeat + 1)])),
        ("Your image: change the demo image",
         *interaction("your_image", lambda at, v: at.selectbox(key="yours_demo_class").set_value(v),
                      [1 + i % 9 for i in range(repeat + 1)])),
        ("Generative vs discriminative: change the largest strength (two new trajectories)",
         *interaction("versus", lambda at, v: next(s for s in at.slider
                                                   if s.key.startswith("versus_max_")).set_value(v),
                      [0.2 + 0.02 * i for i in range(repeat + 1)])),
        ("Generative vs discriminative: change the image (two new trajectories)",
         *interaction("versus", lambda at, v: at.selectbox(key="versus_image_class").set_value(v),
                      [1 + i % 9 for i in range(repeat + 1)])),
    ]
    # the zoo's discriminative models of the default's data set: the ResNet (the page's default) first
    baselines = sorted((c.name for c in zoo.list_models() if default and c.kind != "ibinn"
                        and c.family == default.split("/")[0]), key=lambda name: "resnet" not in name)
    if len(baselines) > 1:
        rows.append(("Generative vs discriminative: switch the discriminative baseline "
                     "(first: load it)",
                     *interaction("versus", lambda at, v: at.selectbox(key="versus_discriminative")
                                  .set_value(v), alternate(*baselines[1::-1]))))
    if others:
        rows.insert(2, ("Latent space: change model (sidebar; first: load + run the demo set)",
                        *interaction("latent", lambda at, v: at.multiselect(key="selected_models")
                                     .set_value([v]), alternate(others[0], default))))
    if umap:
        rows.append(("Latent space: UMAP (shipped with zoo models; else first: fit, numba "
                     "compilation included)",
                     *interaction("latent", lambda at, v: at.radio(key="latent_projection").set_value(v),
                                  alternate("umap", "pca-means"))))
    return rows


def verdict(t: Timing, target: float) -> str:
    return " / ".join("yes" if x <= target else "no" for x in t)


def machine() -> str:
    """The CPU, the cores this process may use, and whether training competes for them."""
    training = subprocess.run(["pgrep", "-f", "ibinn (sweep|train)"], capture_output=True,
                              text=True).stdout.split()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    busy = "an `ibinn` training job is running" if training else "no training running"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
            f"({len(os.sched_getaffinity(0))} usable); load average {load}; {busy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="warm repetitions per interaction")
    parser.add_argument("--skip-umap", action="store_true", help="leave out UMAP's first fit")
    args = parser.parse_args()

    def imports() -> None:
        import streamlit.logger  # bare-mode AppTest warns about its missing server on every run
        import torch  # noqa: F401 - the heavy imports of a server start
        from streamlit.testing.v1 import AppTest  # noqa: F401

        import ibinn  # noqa: F401

        session()  # a first visit: the app's own imports, with ibinn.preload (FrEIA, scikit-learn)
        streamlit.logger.set_log_level("error")  # after the first run, which configures logging

    print(f"Machine: {machine()}")
    print(f"Server start (Python imports: streamlit, torch, ibinn; a first visit, with ibinn.preload of "
          f"FrEIA and scikit-learn): {fmt(timed(imports))} s")
    print("Seconds: wall-clock (CPU time of this process).\n")

    print(f"| page | first render, empty caches | rerun | first ≤ {FIRST_RENDER_TARGET:g} s (wall / CPU) |")
    print("|---|---:|---:|:-:|")
    for title, first, warm in first_renders():
        print(f"| {title} | {fmt(first)} | {fmt(warm)} | {verdict(first, FIRST_RENDER_TARGET)} |")

    print(f"\n| interaction | first | warm, median of {args.repeat} "
          f"| warm ≤ {INTERACTION_TARGET:g} s (wall / CPU) |")
    print("|---|---:|---:|:-:|")
    for name, first, warm in interactions(args.repeat, not args.skip_umap):
        print(f"| {name} | {fmt(first)} | {fmt(warm)} | {verdict(warm, INTERACTION_TARGET)} |")
    print(f"\nafter: {machine()}")


if __name__ == "__main__":
    main()
