"""The latent-space tools behind the dashboard, on a tiny model and the shipped demo images."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ibinn import explore, metrics


@pytest.fixture()
def view(tiny_grey, demo_fm):
    return explore.summarize(tiny_grey, demo_fm.images[:200], demo_fm.labels[:200])


def test_summary_agrees_with_the_model(tiny_grey, demo_fm, view):
    x = demo_fm.images[:200]
    assert np.allclose(view.proba, tiny_grey.predict_proba(x).numpy(), atol=1e-6)
    assert np.allclose(view.bits_per_dim, tiny_grey.bits_per_dim(x).numpy(), atol=1e-5)
    nll = -view.log_likelihood
    assert view.reference_nll_mean == pytest.approx(nll.mean())
    assert np.allclose(view.typicality, np.abs(nll - nll.mean()))
    assert np.allclose(view.entropy, metrics.entropy(view.proba))
    assert view.accuracy == pytest.approx((view.predicted == demo_fm.labels[:200].numpy()).mean())


def test_pca_of_the_means_spans_the_means(view):
    proj = explore.fit_projection("pca-means", view.z, view.mu)
    assert proj.components.shape == (2, view.z.shape[1])
    assert np.allclose(proj.components @ proj.components.T, np.eye(2), atol=1e-8)
    # the first axis is the direction along which the means vary most
    spread = proj.transform(view.mu).var(0)
    assert spread[0] >= spread[1]
    assert sum(proj.explained) <= 1 + 1e-9
    xy = explore.fit_projection("pca", view.z, view.mu).transform(view.z)
    assert xy.shape == (len(view.z), 2) and np.isfinite(xy).all()
    with pytest.raises(ValueError, match="unknown projection"):
        explore.fit_projection("tsne", view.z, view.mu)


def test_trajectory_starts_at_the_original_image(tiny_grey, demo_fm, view):
    image = demo_fm.images[3]
    traj = explore.trajectory(tiny_grey, image, "inversion", [0.0, 0.5, 1.0],
                              view.reference_nll_mean)
    assert np.allclose(traj.images[0], image.numpy() / 255.0)
    assert np.allclose(traj.images[-1], 1 - image.numpy() / 255.0, atol=1e-6)
    assert traj.z.shape == (3, view.z.shape[1])
    assert explore.transforms_for(1) == ["noise", "inversion"]
    with pytest.raises(ValueError, match="RGB rotation needs"):
        explore.apply_transform(tiny_grey, image, "rgb-rotation", 1.0)


def test_interpolation_ends_are_the_images(tiny_grey, demo_fm):
    a, b = demo_fm.images[0], demo_fm.images[1]
    path = explore.interpolation(tiny_grey, a, b, steps=5)
    assert path.images.shape == (5, 1, 28, 28)
    assert np.abs(path.images[0] - a.numpy() / 255.0).max() < 1e-4
    assert np.abs(path.images[-1] - b.numpy() / 255.0).max() < 1e-4
    assert np.allclose(path.proba.sum(1), 1.0)


def test_sample_grid_shares_noise_across_classes(tiny_grey):
    grid = explore.sample_grid(tiny_grey, 3, temperature=0.0, seed=1)
    assert grid.shape == (10, 3, 1, 28, 28)
    # T = 0 decodes the class mean itself: every sample of a class is the same image
    assert np.allclose(grid[:, 0], grid[:, 2])


def test_fit_image_converts_and_says_so():
    rgba = Image.new("RGBA", (64, 32), (255, 0, 0, 0))
    arr, notes = explore.fit_image(rgba, (1, 28, 28))
    assert arr.shape == (1, 28, 28) and arr.dtype == np.uint8
    assert arr.min() == 255  # fully transparent: flattened onto white
    assert any("transparency" in n for n in notes) and any("aspect" in n for n in notes)
    same, notes = explore.fit_image(Image.new("L", (28, 28), 7), (1, 28, 28))
    assert notes == [] and (same == 7).all()


def test_ood_verdict_uses_the_percentile():
    reference = np.arange(100, dtype=float)
    assert explore.ood_verdict(50.0, reference, 95).in_distribution
    verdict = explore.ood_verdict(99.0, reference, 95)
    assert not verdict.in_distribution and verdict.threshold == pytest.approx(94.05)
    assert verdict.percentile_of_score == 99.0
    assert explore.in_distribution_range(reference) == pytest.approx((4.95, 94.05))


def test_transforms_are_those_of_ibinn_ood(tiny_grey, demo_fm):
    from ibinn import ood

    x = demo_fm.images[:4]
    noisy = explore.apply_transform(tiny_grey, x, "noise", 0.1, seed=3)
    assert torch.equal(noisy, ood.uniform_noise(x, 0.1, seed=3))
    assert math.isclose(explore.TRANSFORMS["rgb-rotation"].max_strength, math.pi)


def test_class_separation_is_the_mean_distance_between_centres(tiny_grey):
    mu = torch.zeros_like(tiny_grey.mu)
    mu[1, 0], mu[2, 1] = 3.0, 4.0  # centres 0, 3·e0, 4·e1 and the rest at 0
    with torch.no_grad():
        saved = tiny_grey.mu.clone()
        tiny_grey.mu.copy_(mu)
        try:
            apart, noise = explore.class_separation(tiny_grey)
        finally:
            tiny_grey.mu.copy_(saved)
    k = mu.shape[0]
    # pairs: 0–1 3, 0–2 4, 1–2 5; each of the k−3 other centres (at 0) to 1 and 2: 3 and 4;
    # the others among themselves and to centre 0: 0
    total = 3 + 4 + 5 + (k - 3) * (3 + 4)
    assert apart == pytest.approx(total / (k * (k - 1) / 2))
    assert noise == pytest.approx(math.sqrt(mu.shape[1]))
