"""The Latent space page's class plane, confusion matrix and nearest neighbours, its shipped
first view, and the Sampling page's class means and noise option, under AppTest.

They run on Fashion-MNIST γ = 1, the dashboard's default model. The shipped path is tested with
derived arrays computed here (``explore.projection_arrays``) and handed to the app in place of
``zoo.derived``, so that the test does not depend on whether pretrained/ ships them yet.
"""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st

import ibinn
from ibinn import explore, zoo
from tests.test_app import (  # noqa: F401  (app_env: the module's autouse environment)
    app_env,
    assert_clean,
    charts,
    image_of,
    open_page,
    select_points,
    texts,
)

MODEL = "fashion-mnist/gamma-1"
pytestmark = pytest.mark.skipif(MODEL not in {c.name for c in zoo.list_models()},
                                reason=f"needs {MODEL} in pretrained/")


@pytest.fixture(scope="module")
def demo() -> ibinn.ImageData:
    return ibinn.load_dataset("demo:fashion-mnist")


@pytest.fixture(scope="module")
def view(demo) -> explore.LatentView:
    return explore.summarize(zoo.load(MODEL, device="cpu"), demo.images, demo.labels)


@pytest.fixture(autouse=True)
def no_shipped_arrays(monkeypatch):
    """The computed path by default (whatever pretrained/ ships), on fresh caches."""
    monkeypatch.setattr(zoo, "derived", lambda name, root=zoo.PRETRAINED_DIR: {})
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def scatter(at) -> dict:
    """The latent scatter (the only chart whose key starts with "sel-")."""
    (fig,) = [f for k, f in charts(at).items() if k.startswith("sel-")]
    return fig


def test_class_plane_starts_on_the_most_confused_classes(demo, view) -> None:
    at = open_page("latent", [MODEL])
    at.radio(key="latent_projection").set_value("class-plane").run()
    assert_clean(at)
    expected = explore.most_confused_triple(
        explore.confusion_matrix(view.labels, view.predicted, len(demo.classes)))
    assert tuple(at.selectbox(key=f"latent_plane_{i}").value for i in range(3)) == expected
    a, b, c = (demo.classes[k] for k in expected)
    fig = scatter(at)
    assert fig["layout"]["xaxis"]["title"]["text"] == f"{a} → {b}"
    assert fig["layout"]["yaxis"]["title"]["text"] == f"⊥, towards {c}"
    # the stars of the three classes: a and b on one horizontal line, centred with c
    stars = np.stack([fig["data"][-1]["x"], fig["data"][-1]["y"]], 1)[list(expected)]
    assert stars[0, 1] == pytest.approx(stars[1, 1], abs=1e-6)
    assert np.allclose(stars.mean(0), 0, atol=1e-5)

    other = next(k for k in range(len(demo.classes)) if k not in expected)
    at.selectbox(key="latent_plane_2").set_value(other).run()
    assert_clean(at)
    assert scatter(at)["layout"]["yaxis"]["title"]["text"] == f"⊥, towards {demo.classes[other]}"

    at.selectbox(key="latent_plane_2").set_value(expected[0]).run()
    assert not at.exception
    assert any("three different classes" in w.value for w in at.warning)
    assert not [k for k in charts(at) if k.startswith("sel-")]


def test_confusion_matrix_and_its_cells(demo, view) -> None:
    at = open_page("latent", [MODEL])
    assert at.radio(key="latent_question").value is None  # nothing asked, nothing computed
    at.radio(key="latent_question").set_value("confusion").run()
    assert_clean(at)
    heatmap = charts(at)[f"confusion-{MODEL}"]
    counts = explore.confusion_matrix(view.labels, view.predicted, len(demo.classes))
    assert np.array_equal(np.asarray(heatmap["data"][0]["text"]), counts)
    mistakes = np.where(np.eye(len(counts), dtype=bool), -1, counts)
    true, predicted = (int(i) for i in np.unravel_index(np.argmax(mistakes), mistakes.shape))
    at.selectbox(key="latent_cm_true").set_value(true).run()
    at.selectbox(key="latent_cm_pred").set_value(predicted).run()
    assert_clean(at)
    n = int(counts[true, predicted])
    assert f"{n} demo images of class **{demo.classes[true]}** predicted as" in texts(at)
    members = np.flatnonzero((view.labels == true) & (view.predicted == predicted))[:24]
    assert [c.split(" · ")[0] for c in at.image[-1].captions] == [f"#{i}" for i in members]

    at.selectbox(key="latent_cm_pred").set_value(true).run()  # the diagonal: correct ones
    assert f"{int(counts[true, true])} demo images" in texts(at)


