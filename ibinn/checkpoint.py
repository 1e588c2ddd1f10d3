"""Safe, atomic checkpoint files.

Model weights are safetensors files whose metadata holds the model's JSON config; training state
(optimizer, schedule, step) is a ``torch.save`` file of plain tensors and containers, read back with
``weights_only=True``. Every write goes to a temporary file first and is renamed into place, so a
killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "ibinn/1"
#: The longest config a weights file may hold: 1000 class names of 200 characters need 0.2 MB, and a
#: longer one would cost seconds and gigabytes to parse and check before it could be refused.
MAX_CONFIG_CHARS = 2**20


class CheckpointError(ValueError):
    """A file is not a readable checkpoint of this project (corrupt, truncated or foreign)."""


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename ``tmp_path`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` leaves in ``folder`` when its process is
    killed mid-write (the target file itself is intact: the old version or none). Call this only
    where no other process writes into ``folder``."""
    stale = sorted(Path(folder).glob(".*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def save_weights(path: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Write ``tensors`` and a JSON-able ``config`` as one safetensors file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "config": json.dumps(config)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_weights`: ``(tensors, config)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint "
                              f"(corrupt or truncated?): {err}") from err
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an ibinn model "
                              f"(metadata format {str(meta.get('format'))[:40]!r}, expected {FORMAT!r})")
    if len(meta["config"]) > MAX_CONFIG_CHARS:
        raise CheckpointError(f"{path}: its config metadata has {len(meta['config'])} characters, "
                              f"more than the {MAX_CONFIG_CHARS} a model config can need")
    try:
        config = json.loads(meta["config"])
    except (ValueError, RecursionError) as err:  # also integers of > 4300 digits, deep nesting
        raise CheckpointError(f"{path}: its config metadata is not valid JSON: {err}"[:500]) from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its config must be a JSON object, got {type(config).__name__}")
    return tensors, config


def save_state(path: str | Path, state: dict) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path) -> dict:
    """Read a training state with ``weights_only=True`` (no code runs from the file)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"{path} is not a readable training state: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ibinn training state")
    return state


LOCK_FILE = ".ibinn.lock"


class RunFolderBusy(RuntimeError):
    """Another live process is writing into the same run folder."""


@contextlib.contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s lock for the duration of a run, so that two runs never write into one folder.

    The lock is an exclusive ``flock`` on ``folder/.ibinn.lock``: the operating system releases it
    when its process ends in any way (``kill -9`` included), so a dead run never leaves a stale
    lock behind. The file records who holds it, for the message of :class:`RunFolderBusy`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        import fcntl
    except ImportError:  # Windows has no flock: runs there are not locked
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode(errors="replace").strip() or "another process"
            raise RunFolderBusy(f"{folder} is in use by a run that is still going ({holder}); wait "
                                f"for it to end, or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
