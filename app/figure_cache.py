"""Figures built once per distinct arguments and drawn as they were built: plotly validates every
property a figure is given, and Streamlit serialises every figure again on each rerun."""

from __future__ import annotations

from collections.abc import Callable

import figures
import plotly.graph_objects as go
import streamlit as st


class _BuiltFigure(go.Figure):
    """A figure that is drawn as it was built: :meth:`to_dict`, which ``st.plotly_chart`` calls on
    every rerun (a deep copy, every array encoded as base64: a fifth of a warm rerun of the OoD
    page), is computed once."""

    def to_dict(self) -> dict:
        if getattr(self, "_built_dict", None) is None:
            self._built_dict = super().to_dict()
        return self._built_dict


@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(name: str, *args, **kwargs) -> go.Figure:
    fig = getattr(figures, name)(*args, **kwargs)
    fig.__class__ = _BuiltFigure  # not _BuiltFigure(fig): that copy would validate it all again
    return fig


def figure(builder: Callable[..., go.Figure], *args, **kwargs) -> go.Figure:
    """``builder(*args, **kwargs)``, a builder that :mod:`figures` exports (it is looked up there
    by name), built once per distinct arguments:
    plotly validates every property it is given, which costs tenths of a second per figure on a
    slow CPU and would be paid again on every rerun. (Shared and drawn from its first
    ``to_dict``, so never modify the result.)"""
    return _figure(builder.__name__, *args, **kwargs)
