"""The latent-space tools behind the dashboard, on a tiny model and the shipped demo images."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra.numpy import arrays as np_arrays
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


# --------------------------------------------------------------------------- latent-space questions

def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    counts = explore.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 0], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [2, 0, 1]]
    with pytest.raises(ValueError, match="differ in length"):
        explore.confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        explore.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="integers"):
        explore.confusion_matrix([0.5], [0], 3)


@settings(max_examples=50, deadline=None)
@given(hst.integers(1, 6).flatmap(lambda k: hst.tuples(
    hst.just(k), hst.lists(hst.tuples(hst.integers(0, k - 1), hst.integers(0, k - 1)), max_size=60))))
def test_confusion_matrix_property(case):
    k, pairs = case
    labels = [t for t, _ in pairs]
    predicted = [p for _, p in pairs]
    counts = explore.confusion_matrix(np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int), k)
    assert counts.shape == (k, k) and counts.sum() == len(pairs)
    assert counts.sum(1).tolist() == np.bincount(labels, minlength=k).tolist()
    assert np.trace(counts) == sum(t == p for t, p in pairs)


def test_most_confused_triple_takes_both_directions():
    confusion = np.diag([50] * 5)
    confusion[1, 3], confusion[3, 1] = 4, 5  # 9 mistakes between 1 and 3
    confusion[0, 2] = 8  # more in one direction, fewer in all
    confusion[4, 3], confusion[1, 2] = 2, 1  # 4 confused with 3 twice, 2 with 1 once
    assert explore.most_confused_triple(confusion) == (1, 3, 4)
    assert explore.most_confused_triple(np.eye(3)) == (0, 1, 2)  # no mistakes: lowest indices
    with pytest.raises(ValueError, match="at least 3 classes"):
        explore.most_confused_triple(np.eye(2))


def test_class_plane_goes_through_the_three_means():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(5, 12))
    proj = explore.class_plane(mu, (4, 1, 2), names=list("abcde"))
    assert np.allclose(proj.components @ proj.components.T, np.eye(2), atol=1e-12)
    xy = proj.transform(mu[[4, 1, 2]])
    # distances within the plane are latent distances, and the triangle is centred
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.linalg.norm(xy[i] - xy[j]) == pytest.approx(
            np.linalg.norm(mu[[4, 1, 2]][i] - mu[[4, 1, 2]][j]), rel=1e-5)
    assert np.allclose(xy.mean(0), 0, atol=1e-6)
    assert xy[0, 1] == pytest.approx(xy[1, 1], abs=1e-6)  # axis 1 runs from a to b
    assert proj.axis_titles == ("e → b", "⊥, towards c")
    same = explore.fit_projection("class-plane", mu[:3], mu, classes=(4, 1, 2))
    assert np.allclose(same.components, proj.components)
    with pytest.raises(ValueError, match="three different"):
        explore.class_plane(mu, (1, 1, 2))
    with pytest.raises(ValueError, match="one line"):
        explore.class_plane(np.array([[0.0, 0], [1, 1], [2, 2]]), (0, 1, 2))
    with pytest.raises(ValueError, match="needs three classes"):
        explore.fit_projection("class-plane", mu[:3], mu)


def test_nearest_neighbours_are_sorted_and_exclude_the_point():
    z = np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    ids, distances = explore.nearest_neighbours(z, 0, 3)
    assert ids.tolist() == [2, 4, 3] and distances.tolist() == [1.0, 1.0, 2.0]  # tie: lower index
    with pytest.raises(ValueError, match="k"):
        explore.nearest_neighbours(z, 0, 5)
    with pytest.raises(ValueError, match="index"):
        explore.nearest_neighbours(z, 7, 1)


@settings(max_examples=40, deadline=None)
@given(np_arrays(np.float32, hst.tuples(hst.integers(3, 30), hst.integers(2, 6)),
                 elements=hst.floats(-100, 100, width=32)), hst.data())
def test_nearest_neighbours_property(z, data):
    index = data.draw(hst.integers(0, len(z) - 1))
    k = data.draw(hst.integers(1, len(z) - 1))
    ids, distances = explore.nearest_neighbours(z, index, k)
    assert len(ids) == k and index not in ids and len(set(ids.tolist())) == k
    assert np.all(np.diff(distances) >= 0)
    others = np.delete(np.linalg.norm(z.astype(np.float64) - z[index], axis=1), index)
    assert np.allclose(distances, np.sort(others)[:k])  # no point outside is nearer


@settings(max_examples=30, deadline=None)
@given(np_arrays(np.float64, hst.tuples(hst.integers(3, 8), hst.integers(3, 10)),
                 elements=hst.floats(-10, 10)), hst.data())
def test_class_plane_property(mu, data):
    classes = data.draw(hst.permutations(range(len(mu))))[:3]
    try:
        proj = explore.class_plane(mu, classes)
    except ValueError as err:  # only for means (nearly) on one line
        assert "one line" in str(err)
        return
    assert np.allclose(proj.components @ proj.components.T, np.eye(2), atol=1e-6)
    # the three means lie in the plane: projecting and lifting back returns them
    lifted = proj.transform(mu[classes]) @ proj.components + proj.center
    assert np.allclose(lifted, mu[classes].astype(np.float32), atol=1e-3)


def test_knn_embedding_places_points_among_their_neighbours():
    rng = np.random.default_rng(1)
    anchors = np.concatenate([rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (20, 4))])
    anchor_xy = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 10.0)])
    xy = explore.knn_embedding(anchors, anchor_xy, [[0.0] * 4, [5.0] * 4, [4.9] * 4])
    assert np.allclose(xy, [[0, 0], [10, 10], [10, 10]], atol=1e-6)
    proj = explore.Projection("umap", anchors=anchors, anchor_xy=anchor_xy)
    assert np.allclose(proj.transform(np.full(4, 5.0)), [[10, 10]])
    with pytest.raises(ValueError, match="anchor_xy"):
        explore.knn_embedding(anchors, anchor_xy[:3], anchors[:1])


def test_independent_noise_changes_rows_but_keeps_the_means(tiny_grey):
    shared = explore.sample_grid(tiny_grey, 2, 1.0, seed=3, classes=[0, 1])
    own = explore.sample_grid(tiny_grey, 2, 1.0, seed=3, classes=[0, 1], independent=True)
    assert np.array_equal(shared[0], explore.sample_grid(tiny_grey, 2, 1.0, seed=3, classes=[0])[0])
    assert not np.allclose(own, shared)
    means = explore.sample_grid(tiny_grey, 1, 0.0, classes=[0, 1], independent=True)
    assert np.allclose(means[:, 0], tiny_grey.decode(tiny_grey.mu[:2].detach()).clamp(0, 1).numpy(),
                       atol=1e-6)


def test_samples_around_given_centres(tiny_grey):
    mu = tiny_grey.mu.detach().numpy()
    around_mu = explore.sample_grid(tiny_grey, 2, 0.7, seed=5, centres=mu)
    assert np.allclose(around_mu, explore.sample_grid(tiny_grey, 2, 0.7, seed=5), atol=1e-6)
    shifted = mu + 3.0
    at_centres = explore.sample_grid(tiny_grey, 1, 0.0, centres=shifted)[:, 0]
    assert np.allclose(at_centres, tiny_grey.decode(torch.from_numpy(shifted)).clamp(0, 1).numpy(),
                       atol=1e-6)
    assert not np.allclose(at_centres, explore.sample_grid(tiny_grey, 1, 0.0)[:, 0])
    with pytest.raises(ValueError, match="centres must be"):
        explore.sample_grid(tiny_grey, 1, centres=mu[:3])
    with pytest.raises(ValueError, match="centre must be one latent"):
        tiny_grey.sample(0, 1, centre=mu[:2])


def test_class_centroids_and_spread_ratio():
    z = np.array([[0, 0], [2, 0], [10, 0], [10, 2]], dtype=float)
    labels = np.array([0, 0, 1, 1])
    assert np.allclose(explore.class_centroids(z, labels, 2), [[1, 0], [10, 1]])
    # centroids (1, 0), (10, 1): each √(81 + 1)/2 from their mean; every point 1 from its centroid
    assert explore.spread_ratio(z, labels, 2) == pytest.approx(math.sqrt(82) / 2)
    with pytest.raises(ValueError, match=r"classes \[2\] have no images"):
        explore.class_centroids(z, labels, 3)
    with pytest.raises(ValueError, match="one entry per image"):
        explore.class_centroids(z, labels[:3], 2)


def test_centroid_offset_is_the_mean_distance_from_the_class_means(tiny_grey):
    mu = tiny_grey.mu.detach().double().numpy()
    shifted = mu.copy()
    shifted[0, 0] += 3.0
    shifted[1, :2] += 4.0 / math.sqrt(2)  # 4 away
    assert explore.centroid_offset(tiny_grey, shifted) == pytest.approx(7.0 / len(mu), rel=1e-5)
    with pytest.raises(ValueError, match="centroids must"):
        explore.centroid_offset(tiny_grey, mu[:3])


def test_visible_share_of_a_path(tiny_grey, demo_fm):
    z = np.zeros((3, 4))
    z[1, :2] = 1.0
    z[2] = [3.0, 0.0, 4.0, 0.0]  # moved 5, of which 3 along the first axis
    assert explore.visible_share(z[:, :2], z) == pytest.approx(0.6)
    assert explore.visible_share(np.zeros((3, 2)), np.zeros((3, 4))) == 0.0
    view = explore.summarize(tiny_grey, demo_fm.images[:30])
    proj = explore.fit_projection("pca", view.z, view.mu)  # orthonormal axes: at most all of it
    assert 0 < explore.visible_share(proj.transform(view.z[:2]), view.z[:2]) <= 1 + 1e-6
    with pytest.raises(ValueError, match="one point per latent"):
        explore.visible_share(z[:2, :2], z)


def test_recognised_by_compares_each_row_with_its_class(tiny_grey, demo_fm):
    x = demo_fm.images[:200]
    predicted = tiny_grey.predict_proba(x).numpy().argmax(1)
    k = int(np.bincount(predicted).argmax())  # a class the classifier predicts twice at least
    rows = x[predicted == k][:2].numpy()[None] / 255.0  # (1, 2, C, H, W)
    assert explore.recognised_by(tiny_grey, rows, classes=[k]).tolist() == [1.0]
    assert explore.recognised_by(tiny_grey, rows, classes=[(k + 1) % 10]).tolist() == [0.0]
    with pytest.raises(ValueError, match="classes must name"):
        explore.recognised_by(tiny_grey, rows, classes=[0, 1])


def test_sample_recognition_is_the_share_recognised_on_the_grid(tiny_grey):
    shares = explore.sample_recognition(tiny_grey, tiny_grey, [0.0, 1.0], n_per_class=2, seed=4)
    grid = explore.sample_grid(tiny_grey, 2, 1.0, seed=4, independent=True)
    assert shares.shape == (2,)
    assert shares[1] == pytest.approx(explore.recognised_by(tiny_grey, grid).mean())


def test_projection_arrays_round_trip(tiny_grey, demo_fm):
    demo = demo_fm.subset(np.arange(120))
    linear = ("pca-means", "class-plane", "pca")  # UMAP's fit would take a minute here
    arrays = explore.projection_arrays(tiny_grey, demo, linear)
    assert all(k.startswith(("projection/", "latent/")) for k in arrays)
    assert {f"projection/{m}/xy" for m in linear} <= set(arrays)
    view = explore.summarize(tiny_grey, demo.images, demo.labels)
    scores = explore.shipped_scores(arrays, demo.labels.numpy(), demo.image_shape)
    assert np.array_equal(scores.predicted, view.predicted)
    assert np.allclose(scores.bits_per_dim, view.bits_per_dim, atol=1e-4)
    assert np.allclose(scores.typicality, view.typicality, atol=1e-2)
    assert np.allclose(scores.entropy, view.entropy, atol=2e-3)
    assert scores.reference_nll_mean == pytest.approx(view.reference_nll_mean, rel=1e-6)
    centroids = explore.class_centroids(view.z, view.labels, 10)
    assert np.allclose(arrays["latent/centroids"], centroids, atol=1e-5)
    assert float(arrays["latent/spread_ratio"]) == pytest.approx(
        explore.spread_ratio(view.z, view.labels, 10), rel=1e-6)
    assert scores.accuracy == pytest.approx(view.accuracy)
    triple = tuple(arrays["projection/class-plane/classes"].tolist())
    assert triple == explore.most_confused_triple(
        explore.confusion_matrix(view.labels, view.predicted, len(demo.classes)))
    for method in linear:
        fitted = explore.fit_projection(method, view.z, view.mu, classes=triple)
        proj, xy, mu_xy = explore.shipped_projection(arrays, method, demo.classes)
        assert np.allclose(xy, fitted.transform(view.z), rtol=2e-3, atol=2e-2)
        assert np.allclose(mu_xy, fitted.transform(view.mu), rtol=2e-3, atol=2e-2)
        assert proj.axis_titles == fitted.axis_titles or method == "class-plane"
        with pytest.raises(ValueError, match="cannot place new latents"):
            proj.transform(view.z[:1])
    assert explore.shipped_projection(arrays, "class-plane", demo.classes)[0].axis_titles[0] == (
        f"{demo.classes[triple[0]]} → {demo.classes[triple[1]]}")
    assert explore.shipped_scores(arrays, demo.labels.numpy()[:10], demo.image_shape) is None  # stale
    older = {k: v for k, v in arrays.items() if k != "projection/scores/entropy"}
    assert explore.shipped_scores(older, demo.labels.numpy(), demo.image_shape) is None
    assert explore.shipped_projection({}, "pca") is None


# --------------------------------------------------------------------------- generative vs discriminative

@pytest.fixture()
def tiny_baseline(tiny_grey):
    """A tiny discriminative VIB (it has an OoD score, the info loss, but no likelihood)."""
    import ibinn

    return ibinn.MODEL_TYPES["vib"](tiny_grey.config)


def test_capability_table_reads_the_declarations():
    import ibinn

    resnet, vib = ibinn.MODEL_TYPES["resnet"], ibinn.MODEL_TYPES["vib"]
    table = explore.capability_table({"IB-INN": ibinn.IBINN, "ResNet": resnet, "VIB": vib})
    assert list(table) == list(ibinn.IBINN.capabilities())
    assert all(row["IB-INN"] for row in table.values())
    assert [cap for cap, row in table.items() if row["ResNet"]] == ["classify"]
    assert table["OoD score"]["VIB"] and not table["likelihood"]["VIB"]
    assert explore.is_discriminative(vib) and not explore.is_discriminative(ibinn.IBINN)


def test_summary_and_trajectory_of_a_model_without_likelihood(tiny_baseline, demo_fm):
    x = demo_fm.images[:20]
    view = explore.summarize(tiny_baseline, x, demo_fm.labels[:20])
    assert np.allclose(view.proba, tiny_baseline.predict_proba(x).numpy(), atol=1e-6)
    assert np.isnan(view.bits_per_dim).all() and np.isnan(view.typicality).all()
    assert view.mu.size == 0
    traj = explore.trajectory(tiny_baseline, x[0], "noise", [0.0, 0.2], None)
    assert np.allclose(traj.proba[0], view.proba[0], atol=1e-6)
    assert np.isnan(traj.bits_per_dim).all()


def test_image_scores_are_each_models_own(tiny_grey, tiny_baseline, demo_fm):
    x = demo_fm.images[:30]
    scores = explore.image_scores(tiny_grey, x, reference_nll_mean=100.0)
    proba = tiny_grey.predict_proba(x).double().numpy()
    assert np.allclose(scores["confidence"], proba.max(1))
    assert np.allclose(scores["entropy"], metrics.entropy(proba))
    nll = -tiny_grey.log_likelihood(x).double().numpy()
    assert np.allclose(scores["typicality"], np.abs(nll - 100.0), rtol=1e-5)
    assert np.allclose(scores["bits_per_dim"], tiny_grey.infer(x).bits_per_dim.double().numpy())
    baseline = explore.image_scores(tiny_baseline, x)
    assert set(baseline) == {"confidence", "entropy", "info_loss"}
    assert np.allclose(baseline["info_loss"], tiny_baseline.info_loss(x).numpy(), rtol=1e-5)


def test_detector_scores_survive_the_shipped_arrays(tiny_grey, demo_fm):
    import io

    from ibinn import ood

    demo = demo_fm.subset(range(100))
    scores = explore.detector_scores(tiny_grey, demo, ood_limit=40)
    assert list(scores.ood) == ood.default_sets(tuple(demo.image_shape))
    assert all(len(s["entropy"]) == 40 for s in scores.ood.values())
    proba = tiny_grey.predict_proba(demo.images).numpy()
    assert scores.ece == pytest.approx(metrics.calibration(proba, demo.labels.numpy())["ece"])
    assert scores.reliability["counts"].sum() == proba.size  # every class probability is binned
    arrays = explore.detector_arrays(tiny_grey, demo, ood_limit=40)
    assert all(key.startswith("detector/") for key in arrays)
    assert arrays["detector/in/typicality"].dtype == np.float16
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as stored:
        back = explore.DetectorScores.from_arrays({key: stored[key] for key in stored.files})
    assert back.ece == scores.ece and back.reference_nll_mean == scores.reference_nll_mean
    assert np.allclose(back.in_distribution["confidence"], scores.in_distribution["confidence"],
                       rtol=1e-3)
    assert np.allclose(back.reliability["accuracy"], scores.reliability["accuracy"], equal_nan=True)
    assert back.aucs == scores.aucs == explore.detector_aucs(scores)  # shipped, not recomputed
    for name, out in scores.ood.items():  # the γ page's histograms: bits/dim of every OoD set
        assert np.allclose(back.ood[name]["bits_per_dim"], out["bits_per_dim"], rtol=2e-3)
    assert explore.DetectorScores.from_arrays({"projection/xy": np.zeros(2)}) is None
    older = {k: v for k, v in arrays.items() if "bits_per_dim" not in k}  # shipped before bits/dim
    assert explore.DetectorScores.from_arrays(older) is None


def _scores(conf_in, conf_out, typ_in, typ_out) -> explore.DetectorScores:
    """Hand-made scores of one in-distribution set and one OoD set called "odd"."""
    def block(conf, typ):
        return {"confidence": np.asarray(conf, float), "typicality": np.asarray(typ, float)}

    return explore.DetectorScores(block(conf_in, typ_in), {"odd": block(conf_out, typ_out)},
                                  {}, 0.0, 0.0)


def test_max_softmax_flags_low_confidence_and_typicality_high_scores():
    # confident on real images, unsure on the OoD set: max-softmax separates perfectly; the
    # typicality scores point the wrong way round
    aucs = explore.detector_aucs(_scores([0.9, 0.95, 0.99], [0.3, 0.5], [5, 6, 7], [1, 2]))
    assert aucs == {"odd": {"max-softmax": 100.0, "typicality": 0.0}}
    half = explore.detector_aucs(_scores([0.9, 0.5], [0.9, 0.5], [1, 2], [1, 2]))
    assert half["odd"]["max-softmax"] == pytest.approx(50.0)


def test_detector_duels_name_the_winner_or_a_tie():
    aucs = {"IB-INN": {"a": {"max-softmax": 70.0, "typicality": 99.0}, "b": {"typicality": 60.0},
                       "c": {"typicality": 80.0}},
            "ResNet": {"a": {"max-softmax": 90.0}, "b": {"max-softmax": 95.0},
                       "c": {"max-softmax": 80.5}}}
    duels = explore.detector_duels(aucs)
    assert [d.winner for d in duels] == ["IB-INN", "ResNet", None]
    assert duels[0].best == (("IB-INN", "typicality", 99.0), ("ResNet", "max-softmax", 90.0))
    assert duels[1].margin == pytest.approx(-35.0)
    assert "ResNet ahead by 35.0 points" in duels[1].sentence and "tie" in duels[2].sentence
    assert explore.duel_summary(duels) == "IB-INN wins on 1 of 3 OoD sets, ResNet on 1, 1 tie."
    with pytest.raises(ValueError, match="two models"):
        explore.detector_duels({"only": aucs["IB-INN"]})
