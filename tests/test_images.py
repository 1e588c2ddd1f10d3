"""ibinn.images: the safe decoder for untrusted uploads.

Hand-written cases for what a hostile or careless upload looks like (decompression bombs,
16-bit and float images, damaged files, wrong types), then Hypothesis properties: arbitrary bytes
and mutated encodings of valid images give a valid 8-bit image or an ImageError, never anything
else. The quick property runs take ~100 examples each; the ``slow`` ones 600 each.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from ibinn import explore, images
from ibinn.images import ImageError, load_image, open_image

APP = Path(__file__).resolve().parent.parent / "app"
# Pillow warns about the damaged files made here ("Corrupt EXIF data", ...): expected, not news.
pytestmark = pytest.mark.filterwarnings(r"ignore::UserWarning:PIL\..*")

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width × height`` grey pixels, with no image data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def assert_valid(image: Image.Image) -> None:
    """What open_image promises of every image it returns."""
    assert type(image) is Image.Image  # a plain, loaded image: no lazy ImageFile, no file handle
    assert image.mode in images.MODES
    assert image.size[0] > 0 and image.size[1] > 0
    np.asarray(image)  # the pixels are there


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A real 13000 × 13000 palette PNG (169 Mpx) of a few tens of KB."""
    start = time.perf_counter()
    data = encode(Image.new("P", (13000, 13000)), "PNG", optimize=True)
    assert len(data) < 100_000 and time.perf_counter() - start < 10
    return data


# --------------------------------------------------------------------------- decompression bombs

