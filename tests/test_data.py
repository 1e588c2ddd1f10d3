import numpy as np
import pytest
import torch
from PIL import Image

import ibinn
from ibinn import data as D
from ibinn.evaluate import dataset_note


def test_demo_subset_is_balanced_real_images(demo_fm):
    assert demo_fm.images.shape == (2000, 1, 28, 28) and demo_fm.images.dtype == torch.uint8
    assert torch.equal(demo_fm.labels.bincount(), torch.full((10,), 200))
    assert demo_fm.classes[0] == "T-shirt/top"
    assert demo_fm.images.float().std() > 50  # real pictures, not blank


def test_unknown_and_missing_data_sets_say_what_to_do(tmp_path):
    with pytest.raises(ibinn.DataError, match="unknown data set 'fashion_mnist'.*fashion-mnist"):
        ibinn.load_dataset("fashion_mnist")
    with pytest.raises(ibinn.DataError, match="download=True"):
        ibinn.load_dataset("cifar10", root=tmp_path)
    with pytest.raises(ibinn.DataError, match="does not exist"):
        ibinn.load_dataset(f"imagefolder:{tmp_path / 'nope'}", split="all")
    with pytest.raises(ibinn.DataError, match="no demo subset"):
        ibinn.load_dataset("demo:imagenet")


def test_imagefolder_reads_class_folders(tmp_path, demo_fm, monkeypatch):
    monkeypatch.setenv("IBINN_DATA", str(tmp_path / "cache"))
    for split in ("train", "test"):
        for i in range(6):
            label = int(demo_fm.labels[i])
            folder = tmp_path / "imgs" / split / f"{label:02d}-{demo_fm.classes[label][:4]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(demo_fm.images[i, 0].numpy()).save(folder / f"{i}.png")
    data = ibinn.load_dataset(f"imagefolder:{tmp_path / 'imgs'}", split="test")
    assert data.images.shape == (6, 1, 28, 28)
    assert sorted(set(data.classes)) == data.classes
    # same pixels as the originals (PNG is lossless), read again from the cache
    again = ibinn.load_dataset(f"imagefolder:{tmp_path / 'imgs'}", split="test")
    assert torch.equal(data.images, again.images)
    assert sorted(data.images.flatten().tolist()) == sorted(demo_fm.images[:6].flatten().tolist())


def _damaged_image_folder(tmp_path):
    (tmp_path / "damaged" / "a").mkdir(parents=True)
    (tmp_path / "damaged" / "a" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path / "damaged"


@pytest.mark.parametrize("folder", [lambda tmp: tmp / ("x" * 300), _damaged_image_folder])
def test_an_unreadable_imagefolder_is_a_data_error(tmp_path, monkeypatch, folder):
    """A name too long for the file system or a damaged image: a DataError, as a missing folder,
    from the estimate (describe_dataset) and the load alike, not an OSError."""
    monkeypatch.setenv("IBINN_DATA", str(tmp_path / "cache"))
    name = f"imagefolder:{folder(tmp_path)}"
    with pytest.raises(ibinn.DataError, match="cannot be read"):
        D.describe_dataset(name)
    with pytest.raises(ibinn.DataError, match="cannot be read"):
        ibinn.load_dataset(name, split="all")


def test_preprocessing(demo_fm):
    norm = D.Normalization(*D.channel_stats(demo_fm.images))
    x = D.to_unit(demo_fm.images[:32])
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-6)
    noisy = D.dequantize(x, sigma=0.0, generator=torch.Generator().manual_seed(0))
    assert (noisy - x).abs().max() <= 1 / 512 + 1e-7  # centred uniform dequantisation
    y = D.smooth_labels(torch.tensor([0, 3]), 10, 0.05)
    assert torch.allclose(y.sum(1), torch.ones(2)) and abs(float(y[0, 0]) - 0.955) < 1e-6
    flipped = D.random_flip_crop(x[:4].repeat(1, 3, 1, 1), 4, torch.Generator().manual_seed(0))
    assert flipped.shape == (4, 3, 28, 28)


