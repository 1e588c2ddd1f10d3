"""Safe decoding of untrusted image files, and their conversion to a model's input format.

Every upload to a shared server is hostile until proven otherwise: a few kilobytes of PNG can
claim 13000 × 13000 pixels and ask for gigabytes when decoded, and a damaged file can make a
decoder raise almost any exception. This module reads images defensively.

- :func:`open_image` reads bytes, a path or a binary file. It accepts only the common formats
  (:data:`FORMATS`), reads the size from the header and refuses images above a pixel cap
  *before* anything is decoded, then decodes the first frame and returns a fully loaded 8-bit
  PIL image. 16-bit, 32-bit and floating-point images are scaled (not clipped) to 8 bits.
- :func:`fit_image` converts a PIL image to a model's channels and size.
- :func:`load_image` does both.

Whatever goes wrong with the file, the only exception is :class:`ImageError` (a ``ValueError``),
with a message meant for the person who uploaded it. Every function also returns notes in plain
words about each conversion it made.

Example:
    >>> import io
    >>> from PIL import Image
    >>> from ibinn import images
    >>> buf = io.BytesIO()
    >>> Image.new("I;16", (64, 64), 65535).save(buf, "PNG")  # a white 16-bit PNG
    >>> image, notes = images.open_image(buf.getvalue())
    >>> image.mode, image.size, image.getpixel((0, 0)), notes
    ('L', (64, 64), 255, ['16-bit image scaled to 8 bits'])
    >>> x, notes = images.load_image(buf.getvalue(), (3, 32, 32))
    >>> x.shape, x.dtype
    ((3, 32, 32), dtype('uint8'))
    >>> notes
    ['16-bit image scaled to 8 bits', 'converted from L to RGB', 'resized from 64×64 to 32×32']
    >>> images.open_image(b"GIF89a, or so it says")
    Traceback (most recent call last):
    ...
    ibinn.images.ImageError: the file looks like a GIF image but is damaged or incomplete; ...
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from PIL import (
    BmpImagePlugin,  # noqa: F401  (importing a plugin registers its format with Image.OPEN)
    GifImagePlugin,  # noqa: F401
    Image,
    ImageFile,
    JpegImagePlugin,  # noqa: F401  (also opens MPO, the JPEG variant of many phone cameras)
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401  (registers WebP only where Pillow was built with it)
)

from . import limits

__all__ = ["FORMATS", "ImageError", "fit_image", "load_image", "open_image"]

#: Pillow format names that :func:`open_image` reads, and how a person calls them.
FORMATS: dict[str, str] = {
    "PNG": "PNG", "JPEG": "JPEG", "BMP": "BMP", "GIF": "GIF", "WEBP": "WebP", "TIFF": "TIFF",
}

#: Modes :func:`open_image` returns.
MODES = ("L", "LA", "RGB", "RGBA", "P")

# What Pillow's decoders raise on a damaged file (besides the documented ones).
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                  struct.error, EOFError, TypeError, IndexError, ZeroDivisionError, MemoryError)

# Modes converted without scaling, and the mode each becomes.
_CONVERT = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB",
            "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ValueError):
    """The input is not an image that :func:`open_image` can read; the message says why, in words
    for the person who supplied it."""


def _accepted() -> str:
    names = list(FORMATS.values())
    return f"accepted formats: {', '.join(names[:-1])} and {names[-1]}"


def _error(what: str) -> ImageError:
    return ImageError(f"{what}; {_accepted()}")


def _pixels_text(n: int) -> str:
    return f"{n / 1e6:.1f} Mpx" if n >= 100_000 else f"{n:,} pixels"


def _as_file(source: Any) -> tuple[IO[bytes], bool]:
    """``source`` as a seekable binary file positioned at 0, and whether we opened it (and so
    must close it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise _error("the file is empty")
        return io.BytesIO(data), True
    if isinstance(source, (str, os.PathLike)):
        try:
            fp = open(source, "rb")  # noqa: SIM115  (closed by open_image)
        except FileNotFoundError as err:
            raise _error(f"there is no file {os.fspath(source)!r}") from err
        except (OSError, ValueError, TypeError) as err:
            raise _error(f"the file {os.fspath(source)!r} cannot be opened") from err
        return fp, True
    if callable(getattr(source, "read", None)):
        try:
            if getattr(source, "seekable", lambda: False)():
                source.seek(0)
                return source, False
            data = source.read()
        except (OSError, ValueError) as err:
            raise _error("the file cannot be read") from err
        if not isinstance(data, (bytes, bytearray)):
            raise _error("the file was opened as text, not as binary data")
        if not data:
            raise _error("the file is empty")
        return io.BytesIO(bytes(data)), True
    raise _error(f"expected image bytes, a file path or a binary file, not {type(source).__name__}")


def _identify(fp: IO[bytes]) -> ImageFile.ImageFile:
    """Read the header of ``fp`` with the first plugin of :data:`FORMATS` that accepts it.

    The same search as ``PIL.Image.open``, minus its decompression-bomb check (the caller does
    its own, with its own cap) and limited to :data:`FORMATS`: no PostScript, no fonts, no
    rarely used decoders on a server.
    """
    prefix = fp.read(16)
    if not isinstance(prefix, bytes):
        raise _error("the file was opened as text, not as binary data")
    if not prefix:
        raise _error("the file is empty")
    for name, label in FORMATS.items():
        if name not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[name]
        try:
            verdict = accept(prefix) if accept else True
        except _DECODE_ERRORS:
            continue
        if not verdict or isinstance(verdict, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except _DECODE_ERRORS as err:
            raise _error(f"the file looks like a {label} image but is damaged or incomplete") from err
    raise _error("the file is not an image in a format this server reads")


def _scale_to_8_bits(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """A high-bit-depth or floating-point image as 8-bit grey: scaled, never clipped."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        values = np.asarray(image).astype(np.float32) / 257.0  # 65535 / 257 = 255
        notes = ["16-bit image scaled to 8 bits"]
    elif mode == "I":
        values = np.asarray(image).astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0 and hi <= 65535:  # Pillow's mode for 16-bit images of some formats
            values = values / 257.0
            notes = ["16-bit image scaled to 8 bits"]
        else:
            values = _min_max(values, lo, hi)
            notes = [f"32-bit image with values from {lo:g} to {hi:g} scaled min–max to 8 bits "
                     "(lowest value black, highest white)"]
    else:  # "F"
        values = np.asarray(image).astype(np.float64)
        if not np.isfinite(values).all():
            raise _error("the image holds values that are not finite numbers (NaN or infinity)")
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0 and hi <= 1:
            values = values * 255.0
            notes = ["floating-point image (values in [0, 1]) scaled to 8 bits"]
        else:
            values = _min_max(values, lo, hi)
            notes = [f"floating-point image with values from {lo:g} to {hi:g}, outside [0, 1]: "
                     "scaled min–max to 8 bits (lowest value black, highest white)"]
    pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L"), notes


def _min_max(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``values`` mapped linearly from ``[lo, hi]`` onto ``[0, 255]`` (all 0 when constant)."""
    if hi <= lo:
        return np.zeros_like(values)
    return (values - lo) * (255.0 / (hi - lo))


def _to_8_bits(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """A loaded image in one of :data:`MODES`, as a new image (the input can then be closed)."""
    mode = image.mode
    if mode in MODES:
        return image.copy(), []
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return _scale_to_8_bits(image)
    target = _CONVERT.get(mode, "RGB")
    what = "black-and-white (1-bit)" if mode == "1" else mode
    return image.convert(target), [f"{what} image converted to {'grey' if target == 'L' else target}"]


def open_image(source: Any, max_pixels: int | None = None) -> tuple[Image.Image, list[str]]:
    """Decode an untrusted image, refusing it before decoding when it is too large.

    Arguments:
        source: the file's content (``bytes``, ``bytearray``, ``memoryview``), its path
            (``str`` or ``pathlib.Path``) or a binary file object.
        max_pixels: the largest accepted ``width × height × frames``; by default
            ``max_image_pixels`` of :func:`ibinn.limits.current`.

    Returns:
        A fully loaded PIL image (no file left open) in mode ``"L"``, ``"LA"``, ``"RGB"``,
        ``"RGBA"`` or ``"P"``, and notes in plain words about each conversion made. Of
        multi-frame images (animations, multi-page TIFFs) only the first frame is used.

    Raises:
        ImageError: anything that is not a readable image in one of :data:`FORMATS` within
            ``max_pixels``, whatever the reason, with a message for the user.
    """
    max_pixels = limits.current().max_image_pixels if max_pixels is None else max_pixels
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, not {max_pixels}")
    fp, ours = _as_file(source)
    try:
        result, notes, frames = _decode(fp, max_pixels)
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise _error("the file is damaged, incomplete or not an image this server can read") from err
    finally:
        if ours:
            fp.close()
    if frames > 1:
        notes.insert(0, f"only the first of {frames} frames is used")
    return result, notes


def _decode(fp: IO[bytes], max_pixels: int) -> tuple[Image.Image, list[str], int]:
    """The first frame of the image in ``fp`` decoded (if it is within ``max_pixels``) and made
    8-bit, the notes on its conversion, and its number of frames."""
    with warnings.catch_warnings():
        # Our own cap (_frames_within) decides; Pillow's bomb warning is noise (and its error,
        # raised by the frame seeks of some formats, a decoding error like any other).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _identify(fp) as image:  # leaves a caller's file open
            frames = _frames_within(image, max_pixels)
            if frames > 1:
                image.seek(0)
            image.load()
            result, notes = _to_8_bits(image)
            result.load()
    return result, notes, frames


def _frames_within(image: ImageFile.ImageFile, max_pixels: int) -> int:
    """The number of frames of ``image``, from its header; an :class:`ImageError` when it has no
    pixels or more than ``max_pixels`` (width × height × frames)."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise _error(f"the image has no pixels ({width} × {height})")
    frames = int(getattr(image, "n_frames", 1) or 1)
    pixels = width * height * frames
    if pixels > max_pixels:
        shape = f"{width} × {height}" + (f" × {frames} frames" if frames > 1 else "")
        raise ImageError(f"image is {shape} = {_pixels_text(pixels)}; this server accepts "
                         f"at most {_pixels_text(max_pixels)}")
    return frames


def fit_image(image: Any, image_shape: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Convert a PIL image to the model's channels and size.

    Returns a uint8 array ``(C, H, W)`` and notes in plain words about each conversion made
    (mode change, resizing with aspect change, transparency flattened onto white). A bad
    ``image_shape`` (a caller's error, not the image's) is a ``ValueError`` naming it.
    """
    c, h, w = limits.image_shape(image_shape)
    notes: list[str] = []
    img = image
    if img.mode in ("RGBA", "LA", "P") and (img.mode != "P" or "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
        notes.append("transparency flattened onto white")
    target_mode = "L" if c == 1 else "RGB"
    if img.mode != target_mode:
        if not (img.mode == "RGBA" and notes):
            notes.append(f"converted from {image.mode} to {'grey' if c == 1 else 'RGB'}")
        elif c == 1:
            notes.append("converted to grey")
        img = img.convert(target_mode)
    if img.size != (w, h):
        aspect_in, aspect_out = img.size[0] / img.size[1], w / h
        notes.append(f"resized from {img.size[0]}×{img.size[1]} to {w}×{h}"
                     + (" (aspect ratio changed)" if abs(aspect_in / aspect_out - 1) > 0.05 else ""))
        img = img.resize((w, h), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr), notes


def load_image(source: Any, image_shape: Sequence[int], max_pixels: int | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """:func:`open_image`, then :func:`fit_image`: an untrusted image as a uint8 array
    ``(C, H, W)`` of ``image_shape``, and the notes of both steps.

    Raises:
        ImageError: as :func:`open_image`.
        ValueError: ``image_shape`` is not ``(1 or 3, height, width)`` within the limits.
    """
    limits.image_shape(image_shape)  # before the image: a bad shape is the caller's error
    image, notes = open_image(source, max_pixels)
    try:
        array, fit_notes = fit_image(image, image_shape)
    except _DECODE_ERRORS as err:  # pragma: no cover - an 8-bit loaded image always converts
        raise _error("the image cannot be converted for the model") from err
    return array, notes + fit_notes
