"""Widgets that several pages share: the explanation box, demo-image pickers, the distortion
controls, and the image a page classifies: an upload decoded safely into a model's format, or a
demo image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

import ibinn
from ibinn import explore, images


def explain(markdown: str) -> None:
    with st.expander("What am I looking at?"):
        st.markdown(markdown)


def image_pick(data: ibinn.ImageData, key: str, default_class: int = 0, label: str = "Image"
               ) -> int:
    """Class + index pickers for one demo image; returns its index in ``data``."""
    c1, c2 = st.columns(2)
    cls = c1.selectbox(f"{label}: class", range(len(data.classes)), index=default_class,
                       format_func=lambda i: data.classes[i], key=f"{key}_class")
    members = np.flatnonzero(data.labels.numpy() == cls)
    i = c2.number_input(f"{label}: index within class", 0, len(members) - 1, 0, key=f"{key}_index")
    return int(members[int(i)])


@dataclass(frozen=True)
class Distortion:
    """What :func:`distortion_controls` chose."""

    index: int  #: the demo image
    name: str  #: the transform (``explore.TRANSFORMS``)
    top: float  #: its largest strength
    steps: int | None  #: the number of strengths, where the page asked for a slider

    @property
    def spec(self) -> explore.TransformSpec:
        return explore.TRANSFORMS[self.name]

    def strengths(self, steps: int | None = None) -> np.ndarray:
        """``steps`` strengths evenly from none to :attr:`top` (by default as many as chosen)."""
        return np.linspace(0.0, self.top, self.steps if steps is None else steps)


def distortion_controls(data: ibinn.ImageData, key: str, steps: int | None = None) -> Distortion:
    """One demo image, a distortion that suits its channels (``explore.transforms_for``) and its
    largest strength, in three columns (widget keys ``<key>_image_*``, ``<key>_transform``,
    ``<key>_max_<transform>``); a "Steps" slider (``<key>_steps``) with default ``steps`` where
    given."""
    transforms = explore.transforms_for(int(data.image_shape[0]))
    c1, c2, c3 = st.columns([1.2, 1, 1])
    with c1:
        index = image_pick(data, f"{key}_image", 0, "Image")
    with c2:
        name = st.radio("Distortion", transforms, format_func=lambda n: explore.TRANSFORMS[n].label,
                        key=f"{key}_transform", horizontal=True)
        spec = explore.TRANSFORMS[name]
        st.caption(spec.help)
    with c3:
        top = st.slider(f"Largest {spec.strength_label}", 0.05 * spec.max_strength, spec.max_strength,
                        spec.max_strength if name != "noise" else 0.3, key=f"{key}_max_{name}")
        if steps is not None:
            steps = st.slider("Steps", 5, 25, steps, key=f"{key}_steps")
    return Distortion(index, name, float(top), steps)


def uploaded_image(label: str, key: str, image_shape, stop_on_error: bool = True
                   ) -> tuple[np.ndarray, list[str]] | None:
    """A file uploader: its image converted to ``image_shape`` (:func:`read_image`) with the
    conversion notes, or None without an upload. An unreadable upload shows why and stops the page
    (or, with ``stop_on_error=False``, counts as no upload)."""
    upload = st.file_uploader(label, key=key)
    if upload is None:
        return None
    try:
        return read_image(upload.getvalue(), upload.name, image_shape)
    except ValueError as err:
        st.error(str(err))
        if stop_on_error:
            st.stop()
        return None


def image_or_demo(upload: tuple[np.ndarray, list[str]] | None, data: ibinn.ImageData, key: str,
                  picked: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The image a page classifies and its conversion notes: ``upload`` (from
    :func:`uploaded_image`) where there is one; else demo image ``picked``, or where the page has
    picked none, one picked here under a note (:func:`image_pick`, widget keys ``<key>_*``)."""
    if upload is not None:
        return upload
    if picked is None:
        st.info("No image uploaded: showing a demo test image (pick another below, or upload your own).")
        picked = image_pick(data, key, 0, "Demo image")
    return data.images[picked].numpy(), []


def conversion_note(notes: list[str], reader: str = "the model") -> None:
    """Say what converting an image for ``reader`` did, where it did anything."""
    if notes:
        st.info(f"Converted for {reader}: " + "; ".join(notes) + ".")


@st.cache_data(show_spinner=False, max_entries=64)
def _decode_image(data: bytes, image_shape: tuple) -> tuple[np.ndarray | None, list[str], str]:
    """``images.load_image`` of an upload, once per distinct content and shape (Streamlit hashes
    the bytes), so that reruns do not decode it again: ``(array, notes, "")``, or
    ``(None, [], message)`` for a file that is refused (cached too, so that a hostile upload
    costs one decode, not one per rerun)."""
    try:
        array, notes = images.load_image(data, image_shape)
    except images.ImageError as err:
        return None, [], str(err)
    return array, notes, ""


def read_image(data: bytes, name: str, image_shape) -> tuple[np.ndarray, list[str]]:
    """Decode uploaded bytes safely and convert them to the model's format
    (``ibinn.images.load_image``, capped at ``ibinn.limits``' ``max_image_pixels``).

    Raises ValueError (an ``images.ImageError``) with a message for the user that names the file
    when the bytes are not a readable image.
    """
    array, notes, error = _decode_image(bytes(data), tuple(int(s) for s in image_shape))
    if array is None:
        raise images.ImageError(f"{name} is not an image this app can read: {error}.")
    return array, notes
