"""Data sets by name, held in memory as uint8 tensors, and the paper's preprocessing.

Every data set becomes an :class:`ImageData`: uint8 images ``(N, C, H, W)``, integer labels and
class names. Keeping whole data sets as uint8 tensors (Fashion-MNIST: 47 MB, CIFAR-10: 150 MB)
makes batching a tensor index, which is what a 2-core CPU needs to keep the model busy.

Names:

- ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``svhn``: torchvision data sets, read from
  ``root`` (default ``$IBINN_DATA`` or ``~/.cache/ibinn/data``) and downloaded there by
  torchvision when ``download=True``. A folder holding the original ``*-ubyte.gz`` files (as
  Debian's ``dataset-fashion-mnist`` ships them) also works as ``root`` for the MNIST-like sets.
- ``imagefolder:<dir>``: any folder of class sub-folders; ``<dir>/train`` and ``<dir>/test`` are
  the splits when present (this is how the CIFAR-10 (JPEG) copy is read).
- ``demo:<model-family>``: the 2,000 balanced test images shipped next to the pretrained models.
  Loaded whole by default; its ``"train"`` split is the first three quarters of each class (in file
  order) and its ``"test"`` split the last quarter (:data:`DEMO_TEST_SHARE`): fixed, disjoint and
  class-balanced, so that a model trained on ``demo:`` data is tested on images it never saw.

Preprocessing follows the paper (section 4, appendix E) and its official code: per-channel
normalisation, uniform dequantisation and Gaussian noise of std ``sigma`` on training inputs,
label smoothing. The dequantisation noise is centred, ``U(-1/512, 1/512)``, so that a clean test
image ``k/255`` sits at the centre of its training bin.

Example:
    >>> data = load_dataset("demo:fashion-mnist", split="test")  # the held-out quarter of the demo set
    >>> data.images.shape, data.classes[0]
    (torch.Size([500, 1, 28, 28]), 'T-shirt/top')
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write

#: Folder with the pretrained models and their demo subsets, shipped with the repository.
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

TORCHVISION_SETS = {
    "fashion-mnist": "FashionMNIST",
    "mnist": "MNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}
#: How reports and the dashboard name the torchvision data sets.
DATASET_LABELS = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10",
                  "cifar100": "CIFAR-100", "svhn": "SVHN"}
_MNIST_LIKE = {"fashion-mnist", "mnist"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: Share of each class of a ``demo:`` set held out as its ``"test"`` split (the last images).
DEMO_TEST_SHARE = 0.25


class DataError(ValueError):
    """A data set name is unknown or its files are missing; the message says how to get them."""


@dataclass
class ImageData:
    """A labelled image set in memory.

    Attributes:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: int64 tensor ``(N,)``.
        classes: class names, ``classes[label]``.
        name: the data set name it was loaded by.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor | np.ndarray | list[int]) -> ImageData:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageData(self.images[index], self.labels[index], self.classes, self.name)


def default_root() -> Path:
    """Where data sets live unless a ``root`` is given: ``$IBINN_DATA`` or ``~/.cache/ibinn/data``."""
    return Path(os.environ.get("IBINN_DATA", Path.home() / ".cache" / "ibinn" / "data"))


def is_cifar10_jpeg(name: str) -> bool:
    """Whether data set ``name`` is the JPEG copy of CIFAR-10 (an ``imagefolder:`` or ``demo:``
    name that mentions CIFAR-10): its bits/dim are not comparable with published figures."""
    flat = name.lower().replace("-", "").replace("_", "")
    return ("cifar10" in flat and "cifar100" not in flat
            and (name.startswith(("imagefolder:", "demo:")) or "jpeg" in flat))


def dataset_label(name: str) -> str:
    """The display name of data set ``name``.

    >>> dataset_label("fashion-mnist"), dataset_label("imagefolder:data/cifar10-jpeg")
    ('Fashion-MNIST', 'CIFAR-10 (JPEG)')
    """
    if is_cifar10_jpeg(name):
        return "CIFAR-10 (JPEG)"
    key = name.split(":", 1)[1] if name.startswith("demo:") else name
    return DATASET_LABELS.get(key, name)


def dataset_names() -> list[str]:
    return [*TORCHVISION_SETS, "imagefolder:<dir>", "demo:<family>"]


