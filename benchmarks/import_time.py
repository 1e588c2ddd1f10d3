"""What `import ibinn` and the `ibinn` command cost at start, on this machine.

    python benchmarks/import_time.py [--repeat 5]

Each figure is the median of ``--repeat`` fresh interpreters (the OS's file cache warm after the
first), the commands taking turns so that a load that comes and goes on the machine falls on all
alike: ``import torch`` alone, ``import torch; import ibinn``, ``python -m ibinn --help`` and
``ibinn --help`` (the CLI's parser, torch included; the latter through the installed launcher,
e.g. a pyenv shim, which adds its own start). Wall seconds and, in brackets, the CPU seconds the
process used, which a busy machine inflates less. The number that matters is the second minus
the first, what ibinn adds to torch (target: at most 0.5 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

TARGET = 0.5


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "import torch; import ibinn": [sys.executable, "-c", "import torch; import ibinn"],
        "python -m ibinn --help": [sys.executable, "-m", "ibinn", "--help"],
    }
    if cli := shutil.which("ibinn"):
        commands["ibinn --help"] = [cli, "--help"]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            runs[name].append(timed(argv))
    median = {name: tuple(statistics.median(t[i] for t in times) for i in (0, 1))
              for name, times in runs.items()}
    print(f"{os.cpu_count()} CPU cores, median of {args.repeat} fresh processes, wall (CPU) seconds:")
    for name, (wall, cpu) in median.items():
        print(f"  {name:28} {wall:6.2f} ({cpu:.2f})")
    if not cli:
        print("  (no `ibinn` command on PATH: pip install -e .)")
    wall, cpu = (median["import torch; import ibinn"][i] - median["import torch"][i] for i in (0, 1))
    print(f"import ibinn adds {wall:.2f} s ({cpu:.2f} s CPU) to import torch "
          f"({'within' if wall <= TARGET else 'OVER'} the {TARGET} s target)")


if __name__ == "__main__":
    main()
