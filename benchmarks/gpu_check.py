"""One command for a machine with a GPU: does everything work on CUDA, and how fast is it?

Checks (each prints PASS or FAIL and why; the exit status is the number of failures):

1. every shipped model loads on CUDA and gives the CPU's posteriors and bits/dim on the demo
   images (to 1e-3), and inverts its own latents;
2. the training step runs without a single host-device synchronisation
   (``torch.cuda.set_sync_debug_mode("error")`` around steps that make no report), fp32 and bf16;
3. ``ibinn.train`` trains a small model on the demo data on CUDA, compiled and eager, to a finite
   loss and a test error far below chance;
4. then the throughput table of ``benchmarks/throughput.py`` (eager and compiled, fp32 and bf16,
   % of the device's own matmul peak) for the ``small`` and ``paper`` presets at the batch sizes
   given.

    python benchmarks/gpu_check.py                    # about 5-10 minutes on an H200
    python benchmarks/gpu_check.py --skip-throughput  # the checks alone, about 2 minutes

Needs CUDA, FrEIA and the demo data (``pretrained/*/demo.npz``; with ``--no-zoo`` the shipped
models are not needed, which is how the code travels to a GPU machine without them: see the
README, "Training on a GPU").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import ibinn
from ibinn.device import Distributed
from ibinn.train import TrainConfig, _Run, train

ROOT = Path(__file__).resolve().parents[1]
FAILURES: list[str] = []


def check(name: str):
    def wrap(fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                detail = fn(*args, **kwargs)
                print(f"PASS {name} ({time.perf_counter() - start:.1f} s){': ' + detail if detail else ''}",
                      flush=True)
            except Exception as err:
                FAILURES.append(name)
                print(f"FAIL {name}: {type(err).__name__}: {err}", flush=True)
                traceback.print_exc(limit=3)
        return run
    return wrap


@check("shipped models on CUDA match the CPU")
def zoo_matches_cpu() -> str:
    worst = 0.0
    cards = ibinn.zoo.list_models()
    for card in cards:
        demo = ibinn.load_dataset(f"demo:{card.family}", "test").images[:256]
        cpu, gpu = ibinn.load(card.name, device="cpu"), ibinn.load(card.name, device="cuda")
        a, b = cpu.infer(demo), gpu.infer(demo)
        worst = max(worst, float((a.proba - b.proba).abs().max()))
        if a.bits_per_dim is not None:
            worst = max(worst, float((a.bits_per_dim - b.bits_per_dim).abs().max()))
            z = b.z[:16]
            back = gpu.decode(z)
            assert torch.isfinite(back).all(), f"{card.name}: decode gave non-finite images"
        assert worst < 1e-3, f"{card.name}: CPU and CUDA differ by {worst:.2e}"
    return f"{len(cards)} models, largest difference {worst:.1e}"


@check("training steps make no host-device synchronisation")
def no_sync_steps() -> str:
    seen = []
    for amp in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(dataset="demo:cifar10", preset="small", batch_size=256, epochs=100,
                                 device="cuda", compile="off", amp=amp, out=f"{tmp}/run")
            run = _Run.start(config, torch.device("cuda"), Distributed(), resume=False)
            run.model.train()
            for _ in range(3):  # warm-up: allocations, the epoch's permutation, cuBLAS handles
                run.train_step()
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(10):
                    run.train_step()
            finally:
                torch.cuda.set_sync_debug_mode(0)
            figures = run.report()
            assert all(map(torch.isfinite, map(torch.tensor, figures.values()))), figures
            seen.append(f"{'bf16' if amp else 'fp32'} loss {figures['loss']:.3f}")
    return ", ".join(seen)


@check("ibinn.train on CUDA, eager and compiled")
def trains_on_cuda() -> str:
    seen = []
    for compile_ in ("off", "on"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = train(TrainConfig(dataset="demo:fashion-mnist", preset="small", epochs=3,
                                       batch_size=128, device="cuda", compile=compile_,
                                       out=f"{tmp}/run"), progress=False)
            error = result.metrics["test_error"]
            assert error < 0.5, f"compile={compile_}: test error {error:.3f}"
            seen.append(f"compile {compile_}: test error {100 * error:.1f}% in "
                        f"{time.perf_counter() - start:.0f} s")
    return "; ".join(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--no-zoo", action="store_true", help="skip the shipped-model check")
    parser.add_argument("--batches", default="256,1024", help="throughput batch sizes")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}",
          flush=True)
    if not args.no_zoo:
        zoo_matches_cpu()
    no_sync_steps()
    trains_on_cuda()
    if not args.skip_throughput:
        for batch in args.batches.split(","):
            for amp in ([], ["--amp"]):
                cmd = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cuda",
                       "--presets", "small,paper", "--datasets", "demo:cifar10", "--batch", batch,
                       "--steps", "20", *amp]
                print("$ " + " ".join(cmd[1:]), flush=True)
                if subprocess.run(cmd).returncode:
                    FAILURES.append(f"throughput batch {batch} {amp}")
    print(f"{len(FAILURES)} failure(s)" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return len(FAILURES)


if __name__ == "__main__":
    sys.exit(main())