def test_nearest_neighbours_of_a_chosen_and_a_clicked_image(view) -> None:
    at = open_page("latent", [MODEL])
    at.radio(key="latent_question").set_value("neighbours").run()
    at.number_input(key="latent_nn_index").set_value(17).run()
    at.slider(key="latent_nn_k").set_value(4).run()
    assert_clean(at)
    ids, distances = explore.nearest_neighbours(view.z, 17, 4)
    captions = at.image[-1].captions
    assert captions[0] == "#17 (query)" and len(captions) == 5
    assert [float(c.rsplit("d ", 1)[1]) for c in captions[1:]] == pytest.approx(distances, abs=0.06)

    select_points(at, f"sel-{MODEL}-pca-means", [42])  # a click picks the image to ask about
    assert_clean(at)
    assert at.number_input(key="latent_nn_index").value == 42
    assert at.image[-1].captions[0] == "#42 (query)"


def test_shipped_arrays_spare_the_first_view_any_inference(monkeypatch, demo, view) -> None:
    model = zoo.load(MODEL, device="cpu")
    arrays = explore.projection_arrays(model, demo, ("pca-means", "class-plane", "pca"), view)
    # a stand-in for UMAP's shipped embedding (fitting it here would take a minute)
    arrays["projection/umap/xy"] = (arrays["projection/pca/xy"] * 3).astype(np.float16)
    arrays["projection/umap/mu_xy"] = arrays["projection/pca/mu_xy"]
    monkeypatch.setattr(zoo, "derived", lambda name, root=zoo.PRETRAINED_DIR:
                        arrays if name == MODEL else {})
    calls = []
    summarize = explore.summarize
    monkeypatch.setattr(explore, "summarize", lambda *a, **k: calls.append(1) or summarize(*a, **k))
    at = open_page("latent", [MODEL])
    for method in ("pca-means", "class-plane", "umap", "pca"):
        at.radio(key="latent_projection").set_value(method).run()
        assert_clean(at)
        fig = scatter(at)
        xs = np.concatenate([t["x"] for t in fig["data"][:-1]])
        assert np.allclose(np.sort(xs), np.sort(arrays[f"projection/{method}/xy"][:, 0]), atol=1e-3)
    assert scatter(at)["layout"]["xaxis"]["title"]["text"].startswith("PC 1 (")
    at.radio(key="latent_question").set_value("confusion").run()
    assert_clean(at)
    assert not calls, "the shipped views ran the demo set through the model"
    at.radio(key="latent_question").set_value("neighbours").run()  # these need the latents
    assert_clean(at)
    assert len(calls) == 1


def test_sampling_shows_the_class_means_and_independent_noise(view) -> None:
    at = open_page("sampling", [MODEL])
    assert at.slider(key="sample_temperature").value == pytest.approx(0.6)
    (fig,) = charts(at).values()
    assert fig["layout"]["xaxis"]["ticktext"][0] == "centroid (T = 0)"  # the real images' centroid
    model, resnet = zoo.load(MODEL, device="cpu"), zoo.load("fashion-mnist/resnet", device="cpu")
    centroids = explore.class_centroids(view.z, view.labels, 10)  # computed: nothing shipped here
    expected = [explore.recognised_by(resnet, explore.sample_grid(model, 8, 0.6, 0, centres=c)).mean()
                for c in (centroids, None)]
    assert (f"The ResNet recognises **{expected[0]:.0%}** of these samples as their row's class "
            f"({expected[1]:.0%} around μ_y") in at.caption[0].value
    at.radio(key="sample_around").set_value("mu").run()
    assert_clean(at)
    around_mu = charts(at)[f"samples_{MODEL}"]
    assert around_mu["layout"]["xaxis"]["ticktext"][0] == "μ_y (T = 0)"
    assert not np.array_equal(image_of(around_mu), image_of(fig))
    shared = image_of(around_mu)
    at.toggle(key="sample_independent").set_value(True).run()
    assert_clean(at)
    independent = image_of(charts(at)[f"samples_{MODEL}"])
    assert shared.shape == independent.shape and not np.array_equal(shared, independent)
    width = (shared.shape[1] + 2) // 9  # 1 mean + 8 samples per row, 2 px gaps
    assert np.array_equal(shared[:, :width - 2], independent[:, :width - 2])  # the means stay
    at.slider(key="sample_temperature").set_value(0.0).run()
    zero = image_of(charts(at)[f"samples_{MODEL}"])
    assert np.array_equal(zero[:, :width - 2], zero[:, width:2 * width - 2])  # T = 0: the mean
