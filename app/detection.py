"""Out-of-distribution detection for the OoD, "Generative vs discriminative" and Your image pages:
each model's detector scores, an image's scores under a growing distortion, and one image judged
against the demo set's mean NLL.

A zoo model ships its OoD-detector scores (``explore.detector_arrays``, in derived.npz), so the
"Generative vs discriminative" page opens without running any OoD set through two models.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from loading import demo_data, demo_of, derived_arrays, load_model
from registry import ModelEntry

from ibinn import explore


@st.cache_data(show_spinner=False, max_entries=32)
def detector_scores(path: str, mtime: float, family: str) -> explore.DetectorScores:
    """``explore.detector_scores`` of a model on its family's demo set: shipped with zoo models,
    computed (tens of seconds) for others."""
    shipped = explore.DetectorScores.from_arrays(derived_arrays(path, mtime))
    return shipped or explore.detector_scores(load_model(path, mtime), demo_data(family))


def detectors_of(entry: ModelEntry) -> explore.DetectorScores:
    """:func:`detector_scores` of ``entry``, with a spinner for the models that compute them."""
    demo_of(entry)
    with st.spinner(f"Scoring the demo set and its OoD sets with {entry.label} (once per model)…"):
        return detector_scores(entry.path, entry.mtime, entry.family)


@st.cache_data(show_spinner=False, max_entries=64)
def scored_trajectory(path: str, mtime: float, family: str, index: int, transform: str,
                      strengths: tuple[float, ...], reference_nll_mean: float | None
                      ) -> explore.Trajectory:
    """``explore.trajectory`` of demo image ``index`` against a given mean NLL (None for a
    model without a likelihood): no demo-set pass, unlike :func:`trajectory`."""
    return explore.trajectory(load_model(path, mtime), demo_data(family).images[index], transform,
                              np.asarray(strengths), reference_nll_mean)


@st.cache_data(show_spinner=False, max_entries=64)
def classify_against(path: str, mtime: float, image: np.ndarray, reference_nll_mean: float | None
                     ) -> explore.LatentView:
    """One uint8 image ``(C, H, W)`` through any classifier, typicality against a given mean NLL."""
    return explore.summarize(load_model(path, mtime), image[None],
                             reference_nll_mean=reference_nll_mean)