def test_augmentations(demo_fm):
    x = D.to_unit(demo_fm.images[:64])
    assert D.augment(x, "none", torch.Generator()) is x
    flipped = D.augment(x, "flip", torch.Generator().manual_seed(0))
    mirrored = (flipped == x.flip(3)).flatten(1).all(1)
    kept = (flipped == x).flatten(1).all(1)
    assert (mirrored | kept).all() and 10 < int(mirrored.sum()) < 54  # about half, nothing else
    cropped = D.augment(x, "flip-crop", torch.Generator().manual_seed(0))
    assert cropped.shape == x.shape and not (cropped == x).flatten(1).all(1).all()
    # flip-shift moves the image over black: a white image keeps a white rectangle of
    # (28 - |dy|) x (28 - |dx|) pixels, |dy|, |dx| <= 3, and nothing but 0 and 1
    shifted = D.augment(torch.ones(64, 1, 28, 28), "flip-shift", torch.Generator().manual_seed(0))
    white = shifted.sum((1, 2, 3)).long().tolist()
    rectangles = {(28 - dy) * (28 - dx) for dy in range(4) for dx in range(4)}
    assert set(shifted.unique().tolist()) == {0.0, 1.0} and set(white) <= rectangles
    assert len(set(white)) > 4  # shifts of several sizes
    # the same draws as flip-crop: the two differ only within 3 pixels of the border (the padding)
    same_draws = D.augment(x, "flip-shift", torch.Generator().manual_seed(0))
    assert torch.equal(same_draws[..., 3:-3, 3:-3], cropped[..., 3:-3, 3:-3])
    assert not torch.equal(same_draws, cropped)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        D.augment(x, "rotate", torch.Generator())


@pytest.mark.full_data
def test_full_fashion_mnist(fashion_mnist_root):
    train = ibinn.load_dataset("fashion-mnist", "train", root=fashion_mnist_root)
    test = ibinn.load_dataset("fashion-mnist", "test", root=fashion_mnist_root)
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.image_shape == (1, 28, 28)
    demo = ibinn.load_dataset("demo:fashion-mnist")
    # every demo image is a real test image
    test_set = {bytes(img) for img in test.images.numpy()}
    assert all(bytes(img) in test_set for img in demo.images.numpy()[:200])
    assert np.isclose(D.channel_stats(train.images)[0][0], 0.286, atol=0.001)


@pytest.mark.full_data
@pytest.mark.slow
def test_full_cifar10_jpeg(cifar10_jpeg_dir):
    test = ibinn.load_dataset(f"imagefolder:{cifar10_jpeg_dir}", "test")
    assert len(test) == 10_000 and test.image_shape == (3, 32, 32)
    assert test.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck"]
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))
    demo = ibinn.load_dataset("demo:cifar10")
    assert demo.classes == test.classes and torch.equal(demo.labels.bincount(), torch.full((10,), 200))
    # every demo image is a real test image, with its label
    test_set = {(bytes(img), int(y)) for img, y in zip(test.images.numpy(), test.labels, strict=True)}
    assert all((bytes(img), int(y)) in test_set
               for img, y in zip(demo.images.numpy()[:300], demo.labels[:300], strict=True))


@pytest.mark.parametrize("name, label, jpeg", [
    ("fashion-mnist", "Fashion-MNIST", False),
    ("demo:fashion-mnist", "Fashion-MNIST", False),
    ("cifar10", "CIFAR-10", False),  # torchvision's original
    ("imagefolder:data/cifar10-jpeg", "CIFAR-10 (JPEG)", True),
    ("demo:cifar10", "CIFAR-10 (JPEG)", True),  # the shipped demo set comes from the JPEG copy
    ("imagefolder:/data/CIFAR-100", "imagefolder:/data/CIFAR-100", False),
    ("imagefolder:/data/imagenet32", "imagefolder:/data/imagenet32", False),
])
def test_dataset_label_and_the_jpeg_caveat(name, label, jpeg):
    assert D.dataset_label(name) == label
    assert D.is_cifar10_jpeg(name) == jpeg
    assert bool(dataset_note(name)) == jpeg


def test_demo_sets_split_into_fixed_disjoint_balanced_train_and_test_parts(demo_fm):
    train = ibinn.load_dataset("demo:fashion-mnist", "train")
    test = ibinn.load_dataset("demo:fashion-mnist", "test")
    assert len(train) == 1500 and len(test) == 500 and len(ibinn.load_dataset("demo:fashion-mnist")) == 2000
    assert torch.equal(train.labels.bincount(), torch.full((10,), 150))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 50))
    seen = {bytes(img) for img in train.images.numpy()}
    assert not any(bytes(img) in seen for img in test.images.numpy())  # no test image trained on
    # the test part is the last quarter of each class, in file order
    last_shirts = demo_fm.images[torch.nonzero(demo_fm.labels == 0).flatten()[150:]]
    assert torch.equal(test.images[test.labels == 0], last_shirts)
    assert D.describe_dataset("demo:fashion-mnist")[0] == 1500  # what a run trains on
    with pytest.raises(ValueError, match="split must be"):
        ibinn.load_dataset("demo:fashion-mnist", "validation")


def test_first_per_class_is_a_fixed_balanced_subset(demo_fm):
    subset = D.first_per_class(demo_fm, 3)
    assert subset.labels.bincount().tolist() == [3] * 10
    first_bags = torch.nonzero(demo_fm.labels == 8).flatten()[:3]
    assert torch.equal(subset.images[subset.labels == 8], demo_fm.images[first_bags])
