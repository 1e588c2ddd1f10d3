"""The γ sweep: train (or reuse) one model per γ and mode, evaluate each, and plot metric vs γ.

Run folders are ``<out>/gamma-<γ>`` and ``<out>/<mode>``; a folder that already holds a finished
model with the same settings is reused, an interrupted one is resumed. With several devices (by
default every CUDA device, when there are two or more) the runs train concurrently, one worker
process per device; evaluation follows in this process. Outputs: ``sweep.json``, ``sweep.md``
(Table 1 columns), and the figures of :mod:`ibinn.plots` (paper Fig. 6): ``sweep.html``
(interactive plotly curves) and ``sweep.png``, skipped with a message when the ``plots`` extra is
not installed.

Example:
    ibinn sweep --dataset fashion-mnist --gammas 0,0.1,1,10,inf --modes class-nll --epochs 8
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import plots
from .checkpoint import atomic_write
from .data import dataset_label, load_dataset
from .evaluate import dataset_note, evaluate, jsonable, markdown_table, write_report
from .model import IBINN
from .train import CONFIG_FILE, METRICS_FILE, RUN_ONLY, WEIGHTS_FILE, TrainConfig, train

FIGURES = ("sweep.html", "sweep.png")

def run_name(mode: str, gamma: float) -> str:
    """``gamma-1``, ``gamma-0.1``, ``gamma-inf`` for the IB loss; the mode's name otherwise."""
    if mode != "ib":
        return mode
    return "gamma-inf" if math.isinf(gamma) else f"gamma-{gamma:g}"


def _check_same_settings(folder: Path, config: TrainConfig) -> None:
    """Refuse to reuse or resume a run folder that was trained with other settings."""
    saved_path = folder / CONFIG_FILE
    if not saved_path.exists():
        return
    saved = json.loads(saved_path.read_text())
    wanted = json.loads(json.dumps(config.to_json()))  # as saved: tuples become lists
    differ = sorted(k for k in wanted if k not in RUN_ONLY and saved.get(k) != wanted[k])
    if differ:
        changes = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} asked" for k in differ)
        raise ValueError(f"{folder} holds a run with other settings ({changes}); "
                         f"choose another --out for the sweep or delete that folder")


def default_devices() -> list[str]:
    """Every CUDA device when there are two or more; else none: the runs then train one after
    another in this process, on the base config's device."""
    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count >= 2 else []


_worker_device = ""  # the device of this worker process (set by _start_worker)


def _start_worker(devices: multiprocessing.Queue, threads: int) -> None:
    """Give a new worker process its own device and its share of the CPU's cores."""
    global _worker_device
    # A blocking get: the parent's puts reach the pipe through a feeder thread, so a worker that
    # starts at once may find the queue still empty (get_nowait failed so in CI).
    _worker_device = devices.get(timeout=60)
    torch.set_num_threads(threads)


def _train_in_worker(config: TrainConfig) -> None:
    train(dataclasses.replace(config, device=_worker_device), resume=True, progress=False)


def _train_concurrently(configs: list[TrainConfig], devices: list[str], progress: bool) -> None:
    """Train ``configs`` in one spawned worker process per device, each taking the next run when
    it is free. The workers' torch threads share the CPU's cores equally, so that workers on one
    CPU (or feeding GPUs from it) do not oversubscribe it."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    queue = context.Queue()
    for device in devices:
        queue.put(device)
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    with ProcessPoolExecutor(len(devices), mp_context=context, initializer=_start_worker,
                             initargs=(queue, threads)) as pool:
        futures = [pool.submit(_train_in_worker, config) for config in configs]
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="sweep", unit="run",
                               disable=not progress):
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # runs not started stay untrained; a rerun resumes
            raise


def _train_runs(configs: list[TrainConfig], devices: list[str], progress: bool) -> None:
    """Train (or resume) ``configs``: concurrently on two or more devices, else one after another
    in this process, on the one device given or on each config's own."""
    if len(devices) >= 2 and len(configs) >= 2:
        _train_concurrently(configs, devices, progress)
        return
    for config in configs:
        train(dataclasses.replace(config, device=devices[0]) if devices else config, resume=True,
              progress=progress)


def sweep(base: TrainConfig, gammas: list[float], modes: list[str], out: str | Path,
          ood_sets: list[str] | None = None, progress: bool = True,
          devices: list[str] | None = None) -> list[dict]:
    """Train or reuse one model per γ (IB loss) and per extra mode, evaluate, write the reports.

    ``devices``: where the runs train, one worker process per device when there are two or more
    (the same device may be named more than once); one device: in this process, on it; ``None``:
    :func:`default_devices`.
    """
    out = Path(out)
    runs = [("ib", g) for g in gammas] + [(m, 1.0) for m in modes]
    configs = [dataclasses.replace(base, mode=mode, gamma=gamma, out=str(out / run_name(mode, gamma)))
               for mode, gamma in runs]
    for config in configs:  # every folder checked before any training
        _check_same_settings(Path(config.out), config)
    figures = [out / name for name in FIGURES]
    if missing := plots.missing_libraries(figures):  # said now, not after hours of training
        skipped = [p for p in figures if plots.library_for(p) in missing]
        print(f"sweep: {' and '.join(missing)} not installed, so no {', '.join(p.name for p in skipped)}"
              f" ({plots.INSTALL} for the figures)", file=sys.stderr)
        figures = [p for p in figures if p not in skipped]
    unfinished = [c for c in configs
                  if not all((Path(c.out) / file).exists() for file in (WEIGHTS_FILE, METRICS_FILE))]
    _train_runs(unfinished, default_devices() if devices is None else devices, progress)
    test = load_dataset(base.dataset, "test", base.root, base.download)
    rows = []
    for (mode, gamma), config in zip(runs, configs, strict=True):
        folder, name = Path(config.out), run_name(mode, gamma)
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
        json.dumps(jsonable(saved), indent=2)))
    for path in figures:
        plots.write_curves(rows, path, data=dataset_label(base.dataset), note=note)
    return rows