def load_dataset(name: str, split: str | None = None, root: str | Path | None = None,
                 download: bool = False) -> ImageData:
    """Load a data set by name into memory.

    Args:
        name: see the module docstring.
        split: ``"train"`` or ``"test"``; ``"all"`` for an ``imagefolder:`` without splits or a
            whole ``demo:`` set. Default: the whole set for ``demo:``, else ``"train"``.
        root: folder of the torchvision data sets.
        download: let torchvision download a missing data set (needs network).

    Example:
        >>> [len(load_dataset("demo:fashion-mnist", s)) for s in (None, "train", "test")]
        [2000, 1500, 500]
    """
    if split not in (None, "train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    if name.startswith("demo:"):
        return demo_split(load_demo(name.split(":", 1)[1]), split or "all")
    split = split or "train"
    if name.startswith("imagefolder:"):
        with _unreadable_is_data_error(name):
            return _load_imagefolder(Path(name.split(":", 1)[1]).expanduser(), split, name)
    if name not in TORCHVISION_SETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(dataset_names())}")
    if split == "all":
        raise ValueError(f"{name} has 'train' and 'test' splits, not 'all'")
    root = Path(root).expanduser() if root is not None else default_root()
    return _load_torchvision(name, split, root, download)


def _load_torchvision(name: str, split: str, root: Path, download: bool) -> ImageData:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION_SETS[name])
    if name in _MNIST_LIKE:
        root = _mnist_root(root, cls.__name__)
    kwargs = {"split": split} if name == "svhn" else {"train": split == "train"}
    try:
        ds = cls(str(root), download=download, **kwargs)
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True..."
        raise DataError(
            f"{name} ({split}) not found under {root}. Either pass download=True "
            f"(`--download` on the CLI) to fetch it with torchvision, point root / $IBINN_DATA "
            f"at a folder that holds it, or use 'imagefolder:<dir>' for a local copy.") from err
    raw = ds.data
    images = torch.as_tensor(np.asarray(raw))
    if images.ndim == 3:  # MNIST-like: (N, H, W)
        images = images[:, None]
    elif images.shape[-1] == 3:  # CIFAR: (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.labels if name == "svhn" else ds.targets))
    classes = list(getattr(ds, "classes", [str(i) for i in range(int(labels.max()) + 1)]))
    return ImageData(images.contiguous(), labels.long(), classes, name)


def _mnist_root(root: Path, folder: str) -> Path:
    """Accept a folder of the original ``*-ubyte.gz`` files by unpacking it once, torchvision-style."""
    originals = sorted(root.glob("*-ubyte.gz")) if root.is_dir() else []
    if not originals:
        return root
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    unpacked = default_root() / "unpacked" / key
    raw = unpacked / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in originals:
        target = raw / gz.name[:-3]
        if not target.exists():
            # a unique temporary name: several jobs may unpack the same files at once
            atomic_write(target, lambda tmp, gz=gz: _gunzip(gz, tmp))
    return unpacked


