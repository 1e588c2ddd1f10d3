"""IB-INN Explorer dashboard: ``streamlit run app/main.py``.

A multipage app (``st.navigation``), one file per page in ``app/views/`` (not ``pages/``: Streamlit would
take that folder for an old-style multipage app and run its files without this script). The sidebar model
selector lives here, so every page shares it through ``st.session_state``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import selection` etc. from the pages
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # `import ibinn` without install

import sandbox  # noqa: E402
import selection  # noqa: E402
import warmup  # noqa: E402, F401 - the server's one-time set-up (imports, gc.freeze)

import ibinn  # noqa: E402

st.set_page_config(page_title="IB-INN Explorer", page_icon="🧭", layout="wide")

# Material icons, not emoji: they come with Streamlit, so they render without an emoji font.
PAGES = [
    st.Page("views/models.py", title="Models", icon=":material/view_module:", default=True),
    st.Page("views/latent.py", title="Latent space", icon=":material/scatter_plot:"),
    st.Page("views/interpolation.py", title="Interpolation", icon=":material/swap_horiz:"),
    st.Page("views/sampling.py", title="Sampling", icon=":material/casino:"),
    st.Page("views/ood.py", title="OoD trajectories", icon=":material/trending_up:"),
    st.Page("views/gamma.py", title="γ comparison", icon=":material/show_chart:"),
    st.Page("views/versus.py", title="Generative vs discriminative", icon=":material/compare:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/your_image.py", title="Your image", icon=":material/image:"),
]

page = st.navigation(PAGES)
# the sidebar's model chips show their whole name, wrapped where it is longer than the chip can be
# (Streamlit cuts a chip's text with an ellipsis): older Streamlit draws chips as baseweb tags,
# 1.67 as span[data-tag]
st.html("<style>[data-testid='stSidebar'] [data-baseweb='tag'] {max-width: none; height: auto;}"
        "[data-testid='stSidebar'] span[data-tag] {height: auto;}"
        "[data-testid='stSidebar'] [data-baseweb='tag'] span, [data-testid='stSidebar'] span[data-tag] > span"
        " {max-width: none; overflow: visible; white-space: normal; text-overflow: clip;"
        " overflow-wrap: anywhere;}</style>")
st.sidebar.title("IB-INN Explorer")
selection.model_selector()
st.sidebar.caption("Generative classifiers trained with the Information Bottleneck "
                   "(Ardizzone et al., NeurIPS 2020).")
try:
    page.run()
except ibinn.CheckpointError as err:  # e.g. a bundled model file changed on disk
    st.error(f"This model cannot be loaded: {sandbox.hide_paths(str(err))}")
