"""Samples drawn from a model's class Gaussians (the Sampling page), and how many of them the
family's ResNet baseline recognises as their class."""

from __future__ import annotations

import numpy as np
import streamlit as st
from latents import centroids, separation
from loading import demo_data, load_model, model_of
from registry import ModelEntry
from selection import family_entries

from ibinn import explore


@st.cache_data(show_spinner=False, max_entries=64)
def samples(path: str, mtime: float, n: int, temperature: float, seed: int,
            independent: bool = False, family: str | None = None) -> np.ndarray:
    """``explore.sample_grid``: classes x ``n`` samples, around the class means ``μ_y``, or, given
    the demo-set ``family``, around the mean latent of each class's demo images (:func:`centroids`)."""
    centres = None if family is None else centroids(path, mtime, family)
    return explore.sample_grid(load_model(path, mtime), n, temperature=temperature, seed=seed,
                               independent=independent, centres=centres)


@st.cache_data(show_spinner=False, max_entries=64)
def recognised(judge_path: str, judge_mtime: float, path: str, mtime: float, n: int,
               temperature: float, seed: int, independent: bool = False,
               family: str | None = None) -> np.ndarray:
    """``explore.recognised_by``: the share of each row of :func:`samples` that the classifier at
    ``judge_path`` assigns to the row's class."""
    grid = samples(path, mtime, n, temperature, seed, independent, family)
    return explore.recognised_by(load_model(judge_path, judge_mtime), grid)


def sample_caption(entry: ModelEntry, n: int, temperature: float, seed: int, independent: bool,
                   family: str | None) -> str:
    """What the Sampling page says under a grid: the share of its samples the family's ResNet
    recognises (and, for comparison, the share around the other centre), how far the data
    centroids lie from the class means, and the model's test error."""
    words = []
    judge = next((e for e in family_entries(entry.family) if e.kind == "resnet"), None)
    other = None if family is not None or demo_data(entry.family) is None else entry.family
    if judge is not None:
        args = (judge.path, judge.mtime, entry.path, entry.mtime, n, temperature, seed, independent)
        with st.spinner("Asking the ResNet…"):
            here, there = (recognised(*args, centre).mean() for centre in (family, other))
        where = "μ_y" if family is not None else "the data centroids"
        words.append(f"The ResNet recognises **{here:.0%}** of these samples as their row's class "
                     f"({there:.0%} around {where}, same noise; chance is "
                     f"{1 / len(model_of(entry).classes):.0%}).")
    if demo_data(entry.family) is not None:
        apart, noise, offset = separation(entry.path, entry.mtime, entry.family)
        words.append(f"The centroids of real images lie {offset:.1f} from μ_y; class means lie "
                     f"{apart:.1f} apart; the noise ε is ≈ {noise:.0f} long.")
    error = entry.metrics.get("test", {}).get("error")
    if error is not None:
        words.append(f"Test error {error:.1f} %.")
    return " ".join(words)
