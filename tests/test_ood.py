import math

import numpy as np
import pytest
import torch

from ibinn import ood


def test_rgb_rotation_identity_range_and_norm():
    x = torch.rand(5, 3, 8, 8)
    assert torch.allclose(ood.rgb_rotation(x, 0.0), x, atol=1e-6)
    r = ood.rotation_matrix(0.3 * math.pi, seed=0)
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6) and abs(float(torch.det(r)) - 1) < 1e-5
    for alpha in (0.1, 0.3 * math.pi, 2.0, math.pi):
        y = ood.rgb_rotation(x, alpha)
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    # the grey axis moves unless it is the rotation axis: a grey pixel is the centre plus a
    # multiple of (1,1,1); rotation keeps the centre grey exactly
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(ood.rgb_rotation(grey, 1.0), grey)
    assert not torch.allclose(ood.rgb_rotation(x, 0.3 * math.pi), x, atol=1e-2)


def test_rgb_rotation_rejects_grey():
    with pytest.raises(ValueError, match="RGB"):
        ood.rgb_rotation(torch.rand(2, 1, 8, 8), 0.5)


@pytest.mark.parametrize("spec", ["inverted", "noise-gaussian", "noise-uniform:0.1"])
def test_grey_sets_keep_shape(demo_fm, spec):
    out = ood.make_ood_set(spec, demo_fm.subset(range(50)))
    assert out.shape == (50, 1, 28, 28) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_rgb_sets_keep_shape(demo_fm):
    rgb = demo_fm.subset(range(40))
    rgb.images = rgb.images.repeat(1, 3, 2, 2)[:, :, :32, :32].contiguous()  # a (3, 32, 32) set
    for spec in ["rgb-rotation", "rgb-rotation:0.5", "noise-gaussian", "noise-uniform", "drawings"]:
        out = ood.make_ood_set(spec, rgb, limit=40)
        assert out.shape[1:] == (3, 32, 32), spec
    drawings = ood.make_ood_set("drawings", rgb, limit=40)
    assert float(drawings[:, :, 0, 0].min()) == 1.0  # white paper around the drawing


def test_quickdraw_files(tmp_path, demo_fm):
    np.save(tmp_path / "cat.npy", demo_fm.images[:30, 0].reshape(30, 784).numpy())
    bitmaps = ood.quickdraw_bitmaps(tmp_path, per_file=10)
    assert bitmaps.shape == (10, 28, 28) and bitmaps.dtype == torch.uint8
    out = ood.line_drawings(bitmaps, (3, 32, 32))
    assert out.shape == (10, 3, 32, 32)
    with pytest.raises(FileNotFoundError):
        ood.quickdraw_bitmaps(tmp_path / "none")


def test_fit_to_shape():
    x = torch.rand(2, 3, 64, 48)
    assert ood.fit_to_shape(x, (1, 28, 28)).shape == (2, 1, 28, 28)
    assert ood.fit_to_shape(torch.rand(2, 1, 28, 28), (3, 32, 32)).shape == (2, 3, 32, 32)


def test_noise_sets_follow_the_official_code_and_the_papers_text(demo_fm):
    test = demo_fm.subset(range(200))
    x = ood.as_unit(test.images)
    grey = (x > 0.2) & (x < 0.8)  # pixels that clipping at 0 and 1 leaves alone
    gaussian = ood.make_ood_set("noise-gaussian", test) - x
    uniform = ood.make_ood_set("noise-uniform", test) - x
    assert float(gaussian[grey].std()) == pytest.approx(ood.NOISE_SIGMA, rel=0.05)
    assert float(uniform[grey].abs().max()) <= ood.NOISE_AMPLITUDE + 1e-6
    assert float(uniform[grey].std()) == pytest.approx(ood.NOISE_AMPLITUDE / math.sqrt(3), rel=0.05)
    assert ood.is_averaged("noise-gaussian") and not ood.is_averaged("noise-uniform:0.1")
    with pytest.raises(ValueError, match="ambiguous"):
        ood.make_ood_set("noise", test)
