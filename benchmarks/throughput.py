"""Training and inference throughput against the hardware's limit, per preset and image shape.

For each preset the script prints the model's own FLOPs per image (``torch.utils.flop_counter``:
forward + backward for training, forward for inference), then, for each way of running it, the
images per second, the achieved GFLOP/s and their share of the device's dense-matmul peak measured
in the same run (fp32; on a GPU also bf16):

- ``ibinn train``: the engine's real training step (:class:`ibinn.train._Run`: the batch made on
  the device with augmentation, dequantisation, noise and label smoothing, the IB loss, the NaN
  guard, gradient clipping, the fused optimiser, the running figures), eager and compiled;
- ``plain FrEIA``: a textbook loop on the very same network (pre-made inputs, the NLL
  ``‖z‖²/2 − log|det J|``, Adam, no extras), eager: the reference the engine must beat;
- ``infer``: :meth:`ibinn.IBINN.infer` (latents, posteriors, bits/dim), eager and compiled.

``--layouts nchw,channels_last`` times both memory layouts of the model and its batches (the
engine picks channels-last on CUDA and on CPUs that train in bf16: ``ibinn.run_data.memory_format``).

Each figure is the median of ``--repeats`` timed runs of ``--steps`` steps. Compilation time is
printed separately (it is paid once per run; ``ibinn train --compile auto`` compiles runs long
enough to repay it).

    python benchmarks/throughput.py                        # Fashion-MNIST and CIFAR-10 shapes
    python benchmarks/throughput.py --presets small --datasets demo:cifar10 --modes eager
    python benchmarks/throughput.py --datasets demo:cifar10 --amp --layouts nchw,channels_last
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import ibinn
from ibinn.device import Distributed, compile_blocker, matmul_peak_gflops
from ibinn.train import TrainConfig, _Run

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(fn, images_per_call: int, steps: int, repeats: int, device: torch.device) -> float:
    """Median images/s of ``repeats`` timings of ``steps`` calls (after one warm-up call)."""
    fn()
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        rates.append(images_per_call * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@contextlib.contextmanager
def _run(dataset: str, preset: str, batch: int, device: torch.device, compile_: str, amp: bool,
         layout: str = "auto"):
    """The engine's training run on ``dataset`` (no files kept), in the engine's memory layout or
    in ``layout``."""
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(dataset=dataset, preset=preset, batch_size=batch, epochs=1000,
                             device=str(device), compile=compile_, amp=amp, val_size=100,
                             out=f"{tmp}/run")
        run = _Run.start(config, device, Distributed(), resume=False)
        if layout != "auto":  # before the first step: the optimiser holds the same parameters
            run.layout = LAYOUTS[layout]
            run.model.to(memory_format=run.layout)
        run.model.train()
        yield run


def bench(dataset: str, preset: str, batch: int, steps: int, repeats: int, device: torch.device,
          modes: list[str], amp: bool, layout: str = "auto") -> list[dict]:
    rows = []
    with _run(dataset, preset, batch, device, "off", amp, layout) as run:
        layout_name = {v: k for k, v in LAYOUTS.items()}[run.layout]
        x, y = run.batch()
        train_flops = _flops(run.train_step) / batch
        infer_images = run.train_data.images[: 4 * batch].cpu()
        infer_flops = _flops(lambda: run.model.infer(infer_images)) / len(infer_images)
        params = run.model.num_parameters()

        if "eager" in modes:
            rows.append({"what": "ibinn train", "mode": "eager",
                         "rate": _rate(run.train_step, batch, steps, repeats, device),
                         "flops": train_flops})
            reference = ibinn.model.build_inn(run.model.config).to(device, memory_format=run.layout)
            ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-3)

            def reference_step():
                z, log_det = reference(x)
                loss = (0.5 * z.pow(2).sum(1) - log_det).mean()
                ref_opt.zero_grad(set_to_none=True)
                loss.backward()
                ref_opt.step()

            rows.append({"what": "plain FrEIA train", "mode": "eager",
                         "rate": _rate(reference_step, batch, steps, repeats, device),
                         "flops": train_flops})
            rows.append({"what": "infer", "mode": "eager",
                         "rate": _rate(lambda: run.model.infer(infer_images), len(infer_images),
                                       max(2, steps // 4), repeats, device),
                         "flops": infer_flops})
    if "compiled" in modes:
        blocker = compile_blocker(device)
        if blocker:
            print(f"  compiled rows skipped: {blocker}")
            return rows
        with _run(dataset, preset, batch, device, "on", amp, layout) as run:
            start = time.perf_counter()
            run.train_step()
            _sync(device)
            compile_train = time.perf_counter() - start
            rows.append({"what": "ibinn train", "mode": "compiled",
                         "rate": _rate(run.train_step, batch, steps, repeats, device),
                         "flops": train_flops, "compile_s": compile_train})
            model = run.model.eval()
            model.compile_inference()
            start = time.perf_counter()
            model.infer(infer_images)
            compile_infer = time.perf_counter() - start
            rows.append({"what": "infer", "mode": "compiled",
                         "rate": _rate(lambda: model.infer(infer_images), len(infer_images),
                                       max(2, steps // 4), repeats, device),
                         "flops": infer_flops, "compile_s": compile_infer})
    for row in rows:
        row |= {"dataset": dataset, "preset": preset, "params": params, "layout": layout_name}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="small", help="comma-separated (tiny, small, paper)")
    parser.add_argument("--datasets", default="demo:fashion-mnist,demo:cifar10",
                        help="comma-separated; the image shape and classes come from the data")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast (CUDA, or a CPU with AVX-512 BF16 / AMX)")
    parser.add_argument("--layouts", default="auto",
                        help="comma-separated memory layouts: auto (the engine's), nchw, channels_last")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = ibinn.resolve_device(args.device)
    peaks = {"fp32": matmul_peak_gflops(device.type)}
    if device.type == "cuda" or args.amp:  # on a CPU, --amp is measured against its own bf16 peak
        peaks["bf16"] = matmul_peak_gflops(device.type, "bfloat16")
    peak = peaks["bf16" if args.amp else "fp32"]  # the best seen: measured again at the end
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats} x {args.steps} steps")
    print("matmul peak: " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peaks.items())
          + f"; % of peak below is of {'bf16' if args.amp else 'fp32'}")
    header = (f"{'data':18} {'preset':7} {'params':>7} {'layout':13} {'what':18} {'mode':9} {'GFLOP/img':>9} "
              f"{'img/s':>8} {'GFLOP/s':>8} {'% peak':>7} {'compile s':>9}")
    print(header)
    print("-" * len(header))
    for dataset in args.datasets.split(","):
        for preset, layout in itertools.product(args.presets.split(","), args.layouts.split(",")):
            rows = bench(dataset, preset, args.batch, args.steps, args.repeats, device,
                         args.modes.split(","), args.amp, layout)
            for r in rows:
                gflops = r["flops"] * r["rate"] / 1e9
                compile_s = f"{r['compile_s']:9.1f}" if "compile_s" in r else f"{'':9}"
                print(f"{r['dataset']:18} {r['preset']:7} {r['params'] / 1e6:6.2f}M {r['layout']:13} "
                      f"{r['what']:18} "
                      f"{r['mode']:9} {r['flops'] / 1e9:9.4f} {r['rate']:8.0f} {gflops:8.1f} "
                      f"{100 * gflops / peak:6.1f}% {compile_s}")
            by = {(r["what"], r["mode"]): r["rate"] for r in rows}
            ref = by.get(("plain FrEIA train", "eager"))
            for mode in ("eager", "compiled"):
                if ref and ("ibinn train", mode) in by:
                    print(f"  ibinn train ({mode}) / plain FrEIA (eager): "
                          f"{by[('ibinn train', mode)] / ref:.2f}x")
    matmul_peak_gflops.cache_clear()
    again = matmul_peak_gflops(device.type, "bfloat16" if args.amp else "float32")
    print(f"matmul peak measured again at the end: {again:,.0f} GFLOP/s (at the start: {peak:,.0f}); "
          f"on a shared or throttled machine the spread of the two is the error bar of '% peak'")


if __name__ == "__main__":
    main()
