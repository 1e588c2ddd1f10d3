"""What the dashboard's server does once, when it starts: import what its first visitors would
wait for, point numba at a cache folder it may write, and take the objects of its imports out of
Streamlit's per-run garbage collection.

``main.py`` imports this module before the pages run; :mod:`loading` imports it too, so that
anything that loads a model (a test, a script) gets the same set-up.
"""

from __future__ import annotations

import gc
import os

import plotly.graph_objects  # noqa: F401 - imported before gc.freeze(), so that it freezes them
import sandbox
import streamlit  # noqa: F401 - as plotly

import ibinn

# What ibinn imports on first use (FrEIA, scikit-learn: about 2 s together) is imported here, once
# per server, so that the first visitor to open a page that builds a network or fits a PCA does not
# wait for it. Not in a background thread: code that finds a module half-imported by another thread
# in sys.modules fails (plotly's validators met a half-imported pandas that way).
ibinn.preload()

# numba reads its cache folder once, when first imported (by umap, lazily): set it before that.
os.environ.setdefault("NUMBA_CACHE_DIR", str(sandbox.numba_cache_dir()))

# Streamlit ends every script run with a full garbage collection (``runner.postScriptGC``) that holds
# the GIL while it walks every tracked object, so every other session waits for it: with the ~240,000
# objects torch, plotly and streamlit create on import it took 0.6 s here (2 busy cores), 0.13 s once
# they were left out. They live as long as the server, so the collector skips them from now on.
gc.freeze()