def _gunzip(source: Path, target: str) -> None:
    with gzip.open(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


@contextlib.contextmanager
def _unreadable_is_data_error(name: str) -> Iterator[None]:
    """An ``imagefolder:`` whose path or files cannot be read (a name too long, no permission, a
    damaged image) is a :class:`DataError` like a missing one, not an ``OSError``."""
    try:
        yield
    except OSError as err:
        raise DataError(f"{name}: cannot be read: {err.strerror or err}") from err


def _load_imagefolder(folder: Path, split: str, name: str) -> ImageData:
    if not folder.is_dir():
        raise DataError(f"{name}: folder {folder} does not exist")
    has_splits = (folder / "train").is_dir()
    if has_splits and split == "all":
        raise ValueError(f"{name} has train/ and test/ sub-folders: ask for split 'train' or 'test'")
    if not has_splits and split != "all":
        raise DataError(f"{name} has no {split}/ sub-folder; use split='all' for a folder "
                        f"of class sub-folders without splits")
    return _read_imagefolder(folder / split if has_splits else folder, name)


def _read_imagefolder(folder: Path, name: str) -> ImageData:
    """Decode a class-folder tree once and cache it as a uint8 tensor file."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{name}: no images under {folder}")
    stamp = f"{folder.resolve()}|{len(files)}|{max(p.stat().st_mtime_ns for p in files)}"
    cache = default_root() / "imagefolder-cache" / (hashlib.sha1(stamp.encode()).hexdigest() + ".pt")
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        return ImageData(saved["images"], saved["labels"], list(saved["classes"]), name)
    ds = ImageFolder(str(folder), loader=lambda p: p)
    arrays, sizes = [], set()
    for path, _ in ds.samples:
        with Image.open(path) as img:  # not ds.loader: it would turn grey images into RGB
            arr = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
        arrays.append(arr if arr.ndim == 3 else arr[..., None])
        sizes.add(arr.shape)
    if len(sizes) != 1:
        raise DataError(f"{name}: images differ in size or mode ({sorted(sizes)[:3]}...); "
                        f"resize them to one size first")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(ds.targets, dtype=torch.long)
    atomic_write(cache, lambda tmp: torch.save(
        {"images": images, "labels": labels, "classes": ds.classes}, tmp))
    return ImageData(images, labels, list(ds.classes), name)


#: Size, image shape and classes of each torchvision training set (for estimates before loading).
TORCHVISION_SHAPES = {
    "fashion-mnist": (60_000, (1, 28, 28), 10), "mnist": (60_000, (1, 28, 28), 10),
    "cifar10": (50_000, (3, 32, 32), 10), "cifar100": (50_000, (3, 32, 32), 100),
    "svhn": (73_257, (3, 32, 32), 10),
}


def describe_dataset(name: str, root: str | Path | None = None) -> tuple[int, tuple[int, int, int], int]:
    """``(training images, image shape, classes)`` of a data set, without loading all of it:
    for estimating a run's cost before it starts. An ``imagefolder:`` is counted, and its first
    image opened; errors are those of :func:`load_dataset`."""
    if name in TORCHVISION_SHAPES:
        return TORCHVISION_SHAPES[name]
    if name.startswith("demo:"):
        data = demo_split(load_demo(name.split(":", 1)[1]), "train")
        return len(data), data.image_shape, len(data.classes)
    if not name.startswith("imagefolder:"):
        raise DataError(f"unknown data set {name!r}; known: {', '.join(dataset_names())}")
    with _unreadable_is_data_error(name):
        return _describe_imagefolder(Path(name.split(":", 1)[1]).expanduser(), name)


def _describe_imagefolder(folder: Path, name: str) -> tuple[int, tuple[int, int, int], int]:
    from PIL import Image

    if not folder.is_dir():
        raise DataError(f"{name}: folder {folder} does not exist")
    folder = folder / "train" if (folder / "train").is_dir() else folder
    files = [p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{name}: no images under {folder}")
    with Image.open(files[0]) as first:
        channels = 1 if first.mode == "L" else 3
        shape = (channels, first.size[1], first.size[0])
    classes = len({p.relative_to(folder).parts[0] for p in files})
    return len(files), shape, classes


def demo_path(family: str) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,60}", family):  # a name, never a path
        raise DataError(f"no demo subset {family[:80]!r}: a family is a name like 'fashion-mnist'")
    return PRETRAINED_DIR / family / "demo.npz"


def load_demo(family: str) -> ImageData:
    """The demo subset shipped with the pretrained models of a data-set family."""
    path = demo_path(family)
    if not path.exists():
        known = sorted(p.parent.name for p in PRETRAINED_DIR.glob("*/demo.npz"))
        raise DataError(f"no demo subset {family!r}; shipped: {', '.join(known) or 'none'}")
    with np.load(path, allow_pickle=False) as f:
        return ImageData(torch.from_numpy(f["images"]), torch.from_numpy(f["labels"]).long(),
                         [str(c) for c in f["classes"]], f"demo:{family}")


def save_demo(data: ImageData, family: str, per_class: int, seed: int = 0) -> Path:
    """Write a class-balanced subset of ``data`` as the demo subset of ``family``."""
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {data.classes[c]} has {len(idx)} images < {per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    index = torch.cat(picks).sort().values
    path = demo_path(family)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=data.images[index].numpy(), labels=data.labels[index].numpy(),
                        classes=np.array(data.classes))
    return path


def demo_split(data: ImageData, split: str) -> ImageData:
    """The ``"train"`` or ``"test"`` part of a whole demo set (``"all"``: the set itself): per class,
    the last :data:`DEMO_TEST_SHARE` of its images (in file order) are the test part, the rest the
    training part, so the parts are disjoint, fixed and balanced like the set."""
    if split == "all":
        return data
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    picks = []
    for c in range(len(data.classes)):
        idx = torch.nonzero(data.labels == c).flatten()
        n_train = len(idx) - round(DEMO_TEST_SHARE * len(idx))
        picks.append(idx[:n_train] if split == "train" else idx[n_train:])
    return data.subset(torch.cat(picks).sort().values)


def first_per_class(data: ImageData, per_class: int) -> ImageData:
    """The first ``per_class`` images of each class (fewer where a class has fewer), in their
    order in ``data``: a fixed, class-balanced subset."""
    index = [torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(len(data.classes))]
    return data.subset(torch.cat(index).sort().values)


def split_train_val(data: ImageData, n_val: int, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A seeded split of a training set into training and validation parts."""
    if not 0 <= n_val < len(data):
        raise ValueError(f"n_val must be in [0, {len(data)}), got {n_val}")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])


