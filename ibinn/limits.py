"""Limits on what a model config, an image or an API call may ask for, checked before any work.

A model file is data from a stranger: its JSON config could ask for 10⁹ classes, a million coupling
blocks or a layer of 10⁵ channels, and building that model would exhaust the server's memory long
before anything failed. :func:`check_model_config` therefore checks every field's type and range,
then the memory, compute and initialisation time the architecture implies (:func:`footprint`,
computed from the config alone, without allocating a tensor), against :class:`Limits`.

The same limits bound the library's arguments (number of samples, interpolation steps, batch
sizes) through the small checkers :func:`integer` and :func:`real`, which raise ``ValueError``
naming the argument.

The defaults fit a laptop or a small shared server. The one place to change them is the
environment variable ``IBINN_LIMITS``: a JSON object, or the path of a JSON file holding one,
whose keys are fields of :class:`Limits`, e.g.
``IBINN_LIMITS='{"max_model_mib": 2048, "max_job_minutes": 120}'``.

Example:
    >>> from ibinn import limits
    >>> limits.integer("n", 8, low=1, high=100)
    8
    >>> limits.integer("n", 2.5, low=1)
    Traceback (most recent call last):
        ...
    ValueError: n must be an integer, got float 2.5
    >>> fp = limits.footprint({"image_shape": [1, 28, 28], "n_classes": 10, "levels": [4, 6],
    ...                        "widths": [32, 64], "fc_blocks": 2, "fc_width": 512})
    >>> round(fp.parameters / 1e6, 1), round(fp.train_gflops_per_image, 3)
    (1.3, 0.053)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

ENV = "IBINN_LIMITS"
MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """Upper bounds, each with a default that admits every preset of :data:`ibinn.model_config.PRESETS`
    on images up to 64 × 64 with room to spare. Change them through ``$IBINN_LIMITS``."""

    # ---- model configs (checked before a model is built)
    max_classes: int = 1000
    max_class_name_chars: int = 200
    max_image_side: int = 512
    max_levels: int = 6
    max_blocks_per_level: int = 100
    max_width: int = 2048
    max_fc_blocks: int = 16
    max_fc_width: int = 16384
    max_model_mib: float = 512.0  #: parameters and buffers, fp32
    max_activation_mib_per_image: float = 64.0  #: kept for the backward pass while training
    max_train_gflops_per_image: float = 50.0  #: the paper preset on CIFAR-10 needs ~1.8
    #: Σ c³ over the soft-permuted coupling blocks (SciPy draws a c × c rotation in O(c³); 2·10⁹ is
    #: about 5 s on a laptop core)
    max_permutation_work: float = 2e9
    # ---- images and API arguments
    max_image_pixels: int = 16_000_000  #: decoded pixels of one uploaded image
    max_samples: int = 4096  #: images one ``sample`` call may draw
    max_steps: int = 1000  #: interpolation steps
    max_batch_size: int = 65536
    inference_mib: float = 1024.0  #: activations of one inference batch; larger batches are split
    # ---- training jobs of the dashboard (ibinn.jobs)
    max_running_jobs: int = 1
    max_queued_per_session: int = 2
    max_queued_total: int = 10
    max_job_minutes: float = 15.0  #: estimated from FLOPs before a job starts

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, updated by ``$IBINN_LIMITS`` (a JSON object or the path of a JSON file)."""
        text = os.environ.get(ENV, "").strip()
        if not text:
            return cls()
        if not text.startswith("{"):
            try:
                text = Path(text).expanduser().read_text()
            except OSError as err:
                raise ValueError(f"${ENV} names a file that cannot be read: {err}") from err
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"${ENV} is not a JSON object: {err}") from err
        if not isinstance(values, dict):
            raise ValueError(f"${ENV} must be a JSON object of limits, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"${ENV}: unknown limits {unknown}; known: {', '.join(fields)}")
        checked = {}
        for key, value in values.items():
            kind = int if fields[key].type == "int" else float
            checked[key] = (integer if kind is int else real)(f"${ENV}[{key!r}]", value, low=0)
        return cls(**checked)


@functools.lru_cache(maxsize=1)
def _cached(env_value: str) -> Limits:
    return Limits.from_env()


def current() -> Limits:
    """The limits in force (read from ``$IBINN_LIMITS`` again whenever it changes)."""
    return _cached(os.environ.get(ENV, ""))


# --------------------------------------------------------------------------- argument checks

def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``, or a ``ValueError`` naming ``name``.

    Booleans and floats are refused (``2.5`` classes, ``True`` samples are caller bugs); integer
    numpy scalars and 0-d integer tensors are accepted.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}"[:300])
    try:
        value = int(value.__index__())
    except TypeError as err:  # e.g. a tensor with more than one element
        raise ValueError(f"{name} must be a single integer: {err}") from err
    if (low is not None and value < low) or (high is not None and value > high):
        # Python refuses to print integers of over 4300 digits
        shown = value if value.bit_length() < 1000 else f"an integer of {value.bit_length()} bits"
        raise ValueError(f"{name} must be in [{low if low is not None else '-∞'}, "
                         f"{high if high is not None else '∞'}], got {shown}")
    return value


