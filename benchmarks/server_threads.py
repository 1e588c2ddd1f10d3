"""The dashboard's model work with 1, 2, … torch threads: idle, and while a Train-page job trains.

    python benchmarks/server_threads.py [--repeat 3] [--threads 1,2]

Times what the pages compute when a visitor changes something (a new OoD trajectory, a sample grid,
an interpolation; the demo set through a model that ships no scores) on the zoo's Fashion-MNIST and
CIFAR-10 γ = 1 models, with each number of torch threads, in two phases: the server alone, and
beside a training job started through :class:`ibinn.jobs.JobManager` exactly as the Train page
starts one (a worker process at lower priority, torch on all cores but one; the page's first run,
made longer so that it outlasts the measurement). Prints a Markdown table of median wall-clock
milliseconds. It is why the server leaves torch's threads at their default (every core), even while
a job trains: see the README's "Torch threads in the server".
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from ibinn import explore, limits, zoo
from ibinn.data import load_demo
from ibinn.jobs import FIRST_RUN, JobManager


def workloads() -> dict[str, Callable[[], object]]:
    """The model work behind the pages' interactions, on the zoo's γ = 1 models."""
    work = {}
    for family, transform in (("fashion-mnist", "noise"), ("cifar10", "rgb-rotation")):
        model = zoo.load(f"{family}/gamma-1", device="cpu")
        images = load_demo(family).images
        short = "FM" if family == "fashion-mnist" else "CIFAR-10"
        work |= {
            f"{short}: OoD trajectory (13 images)": lambda m=model, x=images[5], t=transform:
                explore.trajectory(m, x, t, np.linspace(0, 0.3, 13), 1000.0),
            f"{short}: interpolation (9 images)": lambda m=model, x=images:
                explore.interpolation(m, x[3], x[7]),
            f"{short}: sample grid (10 x 8)": lambda m=model:
                explore.sample_grid(m, 8, temperature=0.7, seed=1),
            f"{short}: demo set (500 images)": lambda m=model, x=images[:500]: m.infer(x),
        }
    return work


def median_ms(action: Callable[[], object], repeat: int) -> float:
    action()  # warm-up: first calls allocate
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(work: dict[str, Callable[[], object]], threads: list[int], repeat: int
            ) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for name, action in work.items():
        out[name] = {}
        for n in threads:
            torch.set_num_threads(n)
            out[name][n] = median_ms(action, repeat)
    return out


def with_a_job(runs: str) -> JobManager:
    """A Train-page job that trains for longer than the measurement takes; returns its manager
    once the worker trains."""
    manager = JobManager(runs, limits=dataclasses.replace(limits.current(), max_job_minutes=1e9))
    manager.submit(dataclasses.replace(FIRST_RUN, epochs=2000.0, snapshots=0), "bench", "bench")
    deadline = time.monotonic() + 120
    while not any(j.status == "running" and j.latest for j in manager.jobs("bench")):
        if time.monotonic() > deadline or not manager.jobs("bench")[0].active:
            manager.shutdown()
            raise SystemExit(f"the training job did not start: {manager.jobs('bench')[0]}")
        time.sleep(0.5)
    return manager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per cell (median)")
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                        help="comma-separated thread counts to compare")
    args = parser.parse_args()
    threads = sorted({int(n) for n in args.threads.split(",")})
    work = workloads()
    results = {"server alone": measure(work, threads, args.repeat)}
    with tempfile.TemporaryDirectory() as runs:
        manager = with_a_job(runs)
        try:
            results["a training job running"] = measure(work, threads, args.repeat)
        finally:
            manager.shutdown()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}; median of {args.repeat} (ms)\n")
    head = " | ".join(f"{phase}, {n} thread{'s' * (n > 1)}" for phase in results for n in threads)
    print(f"| work | {head} |")
    print("|---|" + "---:|" * (len(results) * len(threads)))
    for name in work:
        cells = " | ".join(f"{results[phase][name][n]:.0f}" for phase in results for n in threads)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