def test_a_decompression_bomb_is_refused_from_its_header(bomb, monkeypatch) -> None:
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("open_image decoded a refused image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    start = time.perf_counter()
    with pytest.raises(ImageError, match="13000 × 13000 = 169.0 Mpx; this server accepts at most 16.0 Mpx"):
        open_image(bomb)
    assert time.perf_counter() - start < 2


def test_our_cap_comes_before_pillows_bomb_check() -> None:
    """10 Gpx is past Pillow's own DecompressionBombError limit: our message, not Pillow's."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match=r"100000 × 100000 = 10000.0 Mpx; this server accepts"):
            open_image(png_header_only(100_000, 100_000))


def test_the_cap_is_the_callers_and_counts_frames() -> None:
    small = encode(Image.new("L", (200, 100)), "PNG")
    assert open_image(small, max_pixels=20_000)[0].size == (200, 100)
    with pytest.raises(ImageError, match="200 × 100 = 20,000 pixels; this server accepts at most 19,999 "):
        open_image(small, max_pixels=19_999)
    frames = [Image.new("L", (10, 10), 50 * i) for i in range(5)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image, notes = open_image(gif)
    assert_valid(image)
    assert notes[0] == "only the first of 5 frames is used"
    with pytest.raises(ImageError, match="10 × 10 × 5 frames = 500 pixels"):
        open_image(gif, max_pixels=499)


def test_pillows_own_bomb_limit_does_not_apply(monkeypatch) -> None:
    """Pillow's global limit neither warns nor stops an image that our cap accepts."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (100, 100), (1, 2, 3)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image, _ = open_image(data)
    assert image.getpixel((5, 5)) == (1, 2, 3)


# --------------------------------------------------------------------------- scaling to 8 bits

def test_16_bit_png_uses_the_full_8_bit_range() -> None:
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    image, notes = open_image(encode(Image.fromarray(ramp), "PNG"))
    pixels = np.asarray(image)
    assert image.mode == "L" and notes == ["16-bit image scaled to 8 bits"]
    assert pixels.min() == 0 and pixels.max() == 255
    assert abs(pixels.mean() - 127.5) < 0.5  # not almost white (as clipping to 255 would give)
    np.testing.assert_array_equal(pixels, np.rint(ramp / 257.0).astype(np.uint8))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_every_16_bit_mode_is_scaled(mode) -> None:
    source = Image.frombytes(mode, (2, 1), np.array([0, 65535], np.dtype(">u2" if mode == "I;16B" else "<u2"))
                             .tobytes())
    buf = io.BytesIO()
    source.save(buf, "TIFF")
    image, notes = open_image(buf)
    assert list(np.asarray(image).ravel()) == [0, 255] and notes == ["16-bit image scaled to 8 bits"]


def test_32_bit_integer_images() -> None:
    in_range = np.array([[0, 257, 65535]], np.int32)
    image, notes = open_image(encode(Image.fromarray(in_range), "TIFF"))
    assert list(np.asarray(image).ravel()) == [0, 1, 255] and notes == ["16-bit image scaled to 8 bits"]
    wide = np.array([[-100_000, 0, 100_000]], np.int32)
    image, notes = open_image(encode(Image.fromarray(wide), "TIFF"))
    assert list(np.asarray(image).ravel()) == [0, 128, 255] and "min–max" in notes[0]


def test_float_tiff_in_0_1_is_scaled_by_255() -> None:
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    image, notes = open_image(encode(Image.fromarray(values), "TIFF"))
    assert image.mode == "L" and "floating-point" in notes[0] and "min–max" not in notes[0]
    expected = np.rint(values.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_float_tiff_outside_0_1_is_min_max_scaled_and_says_so() -> None:
    values = np.linspace(-2, 3, 64, dtype=np.float32).reshape(8, 8)
    image, notes = open_image(encode(Image.fromarray(values), "TIFF"))
    pixels = np.asarray(image)
    assert pixels.min() == 0 and pixels.max() == 255 and pixels[0, 1] == 4  # (5/63) / 5 * 255
    assert len(notes) == 1 and "min–max" in notes[0] and "from -2 to 3" in notes[0]


def test_non_finite_floats_are_refused() -> None:
    values = np.array([[0.0, np.nan], [np.inf, 1.0]], np.float32)
    with pytest.raises(ImageError, match="not finite"):
        open_image(encode(Image.fromarray(values), "TIFF"))


# --------------------------------------------------------------------------- modes

def test_palette_and_rgba_images_convert() -> None:
    rng = np.random.default_rng(0)
    rgb = Image.frombytes("RGB", (40, 30), rng.integers(0, 256, (30, 40, 3), np.uint8).tobytes())
    palette = encode(rgb.convert("P"), "PNG")
    image, notes = open_image(palette)
    assert image.mode == "P" and notes == []
    x, notes = load_image(palette, (3, 32, 32))
    assert x.shape == (3, 32, 32) and x.dtype == np.uint8 and "converted from P to RGB" in notes

    rgba = encode(Image.new("RGBA", (28, 28), (0, 0, 0, 0)), "PNG")
    assert open_image(rgba)[0].mode == "RGBA"
    x, notes = load_image(rgba, (1, 28, 28))
    assert x.shape == (1, 28, 28) and (x == 255).all() and notes == ["transparency flattened onto white",
                                                                      "converted to grey"]


def test_cmyk_jpeg_converts_to_rgb() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    image, notes = open_image(data)
    assert image.mode == "RGB" and notes == ["CMYK image converted to RGB"]
    r, g, b = image.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta + yellow full: red


def test_one_bit_image_becomes_grey() -> None:
    image, notes = open_image(encode(Image.new("1", (9, 9), 1), "PNG"))
    assert image.mode == "L" and image.getpixel((0, 0)) == 255 and "1-bit" in notes[0]


def test_paths_and_files(tmp_path) -> None:
    data = encode(Image.new("RGB", (5, 4), (9, 8, 7)), "BMP")
    path = tmp_path / "x.bmp"
    path.write_bytes(data)
    for source in (path, str(path), bytearray(data), memoryview(data)):
        assert open_image(source)[0].getpixel((0, 0)) == (9, 8, 7)
    with path.open("rb") as f:
        f.read(3)  # read from wherever the caller left it: from the start
        assert open_image(f)[0].size == (5, 4)
        assert not f.closed  # a caller's file is the caller's to close

    class Stream:  # not seekable: read once
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            return self.data

    assert open_image(Stream(data))[0].size == (5, 4)


def test_fit_image_moved_here_and_still_in_explore() -> None:
    assert explore.fit_image is images.fit_image


# --------------------------------------------------------------------------- refusals

def test_damaged_and_wrong_inputs_are_image_errors(tmp_path) -> None:
    good = encode(Image.new("RGB", (64, 64), (200, 10, 10)), "PNG")
    idat = good.index(b"IDAT") + 8
    corrupt = good[:idat] + bytes(200) + good[idat + 200:]
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    cases = {
        "corrupt PNG": corrupt,
        "truncated PNG": good[: len(good) // 2],
        "PNG signature only": good[:8],
        "random bytes": np.random.default_rng(0).integers(0, 256, 1000, np.uint8).tobytes(),
        "empty bytes": b"",
        "text file": text,
        "missing file": tmp_path / "nowhere.png",
        "folder": tmp_path,
        "zero width": png_header_only(0, 10),
    }
    for what, source in cases.items():
        with pytest.raises(ImageError) as info:
            open_image(source)
        message = str(info.value)
        assert "accepted formats: PNG, JPEG, BMP, GIF, WebP and TIFF" in message, what
        assert "Error" not in message and "0x" not in message, what  # plain words, no repr


@pytest.mark.parametrize("source", [None, 3, 2.5, ["a.png"], object()])
def test_a_wrong_type_is_named(source) -> None:
    with pytest.raises(ImageError, match=f"not {type(source).__name__}"):
        open_image(source)


def test_an_image_error_is_a_value_error() -> None:
    assert issubclass(ImageError, ValueError)
    with pytest.raises(ValueError):
        load_image(b"GIF89a", (1, 28, 28))


def test_formats_outside_the_list_are_refused() -> None:
    """Pillow reads ICO and PPM; a server that promises PNG, JPEG, BMP, GIF, WebP and TIFF does not."""
    for fmt in ("ICO", "PPM"):
        with pytest.raises(ImageError, match="not an image in a format this server reads"):
            open_image(encode(Image.new("RGB", (16, 16)), fmt))


# --------------------------------------------------------------------------- the dashboard

def test_the_dashboard_decodes_an_upload_once(bomb, monkeypatch) -> None:
    pytest.importorskip("streamlit")
    monkeypatch.syspath_prepend(str(APP))
    import widgets

    calls = []
    load = images.load_image
    monkeypatch.setattr(images, "load_image", lambda *args: calls.append(1) or load(*args))
    data = encode(Image.new("L", (50, 50), 3), "PNG") + b"decode-once-test"  # unique bytes: a fresh key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No runtime found": st.cache_data outside a running app
        first = widgets.read_image(data, "a.png", (1, 28, 28))
        second = widgets.read_image(data, "a.png", (1, 28, 28))
        assert len(calls) == 1
        np.testing.assert_array_equal(first[0], second[0])
        with pytest.raises(ValueError, match=r"^huge\.png is not an image this app can read: .*169\.0 Mpx"):
            widgets.read_image(bomb, "huge.png", (1, 28, 28))


# --------------------------------------------------------------------------- properties

MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 "]
#: Arbitrary bytes, and arbitrary bytes after the signature of an accepted format.
ANY_BYTES = st.binary(max_size=4096) | st.builds(bytes.__add__, st.sampled_from(MAGIC),
                                                 st.binary(max_size=4096))


def check_outcome(data: bytes) -> None:
    """open_image gives a valid image or an ImageError, and load_image then fits any shape."""
    try:
        image, notes = open_image(data)
    except ImageError:
        return
    assert_valid(image)
    assert all(isinstance(n, str) for n in notes)
    for shape in ((1, 28, 28), (3, 32, 32)):
        x, _ = load_image(data, shape)
        assert x.shape == shape and x.dtype == np.uint8 and x.flags.c_contiguous


@QUICK
@given(ANY_BYTES)
def test_any_bytes_give_an_image_or_an_image_error(data) -> None:
    check_outcome(data)


@pytest.mark.slow
@MANY
@given(ANY_BYTES)
def test_any_bytes_give_an_image_or_an_image_error_many(data) -> None:
    check_outcome(data)


MODES = ["L", "RGB", "RGBA", "P", "I;16", "F", "1", "LA", "CMYK"]
FORMATS = ["PNG", "TIFF", "BMP", "GIF", "JPEG", "WEBP"]


def make_image(mode: str, width: int, height: int, seed: int, scale: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray((scale * (rng.random((height, width)) - 0.25)).astype(np.float32))
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    if mode in ("P", "1"):
        return Image.frombytes("L", (width, height), pixels.tobytes()).convert(mode)
    return Image.frombytes(mode, (width, height), pixels.tobytes())


def _savable(mode: str, fmt: str) -> bool:
    try:
        encode(make_image(mode, 3, 2, 0, 1.0), fmt)
    except (OSError, ValueError, KeyError):
        return False
    return True


#: (mode, format) pairs Pillow can write (``I;16`` as PNG or TIFF, ``F`` only as TIFF, ...).
PAIRS = [(m, f) for m in MODES for f in FORMATS if _savable(m, f)]


@st.composite
def encoded_images(draw) -> bytes:
    mode, fmt = draw(st.sampled_from(PAIRS))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    image = make_image(mode, width, height, draw(st.integers(0, 2**32 - 1)),
                       draw(st.sampled_from([1.0, 1.2, 1000.0])))
    return encode(image, fmt)


@st.composite
def mutated(draw, encodings: st.SearchStrategy[bytes]) -> bytes:
    """An encoding with a few bytes overwritten (mostly in the header) and maybe cut short."""
    data = bytearray(draw(encodings))
    for _ in range(draw(st.integers(0, 6))):
        where = draw(st.integers(0, min(len(data), 128) - 1) | st.integers(0, len(data) - 1))
        data[where] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def test_the_fuzzed_modes_and_formats_are_there() -> None:
    assert {m for m, _ in PAIRS} == set(MODES) and {f for _, f in PAIRS} == set(FORMATS)
    assert ("I;16", "PNG") in PAIRS and ("F", "TIFF") in PAIRS and ("CMYK", "JPEG") in PAIRS


@QUICK
@given(encoded_images())
def test_valid_images_of_any_mode_and_format_load(data) -> None:
    image, _ = open_image(data)
    assert_valid(image)
    check_outcome(data)


@QUICK
@given(mutated(encoded_images()))
def test_damaged_images_give_an_image_or_an_image_error(data) -> None:
    check_outcome(data)


@pytest.mark.slow
@MANY
@given(mutated(encoded_images()))
def test_damaged_images_give_an_image_or_an_image_error_many(data) -> None:
    check_outcome(data)


# =========================================================================== image_shape

SMALL_PNG = encode(Image.new("RGB", (8, 6), (10, 200, 30)), "PNG")
SHAPE_ENTRY = (st.integers(-2, 600) | st.sampled_from([1, 3, 2, 512, 513]) | st.floats(-1, 40)
               | st.booleans() | st.none() | st.text(max_size=3))
SHAPES = (st.tuples(st.sampled_from([1, 3]), st.integers(1, 64), st.integers(1, 64))
          | st.lists(SHAPE_ENTRY, max_size=4) | st.lists(SHAPE_ENTRY, min_size=3, max_size=3).map(tuple))


def valid_shape(shape) -> bool:
    if not isinstance(shape, list | tuple) or len(shape) != 3:
        return False
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        return False
    return shape[0] in (1, 3) and all(1 <= s <= 512 for s in shape[1:])


@QUICK
@given(SHAPES)
def test_image_shape_is_checked_and_named(shape) -> None:
    """A valid shape gives an array of that shape; any other is a ValueError (not an ImageError:
    the image is fine) naming image_shape, from load_image and fit_image alike."""
    image, _ = open_image(SMALL_PNG)
    if valid_shape(shape):
        for x in (load_image(SMALL_PNG, shape)[0], images.fit_image(image, shape)[0]):
            assert x.shape == tuple(shape) and x.dtype == np.uint8
        return
    for call in (lambda: load_image(SMALL_PNG, shape), lambda: images.fit_image(image, shape)):
        with pytest.raises(ValueError, match="image_shape") as err:
            call()
        assert not isinstance(err.value, ImageError), err.value


@pytest.mark.parametrize("shape", [(0, 32, 32), (2, 32, 32), (5, 32, 32), (3.5, 32, 32), ("3", 32, 32),
                                   (3, 0, 32), (3, -1, 32), (3, 32), (3, 32, 32, 1), (True, 32, 32)])
def test_the_reported_shapes_name_image_shape(shape) -> None:
    with pytest.raises(ValueError, match="image_shape") as err:
        load_image(SMALL_PNG, shape)
    assert not isinstance(err.value, ImageError)


def test_a_bad_image_keeps_its_own_message_with_a_good_shape() -> None:
    with pytest.raises(ImageError, match="damaged|not an image"):
        load_image(b"GIF89a, or so it says", (3, 32, 32))