# --------------------------------------------------------------------------- preprocessing


def channel_stats(images: torch.Tensor, max_images: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images[:max_images].double() / 255.0
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


@dataclass
class Normalization:
    """Per-channel normalisation ``(x - mean) / std`` of images in [0, 1], and its inverse."""

    mean: list[float]
    std: list[float]
    #: (values, dtype, device) → tensor: made once, as each copy to a GPU would wait for it
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _shape(self, values: list[float], ref: torch.Tensor) -> torch.Tensor:
        key = (tuple(values), ref.dtype, ref.device)
        if key not in self._tensors:
            self._tensors[key] = torch.tensor(values, dtype=ref.dtype, device=ref.device).view(1, -1, 1, 1)
        return self._tensors[key]

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self._shape(self.mean, x01)) / self._shape(self.std, x01)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`normalize`, for display: back to [0, 1] pixel units (not clipped)."""
        return x * self._shape(self.std, x) + self._shape(self.mean, x)

    def log_abs_det(self, image_shape: tuple[int, int, int]) -> float:
        """log |det| of the map from [0, 1] pixels to normalised inputs (Jacobian of normalize)."""
        _, h, w = image_shape
        return -h * w * float(np.sum(np.log(self.std)))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [0, 1], the ``k / 255`` convention of torchvision's ToTensor."""
    return images.float() / 255.0


def dequantize(x01: torch.Tensor, sigma: float, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """Training-time noise: centred uniform dequantisation ``U(-1/512, 1/512)`` plus ``N(0, sigma²)``."""
    u = torch.rand(x01.shape, generator=generator, device=x01.device) - 0.5
    x = x01 + u / 256.0
    if sigma > 0:
        x = x + sigma * torch.randn(x01.shape, generator=generator, device=x01.device)
    return x


def smooth_labels(labels: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot labels smoothed as in Szegedy et al. (2016): ``(1 - s) · onehot + s / K``."""
    # scatter rather than F.one_hot, which checks the labels' range on the host (a GPU sync)
    onehot = torch.zeros(len(labels), n_classes, device=labels.device).scatter_(1, labels[:, None], 1.0)
    return onehot * (1.0 - smoothing) + smoothing / n_classes


#: Training-time augmentations: ``flip`` mirrors half the images left-right, ``flip-crop`` also
#: shifts each by up to ``max(2, width // 8)`` pixels (reflect-padded random crop), ``flip-shift``
#: likewise over a black border (zero-padded random crop).
AUGMENTATIONS = ("none", "flip", "flip-crop", "flip-shift")


def check_augmentation(kind: str) -> None:
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(AUGMENTATIONS)}")


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """One of :data:`AUGMENTATIONS` on a batch ``(N, C, H, W)`` in [0, 1], drawn per image:
    ``flip-crop`` crops the reflect-padded image (CIFAR's usual), ``flip-shift`` the black-padded
    one, which moves an object over a black background (Fashion-MNIST) instead of mirroring the
    parts of it that touch the border."""
    check_augmentation(kind)
    if kind == "none":
        return x
    pad = 0 if kind == "flip" else max(2, x.shape[-1] // 8)
    return random_flip_crop(x, pad, generator, fill=0.0 if kind == "flip-shift" else None)


def random_flip_crop(x: torch.Tensor, pad: int, generator: torch.Generator,
                     fill: float | None = None) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: random horizontal flip, then (``pad`` > 0) a random
    crop of the padded image: reflect-padded, or padded with the value ``fill``. torchvision's
    transforms draw once per call, not per image."""
    n, _, h, w = x.shape
    device = x.device  # every draw on the batch's own device: no copies, no synchronisation
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if pad == 0:
        return x
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect" if fill is None else "constant",
                                     value=fill)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    rows = dy.view(-1, 1) + torch.arange(h, device=device)
    cols = dx.view(-1, 1) + torch.arange(w, device=device)
    batch = torch.arange(n, device=device).view(-1, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()


def iterate_batches(data: ImageData, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None, drop_last: bool = False
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(uint8 images, labels)`` batches."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield data.images[idx], data.labels[idx]
