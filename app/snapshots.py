"""A training run's latent snapshots (the Train page's forming animation), aligned and read again
only when the job has written a new frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ibinn import explore
from ibinn.train import SNAPSHOTS_FILE, load_snapshots


@st.cache_data(show_spinner=False, max_entries=32)
def _aligned_snapshots(out: str, mtime_ns: int) -> dict[str, np.ndarray]:
    snaps = load_snapshots(out)
    if snaps:
        snaps["xy"], snaps["mu_xy"] = explore.align_frames(snaps["xy"], snaps["mu_xy"])
    return snaps


def training_snapshots(out: str | Path) -> dict[str, np.ndarray]:
    """A run's latent snapshots (:func:`ibinn.run_snapshots.load_snapshots`), frames aligned by
    :func:`ibinn.explore.align_frames`; empty when it has none. Cached per version of the file, so
    that the Train page's polling reads it again only when the job has written a new frame."""
    path = Path(out) / SNAPSHOTS_FILE
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return _aligned_snapshots(str(out), mtime_ns)
