"""The paper's numbers for the γ page: a model's Table-1 metrics on its demo set, and the paper's
claims checked on the zoo's cards."""

from __future__ import annotations

import numpy as np
import streamlit as st
from loading import demo_data, load_model

from ibinn import zoo


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation(path: str, mtime: float, family: str, limit: int = 500) -> dict:
    """Table-1 metrics of a model on (part of) its demo set and the default OoD sets."""
    from ibinn.evaluate import evaluate

    data = demo_data(family)
    per_class = max(1, limit // len(data.classes))
    index = np.concatenate([np.flatnonzero(data.labels.numpy() == c)[:per_class]
                            for c in range(len(data.classes))])
    return evaluate(load_model(path, mtime), data.subset(index), progress=False)


@st.cache_data(ttl=5, show_spinner=False)  # as scan_models: a re-evaluated card shows up soon
def zoo_claims(family: str) -> tuple[str, str]:
    """The paper's claims checked on the zoo cards of ``family`` as a Markdown table
    (:mod:`ibinn.claims`; empty when the zoo has no card of it), and a note when some of its cards
    predate Table 1's conventions."""
    from ibinn import claims  # here: only the γ page needs it

    cards = [c for c in zoo.list_models() if c.family == family]
    if not cards:
        return "", ""
    return claims.markdown_claims(claims.check_claims(cards, family)), claims.stale_note(cards, family)
