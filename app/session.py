"""What belongs to one browser session of the dashboard: a random id that its training jobs carry,
and a temporary folder for the model files it uploads."""

from __future__ import annotations

import hashlib
import secrets
import tempfile
from pathlib import Path

import streamlit as st


def session_id() -> str:
    """A random token of this browser session (kept in its state): its jobs belong to it."""
    if "_owner" not in st.session_state:
        st.session_state["_owner"] = secrets.token_hex(16)
    return st.session_state["_owner"]


def session_folder() -> Path:
    """A temporary folder of this session's own, deleted when the session ends (its state is
    garbage-collected) or the server stops."""
    if "_session_folder" not in st.session_state:
        st.session_state["_session_folder"] = tempfile.TemporaryDirectory(prefix="ibinn-session-")
    return Path(st.session_state["_session_folder"].name)


def save_upload(data: bytes, name: str) -> Path:
    """Store an uploaded model file in this session's folder, named by its content."""
    path = session_folder() / f"{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    if not path.exists():
        path.write_bytes(data)
    return path
