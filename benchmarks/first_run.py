"""The Train page's first run (:data:`ibinn.jobs.FIRST_RUN`): how long it takes, what it reaches,
and what watching it costs.

Trains the page's default run as a dashboard job does (torch on all cores but one, the rest of
the server's; snapshots on) and prints its wall-clock and CPU time, steps, points on the curves,
frames of the latent space, the held-out error on the demo set's test quarter (images the run
never saw; chance is 90 %), and the time the snapshots took (each is timed inside the run).
``--repeats`` runs it several times (a fresh folder each); ``--no-snapshots`` runs it unwatched.
On a CPU that others share, the wall-clock time is noisy: the CPU time says what the run itself
used.

    python benchmarks/first_run.py
    python benchmarks/first_run.py --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import tempfile
import time

import torch

from ibinn import train as T
from ibinn.jobs import FIRST_RUN, worker_threads


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(config: T.TrainConfig) -> dict:
    """Train ``config`` once, timing the whole run, its CPU use and its snapshots."""
    snapshot_seconds: list[float] = []
    take_snapshot = T._Run.snapshot

    def timed_snapshot(run: T._Run) -> None:
        started = time.perf_counter()
        take_snapshot(run)
        snapshot_seconds.append(time.perf_counter() - started)

    T._Run.snapshot = timed_snapshot
    reports: list[dict] = []
    try:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = T.train(config, callback=reports.append, progress=False)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    finally:
        T._Run.snapshot = take_snapshot
    return {"wall_s": wall, "cpu_s": cpu, "train_s": result.metrics["train_seconds"],
            "steps": result.metrics["steps"], "points": len(reports),
            "frames": len(snapshot_seconds), "snapshot_s": sum(snapshot_seconds),
            "test_error": result.metrics["test_error"], "n_test": result.metrics["n_test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-snapshots", action="store_true", help="train the run unwatched")
    args = parser.parse_args()
    torch.set_num_threads(worker_threads())  # as ibinn.jobs' workers do
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            config = dataclasses.replace(FIRST_RUN, device="cpu", out=f"{folder}/run",
                                         snapshots=0 if args.no_snapshots else FIRST_RUN.snapshots)
            runs.append(run_once(config))
        r = runs[-1]
        print(f"run {i + 1}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, {r['steps']} steps, "
              f"{r['points']} curve points, {r['frames']} frames ({r['snapshot_s']:.2f} s), "
              f"held-out error {100 * r['test_error']:.1f} % on {r['n_test']} images", flush=True)
    print(f"\n{FIRST_RUN.preset} preset, {FIRST_RUN.dataset}, {FIRST_RUN.epochs:g} epochs, batch "
          f"{FIRST_RUN.batch_size}, {torch.get_num_threads()} torch thread(s), "
          f"{os.cpu_count()} cores, {os.getloadavg()[0]:.1f} load average")
    for key, label in (("wall_s", "wall-clock s"), ("cpu_s", "CPU s"), ("snapshot_s", "snapshot s")):
        print(f"median {label}: {statistics.median(r[key] for r in runs):.1f}")
    print(f"median held-out accuracy: {100 * (1 - statistics.median(r['test_error'] for r in runs)):.1f} %")


if __name__ == "__main__":
    main()
