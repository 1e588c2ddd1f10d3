"""Which of the server's files a visitor of the dashboard may name.

The dashboard is a network service: a visitor who types a path ("Load from a path", an
``imagefolder:`` on the Train page) must not be able to read, or even learn of, any file outside
the project's own folders. :func:`allowed_path` accepts a path only when it resolves (symbolic
links followed) inside ``pretrained/``, the runs folder (``$IBINN_RUNS`` or ``runs/``), ``data/``
or ``$IBINN_DATA``; anything else gets one and the same answer, whether it exists or not.

The library and the CLI accept any path their user gives; only the dashboard is fenced in. On a
single-user laptop, ``IBINN_TRUST_PATHS=1`` lifts the fence.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRUST_ENV = "IBINN_TRUST_PATHS"


class PathNotAllowed(ValueError):
    """A visitor named a path outside the folders this server serves."""


def runs_dir() -> Path:
    return Path(os.environ.get("IBINN_RUNS", REPO / "runs"))


def allowed_roots() -> list[Path]:
    roots = [REPO / "pretrained", runs_dir(), REPO / "data"]
    if os.environ.get("IBINN_DATA"):
        roots.append(Path(os.environ["IBINN_DATA"]))
    return roots


def trusted() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def allowed_path(text: str, what: str = "path") -> Path:
    """``text`` as an absolute path inside :func:`allowed_roots` (relative paths are taken from the
    repository), or :class:`PathNotAllowed` with the same message for every path outside them."""
    refusal = PathNotAllowed(
        f"this server only reads {what}s under pretrained/, runs/, data/ or $IBINN_DATA; give a "
        f"path inside one of them (on a single-user machine, {TRUST_ENV}=1 lifts this)")
    if not isinstance(text, str) or not text.strip() or "\x00" in text or len(text) > 4096:
        raise refusal
    path = Path(text.strip())
    if trusted():
        return path.expanduser().resolve()
    try:
        resolved = (path if path.is_absolute() else REPO / path).resolve()
        roots = [root.resolve() for root in allowed_roots()]
    except (OSError, RuntimeError, ValueError):  # loops of links, over-long names
        raise refusal from None
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    raise refusal


def hide_paths(message: str, typed: dict[str, str] | None = None) -> str:
    """``message`` without the server's own paths: each resolved path of ``typed`` as the visitor
    typed it, then any other path inside an allowed folder (or the repository) relative to it:
    ``runs/x``, ``data/x``, ``$IBINN_DATA/x``."""
    for resolved, text in sorted((typed or {}).items(), key=lambda kv: -len(str(kv[0]))):
        message = message.replace(str(resolved), text)
    labels = {REPO / "pretrained": "pretrained", runs_dir(): "runs", REPO / "data": "data", REPO: "."}
    if os.environ.get("IBINN_DATA"):
        labels[Path(os.environ["IBINN_DATA"])] = "$IBINN_DATA"
    forms = {}
    for root, label in labels.items():  # as configured and with links resolved
        forms[str(root)] = forms[str(root.resolve())] = label
    for form in sorted(forms, key=len, reverse=True):  # runs/ inside the repository comes first
        if len(form) > 1:  # never "/" itself
            message = message.replace(form, forms[form])
    return message


def numba_cache_dir() -> Path:
    """Where numba keeps the machine code it compiles for UMAP, so that a restarted server loads
    it instead of compiling again: inside the runs folder, which the server may write."""
    return runs_dir() / "cache" / "numba"
