"""Where models run: device choice, torch.compile where it is available, and torchrun's processes.

- :func:`resolve_device`: CUDA when present, else Apple's MPS, else the CPU.
- :func:`compile_blocker` / :func:`compiled`: ``torch.compile`` needs a C++ compiler on the CPU
  and Triton on a GPU; without them a run falls back to eager mode with one line saying why.
- :class:`Distributed`: the rank and world size that ``torchrun`` hands each process, and the
  process group (NCCL between GPUs, gloo between CPUs).

Example:
    >>> import torch
    >>> from ibinn.device import Distributed, resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> Distributed.from_env({}).world  # not started by torchrun: one process
    1
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

#: What :func:`resolve_device` accepts, for messages.
VALID_DEVICES = "auto, cpu, cuda, cuda:<index>, mps"


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks the best available device; anything else is checked and used.
    Raises ``ValueError`` for a device that is unknown, not supported or not available."""
    if spec is None or str(spec) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:  # torch's message lists its own backends, not ours
        raise ValueError(f"unknown device {str(spec)[:100]!r}; valid: {VALID_DEVICES}") from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {str(spec)[:100]!r} is not supported here; valid: {VALID_DEVICES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but MPS is not available")
    return device


@functools.lru_cache(maxsize=8)
def matmul_peak_gflops(device: str = "cpu", dtype: str = "float32", n: int = 2048) -> float:
    """The device's dense matmul throughput in GFLOP/s: an ``n``² product in ``dtype``, best of 5,
    measured once per process. The yardstick for "percent of peak" (``benchmarks/throughput.py``)
    and for run-time estimates."""
    a = torch.randn(n, n, device=device).to(getattr(torch, dtype))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    best = math.inf
    for _ in range(5):
        sync()
        start = time.perf_counter()
        a @ a
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively, so that bf16 autocast speeds training up: a GPU
    that supports it, or a CPU with AVX-512 BF16 or AMX instructions (oneDNN's bf16 kernels; on
    this project's 2-core AMD EPYC a CIFAR-10 ``small`` step took 0.78 s instead of 1.35 s). Other
    CPUs emulate bf16 and would slow down."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def compile_blocker(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None when it can."""
    if device.type == "cpu":
        compilers = (os.environ.get("CXX"), "c++", "g++", "clang++")
        if not any(name and shutil.which(name) for name in compilers):
            return "no C++ compiler found (torch.compile needs one on the CPU)"
    elif device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "Triton is not installed (torch.compile needs it on a GPU)"
    else:
        return f"torch.compile is not used on {device.type}"
    if sys.platform == "win32":
        return "torch.compile is not used on Windows"
    return None


def compiled(module: torch.nn.Module, device: torch.device, mode: str | None = None
             ) -> torch.nn.Module:
    """``torch.compile(module)``, or ``module`` itself with one printed line when it cannot be.

    Compilation happens at the first call; a failure there is the caller's to catch (see
    :func:`ibinn.train.train`).
    """
    blocker = compile_blocker(device)
    if blocker:
        print(f"compile: {blocker}; running eagerly", file=sys.stderr)
        return module
    return torch.compile(module, mode=mode)


@dataclass(frozen=True)
class Distributed:
    """This process's place among the processes ``torchrun`` started (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Distributed:
        env = os.environ if env is None else env
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                   int(env.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        """Rank 0, the one process that writes checkpoints, metrics and progress."""
        return self.rank == 0

    def device(self, spec: str) -> torch.device:
        """The device this rank trains on: its own GPU (``cuda:LOCAL_RANK``) when on CUDA."""
        device = resolve_device(spec)
        if self.world > 1 and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    @contextlib.contextmanager
    def process_group(self, device: torch.device) -> Iterator[None]:
        """The default process group for the run (nothing to do for a single process)."""
        import torch.distributed as dist

        if self.world == 1 or dist.is_initialized():
            yield
            return
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            yield
        finally:
            dist.destroy_process_group()

    def all_true(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` holds on every rank (so that all stop at the same step)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([0 if flag else 1], device=device)
        dist.all_reduce(value)
        return int(value) == 0

    def any_true(self, flag: bool, device: torch.device) -> bool:
        return not self.all_true(not flag, device)

    def broadcast_int(self, value: int, device: torch.device) -> int:
        """Rank 0's ``value`` on every rank (e.g. a run length measured on each)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], device=device)
        dist.broadcast(tensor, src=0)
        return int(tensor)

    @staticmethod
    def synchronize(device: torch.device) -> None:
        """Wait for the device's queued work (for timing; nothing to wait for on the CPU)."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def compute_clock(device: torch.device) -> Callable[[], float]:
    """The clock a compute budget runs on: on the CPU, the process's CPU time (all its threads: a
    second of it is a second of one core, whatever else the machine runs); on an accelerator, the
    wall clock (what the device is held for)."""
    return time.process_time if device.type == "cpu" else time.perf_counter