def real(name: str, value, low: float | None = None, high: float | None = None,
         low_open: bool = False, allow_inf: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` with ``low_open``), or a
    ``ValueError`` naming ``name``. NaN is always refused; ±∞ only with ``allow_inf``."""
    if isinstance(value, bool | str | bytes) or value is None:
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}"[:300])
    try:
        value = float(value)
    except OverflowError as err:  # an int beyond float range, e.g. 10**400 from a JSON config
        raise ValueError(f"{name} must be a finite number, got {type(value).__name__} beyond "
                         f"the float range") from err
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a number, got {type(value).__name__}") from err
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '≥'} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be ≤ {high:g}, got {value:g}")
    return value


def image_shape(value, min_side: int = 1, limits: Limits | None = None) -> tuple[int, int, int]:
    """``value`` as ``(channels, height, width)``: 1 or 3 channels, sides in ``[min_side,
    max_image_side]``; else a ``ValueError`` naming ``image_shape``."""
    lim = limits or current()
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"image_shape must be [channels, height, width], got {value!r}"[:300])
    c = integer("image_shape[0] (channels)", value[0], 1, 3)
    if c == 2:
        raise ValueError("image_shape[0] (channels) must be 1 (grey) or 3 (RGB), got 2")
    h = integer("image_shape[1] (height)", value[1], min_side, lim.max_image_side)
    w = integer("image_shape[2] (width)", value[2], min_side, lim.max_image_side)
    return c, h, w


# --------------------------------------------------------------------------- model configs

@dataclass(frozen=True)
class Footprint:
    """What an IB-INN architecture costs, computed from its config alone (an upper estimate for
    the baselines, which replace each coupling by a residual block of matched size)."""

    parameters: int  #: learned weights
    buffer_floats: int  #: fixed permutation and DCT matrices
    activation_floats_per_image: int  #: kept for the backward pass (estimate)
    train_gflops_per_image: float  #: forward + backward (≈ 3 × forward), multiply-adds count 2
    permutation_work: float  #: Σ c³ of the soft-permuted blocks

    @property
    def model_mib(self) -> float:
        return 4 * (self.parameters + self.buffer_floats) / MIB

    @property
    def activation_mib_per_image(self) -> float:
        return 4 * self.activation_floats_per_image / MIB


def footprint(config: dict) -> Footprint:
    """The cost of the architecture :func:`ibinn.network.build_inn` makes of ``config`` (a config
    dict whose sizes :func:`check_model_config` has checked), without building it."""
    c, h, w = config["image_shape"]
    cost = _Cost(official=config.get("subnet", "plain") == "official")
    if c == 1:  # the initial squeeze
        c, h, w = 4, h // 2, w // 2
    for level, (blocks, width) in enumerate(zip(config["levels"], config["widths"], strict=True)):
        if level > 0:
            if config.get("downsampling") == "coupling":  # two subnets twice the last level's width
                cost.add_downsampling_coupling(c, h, w, 2 * config["widths"][level - 1])
            c, h, w = 4 * c, h // 2, w // 2
        cost.add_conv_couplings(c, h, w, blocks, width)
    dim = c * h * w
    cost.add_fc_couplings(dim, config.get("fc_blocks", 1), config.get("fc_width", 64),
                          glow=config.get("fc_coupling", "allinone") == "glow")
    n_classes = config["n_classes"]
    cost.params += n_classes * dim + n_classes  # class means μ (or a baseline's linear head)
    if config.get("dct_pooling"):
        cost.buffers += h * h + w * w + 2 * h * w
    return Footprint(cost.params, cost.buffers, cost.activations, 3 * cost.flops / 1e9, cost.work)


@dataclass
class _Cost:
    """The running totals of :func:`footprint`, part by part of the network (see ``ibinn.model``);
    ``flops`` of the forward pass, ``work`` Σ c³ of the soft permutations."""

    official: bool  #: the official code's subnetworks (with batch norm), else plain ones
    params: int = 0
    buffers: int = 0
    activations: int = 0
    flops: float = 0.0
    work: float = 0.0

    def conv_subnet(self, c_in: int, c_out: int, width: int) -> tuple[int, int]:
        """Parameters and buffers of a convolutional subnetwork."""
        if self.official:  # 3×3, BN, 3×3, BN, 1×1; BN keeps running mean, variance and a step count
            return 9 * c_in * width + 9 * width * width + 4 * width + width * c_out + c_out, 4 * width + 2
        return 9 * c_in * width + width + width * width + width + 9 * width * c_out + c_out, 0

    def add_downsampling_coupling(self, c: int, h: int, w: int, wide: int) -> None:
        """The learned downsampling of a ``c × h × w`` input: two subnets of width ``wide``."""
        a, b = c // 2, c - c // 2
        for c_in, c_out in ((a, 8 * b), (4 * b, 8 * a)):
            p, buf = self.conv_subnet(c_in, c_out, wide)
            self.params, self.buffers = self.params + p, self.buffers + buf
            self.flops += 2 * p * (h // 2) * (w // 2)
        self.activations += 6 * wide * (h // 2) * (w // 2)

    def add_conv_couplings(self, c: int, h: int, w: int, blocks: int, width: int) -> None:
        """A level's ``blocks`` convolutional coupling blocks on ``c × h × w``."""
        a, b = c - c // 2, c // 2  # a coupling conditions on a channels, transforms b
        sub, sub_buffers = self.conv_subnet(a, 2 * b, width)
        block_params = sub + 2 * c  # and the block's global scale and offset
        self.params += blocks * block_params
        self.buffers += blocks * (2 * c * c + sub_buffers)  # soft permutation and its inverse
        self.flops += blocks * 2 * (block_params + c * c) * h * w
        self.activations += blocks * (3 * c + 3 * width) * h * w
        self.work += blocks * float(c) ** 3

    def add_fc_couplings(self, dim: int, blocks: int, width: int, glow: bool) -> None:
        """The ``blocks`` fully-connected coupling blocks on the flattened ``dim`` values."""
        def fc_subnet(d_in: int, d_out: int) -> int:
            return d_in * width + width + width * d_out + d_out

        if glow:  # both halves transformed, no global affine
            a, b = dim // 2, dim - dim // 2
            fc_params = fc_subnet(a, 2 * b) + fc_subnet(b, 2 * a)
            fc_buffers = 2 * dim  # the random permutation and its inverse, as indices
        else:
            a, b = dim - dim // 2, dim // 2
            fc_params = fc_subnet(a, 2 * b) + 2 * dim
            fc_buffers = 2 * dim * dim  # FrEIA keeps hard permutations as D × D matrices too
        self.params += blocks * fc_params
        self.buffers += blocks * fc_buffers
        self.flops += blocks * 2 * (fc_params + dim)
        self.activations += blocks * (3 * dim + 3 * width)


def _check_int_list(name: str, value, low: int, high: int, max_len: int) -> list[int]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= max_len:
        raise ValueError(f"{name} must be a list of 1 to {max_len} integers, got {value!r}"[:300])
    return [integer(f"{name}[{i}]", v, low, high) for i, v in enumerate(value)]


def check_model_config(config: dict, limits: Limits | None = None) -> Footprint:
    """Check every size in a model config (a dict as saved in checkpoints) against ``limits``.

    Checks types and ranges of the fields that decide how large the model is (image shape,
    classes and their names, levels, widths, fully-connected blocks), then the memory, compute and
    initialisation work they imply. Raises ``ValueError`` naming the field out of range; returns
    the :class:`Footprint`. The other fields are checked by :class:`ibinn.model_config.ModelConfig`.
    """
    lim = limits or current()
    if not isinstance(config, dict):
        raise ValueError(f"a model config must be a JSON object, got {type(config).__name__}")
    c, h, w = image_shape(config.get("image_shape"), min_side=2, limits=lim)
    n_classes = integer("n_classes", config.get("n_classes"), 2, min(lim.max_classes, c * h * w))
    classes = config.get("classes", [])
    if not isinstance(classes, list | tuple) or len(classes) not in (0, n_classes):
        raise ValueError(f"classes must be a list of {n_classes} names (or empty)")
    for i, name in enumerate(classes):
        if not isinstance(name, str) or len(name) > lim.max_class_name_chars:
            raise ValueError(f"classes[{i}] must be a name of at most {lim.max_class_name_chars} "
                             f"characters")
    levels = _check_int_list("levels", config.get("levels", [2, 2]), 0, lim.max_blocks_per_level,
                             lim.max_levels)
    widths = _check_int_list("widths", config.get("widths", [16, 32]), 1, lim.max_width,
                             lim.max_levels)
    if len(levels) != len(widths):
        raise ValueError(f"levels ({len(levels)}) and widths ({len(widths)}) must have one entry "
                         f"per resolution level")
    # the grey squeeze and every level after the first halve the image (and footprint assumes so)
    halvings = len(levels) - (c > 1)
    if h % 2**halvings or w % 2**halvings:
        raise ValueError(f"image_shape {h}x{w} cannot be halved {halvings} times, as "
                         f"{'the grey squeeze and ' if c == 1 else ''}{len(levels)} levels need: "
                         f"height and width must be multiples of {2**halvings}")
    fc_blocks = integer("fc_blocks", config.get("fc_blocks", 1), 0, lim.max_fc_blocks)
    fc_width = integer("fc_width", config.get("fc_width", 64), 1, lim.max_fc_width)
    fp = footprint({"image_shape": (c, h, w), "n_classes": n_classes, "levels": levels,
                    "widths": widths, "fc_blocks": fc_blocks, "fc_width": fc_width,
                    "dct_pooling": bool(config.get("dct_pooling", False))})
    for what, value, limit, unit in (
            ("model size (parameters and buffers)", fp.model_mib, lim.max_model_mib, "MiB"),
            ("activation memory per image", fp.activation_mib_per_image,
             lim.max_activation_mib_per_image, "MiB"),
            ("training compute per image", fp.train_gflops_per_image,
             lim.max_train_gflops_per_image, "GFLOP"),
            ("permutation set-up work Σc³", fp.permutation_work, lim.max_permutation_work, "")):
        if value > limit:
            raise ValueError(f"the architecture (image_shape, levels, widths, fc_blocks, fc_width, "
                             f"n_classes) implies a {what} of {value:.4g} {unit}, over the limit "
                             f"of {limit:.4g} {unit} (raise it through ${ENV})")
    return fp
