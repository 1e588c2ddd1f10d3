"""The dashboard (app/) under ``streamlit.testing.v1.AppTest``, on the bundled pretrained models.

Every page must render without an exception, show its charts and images, and react to its main
widgets. Models, demo latents and projections are cached per process (``st.cache_resource`` /
``st.cache_data``), so only the first page that needs a model pays for it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from PIL import Image

from ibinn import zoo
from ibinn.jobs import FIRST_RUN
from ibinn.train import TrainConfig, train

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(__file__).resolve().parent.parent / "app" / "main.py"
TIMEOUT = 180  # seconds per script run: the first run of a page loads and summarises a model
PAGES = ["models", "latent", "interpolation", "sampling", "ood", "gamma", "train", "your_image"]


def _ibinn_cards() -> list[zoo.ModelCard]:
    return [c for c in zoo.list_models() if c.kind == "ibinn"]


@pytest.fixture(scope="module", autouse=True)
def app_env(tmp_path_factory) -> Iterator[None]:
    """Training jobs write to a temporary runs folder, and the app sees only the bundled models
    (plus ``$IBINN_MODELS`` when a developer sets it)."""
    if not _ibinn_cards() and not os.environ.get("IBINN_MODELS"):
        pytest.skip("no IB-INN in pretrained/ (and no $IBINN_MODELS)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IBINN_RUNS", str(tmp_path_factory.mktemp("runs")))
        # the server's config hides error details from visitors; tests need to read them
        st.config.set_option("client.showErrorDetails", "full")
        yield


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def start(select: list[str] | None = None) -> AppTest:
    """A fresh session on the Models page, with ``select`` chosen in the sidebar."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert_clean(at)
    if select is not None:
        at.multiselect(key="selected_models").set_value(select).run()
        assert_clean(at)
    return at


def open_page(name: str, select: list[str] | None = None) -> AppTest:
    at = start(select)
    at.switch_page(f"views/{name}.py").run()
    assert_clean(at)
    return at


def _decode(obj):
    """Plotly JSON with its typed arrays (``{"dtype", "bdata", "shape"}``) as NumPy arrays."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=obj["dtype"])
            shape = obj.get("shape")
            return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures (plotly JSON, arrays decoded) by element key."""
    return {c.key: _decode(json.loads(c.proto.spec)) for c in at.get("plotly_chart")}


def image_of(fig: dict) -> np.ndarray:
    """The pixels of a figure's first trace (an image grid)."""
    return np.asarray(fig["data"][0]["z"])


def n_points(fig: dict) -> int:
    """Image points of a latent scatter (every trace but the last, the class means)."""
    return sum(len(t["x"]) for t in fig["data"][:-1])


def texts(at: AppTest) -> str:
    parts = [m.value for kind in ("markdown", "caption", "info", "success", "warning", "error")
             for m in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width, channels) if channels else (height, width)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


def test_selection_is_shared_through_the_address_bar() -> None:
    names = [c.name for c in _ibinn_cards()][1::-1]  # two models, not in the default order
    if len(names) < 2:
        pytest.skip("needs two bundled IB-INN models")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["model"] = names
    at.run()
    assert_clean(at)
    assert at.multiselect(key="selected_models").value == names
    at.multiselect(key="selected_models").set_value(names[:1]).run()
    assert at.query_params["model"] in (names[:1], names[0])


def two_models(at: AppTest) -> list[str]:
    """Two models of the same data set: the first two bundled ones, or the first two listed."""
    by_family: dict[str, list[str]] = {}
    for card in _ibinn_cards():
        by_family.setdefault(card.family, []).append(card.name)
    pairs = [names[:2] for names in by_family.values() if len(names) >= 2]
    if pairs:
        return pairs[0]
    options = at.multiselect(key="selected_models").options
    if len(options) < 2:
        pytest.skip("needs two IB-INN models")
    return [*options[:2]]


def select_points(at: AppTest, chart_key: str, indices: list[int]) -> AppTest:
    """Simulate a click / lasso on a plotly chart: AppTest has no API for plotly selection events,
    so the selection is sent as the chart's widget state, as the browser sends it."""
    chart = next(c for c in at.get("plotly_chart") if c.key == chart_key)
    points = [{"curve_number": 0, "point_number": k, "point_index": k, "x": 0.0, "y": 0.0,
               "customdata": [i, 0.5, 1.0, 1.0]} for k, i in enumerate(indices)]
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = chart.proto.id
    selection = {"points": points, "point_indices": list(range(len(points))), "box": [], "lasso": []}
    state.string_value = json.dumps({"selection": selection})
    return at._run(states)


# --------------------------------------------------------------------------- every page

@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders(name: str) -> None:
    at = open_page(name)
    assert at.title and at.title[0].value  # the page itself ran, not only the sidebar
    assert at.expander and at.expander[0].label == "What am I looking at?"
    assert at.sidebar.multiselect, "the shared model selector is missing"
    needs_charts = {"latent": 1, "interpolation": 2, "sampling": 1, "ood": 3, "gamma": 2, "your_image": 2}
    assert len(at.get("plotly_chart")) >= needs_charts.get(name, 0)
    if name in ("ood", "your_image"):
        assert at.image, "the page shows no image"


# --------------------------------------------------------------------------- Models

def test_models_page_lists_the_zoo_as_one_table() -> None:
    at = open_page("models")
    (table,) = at.dataframe
    rows = table.value
    assert len(rows) == len(zoo.list_models())  # one compact row per model, not a card each
    assert rows["test error %"].dtype.kind == "f"  # numbers, so that the columns sort as numbers
    for card in zoo.list_models():
        assert any(card.name in shown for shown in rows["model"])
    assert "| test error | bits/dim (exact) |" in texts(at)  # the details of one model
    details = at.selectbox(key="models_details")
    other = 1 if details.index == 0 else 0
    details.select_index(other).run()
    assert_clean(at)
    assert at.selectbox(key="models_details").index == other
    if len(_ibinn_cards()) >= 1:
        # the default selection is the bundled γ = 1 model of the smallest images when there is one
        gamma_1 = [c for c in _ibinn_cards() if c.mode == "ib" and c.gamma == 1]
        if gamma_1:
            default = min(gamma_1, key=lambda c: math.prod(json.loads(
                (c.path.parent / "config.json").read_text())["image_shape"]))
            assert at.multiselect(key="selected_models").value == [default.name]


def test_models_page_select_button_adds_to_the_selection() -> None:
    at = open_page("models")
    details = at.selectbox(key="models_details")
    ibinns = {c.name for c in _ibinn_cards()}
    names = [option.split(" · ")[-1] for option in details.options]  # "data set · zoo name"
    unselected = [i for i, k in enumerate(names)
                  if k in ibinns and k not in at.multiselect(key="selected_models").value]
    if unselected:
        details.select_index(unselected[0]).run()
    buttons = [b for b in at.button if b.key and b.key.startswith("select-")]
    if not buttons:
        pytest.skip("every model is already selected")
    before = list(at.multiselect(key="selected_models").value)
    buttons[0].click().run()
    assert_clean(at)
    after = at.multiselect(key="selected_models").value
    assert len(after) == len(before) + 1


def test_models_page_rejects_a_file_that_is_no_model() -> None:
    at = open_page("models")
    at.text_input(key="load_path").set_value(str(zoo.PRETRAINED_DIR / "manifest.json"))
    at.button(key="load_path_button").click().run()
    assert not at.exception
    assert any("Could not load the checkpoint" in e.value for e in at.error)
    upload = ("model.safetensors", b"not a model", "application/octet-stream")
    at.file_uploader(key="upload_model").set_value(upload).run()
    assert any("Could not load the checkpoint" in e.value for e in at.error)


def test_models_page_answers_the_same_for_every_path_outside_its_folders() -> None:
    """A visitor cannot map the server's files: a readable, an unreadable and a missing path
    outside pretrained/, runs/, data/ and $IBINN_DATA all get one and the same answer."""
    at = open_page("models")
    answers = []
    for path in ("/etc/passwd", "/etc/shadow", "/nonexistent/model.safetensors", str(APP),
                 "pretrained/../app/main.py", "~/.bashrc"):
        at.text_input(key="load_path").set_value(path)
        at.button(key="load_path_button").click().run()
        assert not at.exception
        answers.append([e.value for e in at.error])
    assert all(a == answers[0] for a in answers) and "only reads model files under" in answers[0][0]


def test_models_page_lists_a_bad_run_file_as_unusable_and_every_page_keeps_working() -> None:
    """Malformed model files in runs/ are listed with a plain reason; no page breaks."""
    runs = Path(os.environ["IBINN_RUNS"])
    from safetensors.torch import save_file

    bad = {"config-list": "[1]", "gamma-text": None, "not-json": "{", "huge": None}
    for name in bad:
        folder = runs / "broken" / name
        folder.mkdir(parents=True, exist_ok=True)
        config = {"image_shape": [1, 28, 28], "n_classes": 10}
        text = {"gamma-text": json.dumps(config | {"gamma": "abc"}),
                "huge": json.dumps(config | {"n_classes": 10**9})}.get(name, bad[name])
        save_file({"x": __import__("torch").zeros(1)}, str(folder / "model.safetensors"),
                  metadata={"format": "ibinn/1", "config": text})
    time.sleep(5.5)  # the model list is re-read every 5 s
    try:
        at = open_page("models")
        assert_clean(at)
        listed = " ".join(m.value for m in at.markdown)
        for name in bad:
            assert f"broken/{name}" in listed, listed
        assert "gamma must be a number" in listed and "n_classes must be in" in listed
        for page in ("latent", "train", "your_image"):
            assert_clean(open_page(page))
    finally:
        import shutil

        shutil.rmtree(runs / "broken")


def test_models_page_loads_a_checkpoint_from_a_path() -> None:
    cards = _ibinn_cards()
    if not cards:
        pytest.skip("no bundled IB-INN")
    at = open_page("models", select=[])
    at.text_input(key="load_path").set_value(str(cards[-1].path))
    at.button(key="load_path_button").click().run()
    assert_clean(at)
    assert at.multiselect(key="selected_models").value == [cards[-1].name]
    assert any("Loaded" in s.value for s in at.success)


def test_pages_ask_for_a_model_when_none_is_selected() -> None:
    at = open_page("latent", select=[])
    assert any("Choose a model" in i.value for i in at.info)
    assert not at.get("plotly_chart")


# --------------------------------------------------------------------------- Latent space

def test_latent_page_projections_and_colouring() -> None:
    at = open_page("latent")
    (fig,) = charts(at).values()
    assert "(of μ_y)" in fig["layout"]["xaxis"]["title"]["text"]
    assert fig["data"][-1]["name"] == "class means μ_y" and len(fig["data"]) >= 3
    assert n_points(fig) == 2000
    assert "NLL" in fig["data"][0]["hovertemplate"]

    at.radio(key="latent_projection").set_value("pca").run()
    assert_clean(at)
    (fig_pca,) = charts(at).values()
    assert fig_pca["layout"]["xaxis"]["title"]["text"].startswith("PC 1")
    assert not np.allclose(fig_pca["data"][0]["x"][:5], fig["data"][0]["x"][:5])

    at.radio(key="latent_color").set_value("predicted class").run()
    at.select_slider(key="latent_points").set_value(500).run()
    assert_clean(at)
    (fig_pred,) = charts(at).values()
    assert n_points(fig_pred) == 500


def test_latent_page_selection_opens_the_detail_panel() -> None:
    at = open_page("latent")
    key = next(iter(charts(at)))
    assert "Click a point" in texts(at)
    select_points(at, key, [7])
    assert_clean(at)
    assert at.image and "#7" in at.image[0].captions[0]
    assert {m.label for m in at.metric} >= {"NLL", "typicality score"}
    assert any(k.startswith("bars-") for k in charts(at))

    select_points(at, key, [3, 9, 12])
    assert_clean(at)
    assert "3 points selected" in texts(at)
    assert any(k.startswith("thumbs-") for k in charts(at))


@pytest.mark.slow
def test_latent_page_small_multiples() -> None:
    at = start()
    models = two_models(at)
    at = open_page("latent", select=models)
    figs = charts(at)
    assert len(figs) == 2
    assert set(figs) == {f"sel-{m}-pca-means" for m in models}  # one chart per model
    labels = [m.value for m in at.markdown]
    assert all(any(m in label for label in labels) for m in models)  # each titled by its model
    ranges = [(f["layout"]["xaxis"]["range"], f["layout"]["yaxis"]["range"]) for f in figs.values()]
    assert ranges[0] == ranges[1]  # one scale for every model, by default
    for fig in figs.values():  # that holds every point
        xs = [x for trace in fig["data"] for x in trace["x"]]
        assert ranges[0][0][0] < min(xs) and max(xs) < ranges[0][0][1]
    at.toggle(key="latent_shared_axes").set_value(False).run()
    assert all("range" not in f["layout"]["xaxis"] for f in charts(at).values())


@pytest.mark.slow
def test_latent_page_umap() -> None:
    at = open_page("latent")
    at.radio(key="latent_projection").set_value("umap").run(timeout=600)
    assert_clean(at)
    (fig,) = charts(at).values()
    assert fig["layout"]["xaxis"]["title"]["text"] == "UMAP 1"


# --------------------------------------------------------------------------- Interpolation

def test_interpolation_page_reacts_to_steps_and_images() -> None:
    at = open_page("interpolation")
    grid = charts(at)["interp_grid"]
    assert len(grid["layout"]["xaxis"]["ticktext"]) == 9
    layout = grid["layout"]  # each of the 9 images at least 64 px wide on screen
    assert layout["width"] - layout["margin"]["l"] - layout["margin"]["r"] >= 9 * 64
    at.slider(key="interp_steps").set_value(5).run()
    assert_clean(at)
    assert len(charts(at)["interp_grid"]["layout"]["xaxis"]["ticktext"]) == 5
    before = image_of(charts(at)["interp_grid"])
    at.selectbox(key="interp_b_class").set_value(2).run()
    assert_clean(at)
    assert not np.array_equal(image_of(charts(at)["interp_grid"]), before)

    at.radio(key="interp_source").set_value("random pair").run()
    assert_clean(at)
    assert "interp_grid" in charts(at)


def test_interpolation_page_uploads() -> None:
    at = open_page("interpolation")
    at.radio(key="interp_source").set_value("upload").run()
    assert any("Upload two images" in i.value for i in at.info)
    at.file_uploader(key="interp_up_a").set_value(("a.png", png(40, 30), "image/png"))
    at.file_uploader(key="interp_up_b").set_value(("b.txt", b"hello", "text/plain"))
    at.run()
    assert not at.exception
    assert any("is not an image" in e.value for e in at.error)
    at.file_uploader(key="interp_up_b").set_value(("b.png", png(28, 28, "L"), "image/png"))
    at.run()
    assert_clean(at)
    assert "interp_grid" in charts(at)


def test_interpolation_page_one_row_per_model() -> None:
    at = start()
    models = two_models(at)
    at = open_page("interpolation", select=models)
    grid = charts(at)["interp_grid"]
    assert len(grid["layout"]["yaxis"]["ticktext"]) == 2
    assert len([k for k in charts(at) if k.startswith("interp_post_")]) == 2


# --------------------------------------------------------------------------- Sampling

def test_sampling_page_temperature_and_seed() -> None:
    at = open_page("sampling")
    ((key, fig),) = charts(at).items()
    first = image_of(fig)
    at.slider(key="sample_temperature").set_value(0.3).run()
    assert_clean(at)
    second = image_of(charts(at)[key])
    assert first.shape == second.shape and not np.array_equal(first, second)
    at.number_input(key="sample_seed").set_value(5).run()
    assert_clean(at)
    assert not np.array_equal(image_of(charts(at)[key]), second)
    at.slider(key="sample_n").set_value(3).run()
    assert_clean(at)
    assert image_of(charts(at)[key]).shape[1] < second.shape[1]
    assert any("The centroids of real images lie" in c.value for c in at.caption)


def test_sampling_page_one_grid_per_model() -> None:
    at = start()
    at = open_page("sampling", select=two_models(at))
    assert len(charts(at)) == 2
    for fig in charts(at).values():  # 10 classes x 8 samples, each at least 64 px on screen
        layout = fig["layout"]
        assert layout["width"] - layout["margin"]["l"] - layout["margin"]["r"] >= 8 * 64
        assert layout["height"] - layout["margin"]["t"] - layout["margin"]["b"] >= 10 * 64


# --------------------------------------------------------------------------- OoD trajectories

@pytest.fixture(scope="module")
def rgb_models(tmp_path_factory) -> Path:
    """A folder with a tiny IB-INN trained for a few steps on the CIFAR-10 demo images: no RGB
    model is bundled yet, and the RGB-only parts of the pages need one."""
    folder = tmp_path_factory.mktemp("rgb-models")
    train(TrainConfig(dataset="demo:cifar10", preset="tiny", epochs=0.1, val_size=100, device="cpu",
                      out=str(folder / "cifar-tiny")), progress=False)
    return folder


@pytest.fixture()
def with_rgb_models(rgb_models: Path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("IBINN_MODELS", str(rgb_models))
    st.cache_data.clear()  # the model list is cached for a few seconds
    yield
    monkeypatch.delenv("IBINN_MODELS")
    st.cache_data.clear()


@pytest.mark.usefixtures("with_rgb_models")
def test_ood_page_rotates_rgb_images() -> None:
    at = start()
    (key,) = [o for o in at.multiselect(key="selected_models").options if "cifar-tiny" in o]
    at = open_page("ood", select=[key])
    transform = at.radio(key="ood_transform")
    assert transform.value == "rgb-rotation" and not at.info  # no "grey images" notice
    at.slider(key="ood_max_rgb-rotation").set_value(1.0).run()
    assert_clean(at)
    frames = charts(at)["ood_animation"]["frames"]
    assert len(frames) == 13
    at.select_slider(key="ood_step").set_value(0).run()
    assert_clean(at)


def test_ood_page_strength_transform_and_image() -> None:
    at = open_page("ood")
    figs = charts(at)
    assert set(figs) >= {"ood_animation", "ood_curves", "ood_bars"}
    bands = [s for s in figs["ood_curves"]["layout"]["shapes"] if s["type"] == "rect"]
    assert len(bands) == 3, "the in-distribution ranges are not shaded"
    animation = figs["ood_animation"]
    assert len(animation["frames"]) == 13
    # each frame's image at the model's own size (plotly draws its pixels as large as the axes
    # allow): upscaled copies made a new trajectory 7x heavier to send
    side = image_of(animation).shape
    assert image_of(animation["frames"][-1]).shape == side and side[0] <= 32
    assert animation["layout"]["updatemenus"] and animation["layout"]["sliders"]
    names = at.radio(key="ood_transform").options
    if at.multiselect(key="selected_models").value and "RGB rotation" not in names:
        assert "grey" in texts(at)  # grey data sets say why there is no RGB rotation

    at.slider(key="ood_steps").set_value(7).run()
    assert_clean(at)
    assert len(charts(at)["ood_animation"]["frames"]) == 7
    transform = at.radio(key="ood_transform")
    strength_key = f"ood_max_{'noise' if 'Uniform noise' in transform.options else 'inversion'}"
    transform.set_value(transform.options[-1] if "Uniform noise" not in transform.options
                        else "Uniform noise").run()
    assert_clean(at)
    at.slider(key=strength_key).set_value(0.1).run()
    assert_clean(at)
    before = charts(at)["ood_curves"]["data"][0]["y"]
    at.selectbox(key="ood_image_class").set_value(3).run()
    assert_clean(at)
    assert not np.allclose(charts(at)["ood_curves"]["data"][0]["y"], before)
    at.select_slider(key="ood_step").set_value(0).run()
    assert_clean(at)
    verdict = " ".join(v.value for v in [*at.success, *at.warning])
    assert at.image and "typicality" in verdict and "95th percentile" in verdict


# --------------------------------------------------------------------------- γ comparison

def test_gamma_page_uses_the_cards_without_evaluating(monkeypatch) -> None:
    import ibinn.evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("the γ page evaluated a model although its card holds the metrics")

    monkeypatch.setattr(ibinn.evaluate, "evaluate", refuse)
    at = open_page("gamma")
    figs = charts(at)
    curves = figs["gamma_curves"]
    ibinn_cards = [c for c in _ibinn_cards() if c.family == "fashion-mnist"]
    if ibinn_cards:
        first_panel = [t for t in curves["data"]
                       if t.get("xaxis", "x") == "x" and "legendgroup" not in t]  # not baselines
        assert sum(len(t["x"]) for t in first_panel) == len(ibinn_cards)  # one point per model
        on_path = [c for c in ibinn_cards if c.mode in ("ib", "lx-only", "ly-only")]
        assert max(len(t["x"]) for t in first_panel) == len(on_path)  # class-NLL not on the line
        assert "gamma_reliability" in figs
    if any(c.kind != "ibinn" for c in zoo.list_models()):
        baselines = {t["name"] for t in curves["data"] if t.get("line", {}).get("dash") == "dash"}
        assert baselines, "no baseline drawn"
        legend = [t["name"] for t in curves["data"] if t.get("showlegend")]
        assert sorted(legend) == sorted(baselines)  # each named once in the legend
    hist = [k for k in figs if k.startswith("gamma_hist_")]
    assert len(hist) == len(at.multiselect(key="selected_models").value)

    sets = at.selectbox(key="gamma_ood_set").options  # Table 1's sets, by their labels
    assert any("Table 1" in label for label in sets) and len(sets) == 4
    before = figs[hist[0]]["data"][1]["x"]
    at.selectbox(key="gamma_ood_set").select_index(1).run()
    assert_clean(at)
    assert not np.array_equal(charts(at)[hist[0]]["data"][1]["x"], before)


def test_pages_open_on_a_zoo_models_shipped_scores(monkeypatch) -> None:
    """OoD trajectories, γ comparison, Your image and Generative vs discriminative open on a zoo
    model without running its demo set or an OoD set through it: they read its derived.npz, and
    compute only the trajectory's few images or the one image shown."""
    from ibinn.model import IBINN

    batches: list[int] = []
    infer = IBINN.infer

    def counted(self, images, *args, **kwargs):
        batches.append(len(images))
        return infer(self, images, *args, **kwargs)

    monkeypatch.setattr(IBINN, "infer", counted)
    st.cache_data.clear()  # nothing computed by an earlier test may stand in for the shipped arrays
    st.cache_resource.clear()
    for page in ("ood", "gamma", "your_image", "versus"):
        open_page(page)
    assert batches and max(batches) <= 13, batches  # the OoD page's 13 steps at most


def test_gamma_page_shows_the_claims_checked_on_the_familys_cards() -> None:
    from ibinn import claims

    at = open_page("gamma")
    family = at.multiselect(key="selected_models").value[0].split("/")[0]  # zoo keys: family/model
    cards = [c for c in zoo.list_models() if c.family == family]
    body = texts(at)
    checks = claims.check_claims(cards, family)
    assert claims.markdown_claims(checks).strip() in body
    assert [c for c in checks if c.say]  # the shown family has sentences for class
    stale = claims.stale_note(cards, family)
    assert (stale in [w.value for w in at.warning]) if stale else not at.warning


def test_models_page_gives_bits_per_dim_both_ways() -> None:
    at = open_page("models")
    shown = at.selectbox(key="models_details").value  # a zoo key: the selected model's details
    card = next(c for c in zoo.list_models() if c.name == shown)
    table1 = card.metrics.get("test", {}).get("bits_per_dim_table1")
    if table1 is not None:
        assert f"Bits/dim as Table 1 computes it (official code: no normalisation Jacobian, " \
               f"no Gaussian constant): {table1:.3f}" in texts(at)


# --------------------------------------------------------------------------- Train

def _wait_for(at: AppTest, name: str, status: str, limit: float = 240.0) -> None:
    """Rerun the page (as its 1 s fragment does in a browser) until job ``name`` shows ``status``
    (the job list is per server, so earlier tests' jobs are listed too)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if any(m.value.startswith(f"**{name}** ") and m.value.endswith(f"**{status}**")
               for m in at.markdown):
            return
        time.sleep(0.5)
    raise AssertionError(f"job {name} did not reach {status!r} in {limit:.0f} s: {texts(at)}")


def _submit(at: AppTest, name: str, epochs: float, dataset: str = "demo:fashion-mnist",
            folder: str = "", gamma: str = "1", model: str = "ibinn", preset: str = "tiny") -> None:
    at.selectbox(key="train_dataset").set_value(dataset)
    at.selectbox(key="train_model").set_value(model)
    at.text_input(key="train_folder").set_value(folder)
    at.text_input(key="train_gamma").set_value(gamma)
    at.selectbox(key="train_preset").set_value(preset)
    at.number_input(key="train_epochs").set_value(epochs)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").set_value(name)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_train_page_runs_a_job_and_lists_its_model() -> None:
    at = open_page("train")
    _submit(at, "apptest-tiny", 0.1)
    assert any("Queued **apptest-tiny**" in s.value for s in at.success)
    _wait_for(at, "apptest-tiny", "finished")
    assert any("Finished: test error" in s.value for s in at.success)
    assert any(k.startswith("curves-") for k in charts(at))
    options = at.multiselect(key="selected_models").options
    assert any("apptest-tiny" in o for o in options), options


@pytest.mark.slow
def test_train_page_trains_a_baseline() -> None:
    at = open_page("train")
    _submit(at, "apptest-resnet", 0.1, model="resnet")
    _wait_for(at, "apptest-resnet", "finished")
    assert any("ResNet (discriminative)" in m.value for m in at.markdown)
    assert any("discriminative baseline has no likelihood" in s.value for s in at.success)


@pytest.mark.slow
def test_train_page_cancels_a_job() -> None:
    at = open_page("train")
    _submit(at, "apptest-cancel", 500.0)  # long enough never to finish first
    deadline = time.monotonic() + 120
    while not (buttons := [b for b in at.button if b.key and b.key.startswith("cancel-")]):
        assert time.monotonic() < deadline, "no Cancel button"
        at.run()
    buttons[0].click().run()  # the newest job is listed first
    _wait_for(at, "apptest-cancel", "cancelled")
    assert any("Cancelled" in w.value for w in at.warning)


def test_train_page_reports_bad_settings_and_missing_data() -> None:
    at = open_page("train")
    _submit(at, "apptest-bad-gamma", 0.1, gamma="minus one")
    assert any("Invalid settings" in e.value for e in at.error)
    missing = str(Path(os.environ["IBINN_RUNS"]) / "no-such-images")
    _submit(at, "apptest-no-data", 0.1, dataset="imagefolder:<dir>", folder=missing)
    assert any("Data missing" in e.value for e in at.error), [e.value for e in at.error]
    _submit(at, "apptest-outside", 0.1, dataset="imagefolder:<dir>", folder="/etc")
    assert any("only reads folders under" in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("typed", ["pretrained/no-such-images", "pretrained", "runs/../pretrained/x/../."])
def test_train_page_shows_a_folder_as_typed_never_the_servers_path(typed) -> None:
    at = open_page("train")
    _submit(at, "apptest-typed", 0.1, dataset="imagefolder:<dir>", folder=typed)
    errors = [e.value for e in at.error]
    assert any(e.startswith(f"Data missing: imagefolder:{typed}") for e in errors), errors
    assert not any(str(zoo.PRETRAINED_DIR.parent) in e for e in errors), errors


@pytest.mark.parametrize("epochs,gamma,words", [
    (math.nan, "1", "Epochs must be a finite number"), (math.inf, "1", "Epochs must be a finite number"),
    (-math.inf, "1", "Epochs must be a finite number"), (1000.0, "1", "Epochs must be a finite number"),
    (1.0, "nan", "γ must be a finite number"), (1.0, "1e999", "γ must be a finite number"),
    (1.0, "-inf", "γ must be a finite number"), (1.0, "abc", "γ must be a number")])
def test_train_page_refuses_non_finite_numbers(epochs, gamma, words) -> None:
    """Streamlit turns a NaN, ∞ or out-of-range number from the browser into the widget's default:
    the page must refuse it, not queue a job of the default 40 epochs."""
    at = open_page("train")
    assert at.number_input(key="train_epochs").value == FIRST_RUN.epochs  # the first run's, as shown
    _submit(at, "apptest-not-finite", epochs, gamma=gamma)
    assert any(words in e.value for e in at.error), texts(at)
    assert not at.success, texts(at)


def test_train_page_refuses_jobs_over_the_limits() -> None:
    at = open_page("train")
    at.selectbox(key="train_preset").set_value("paper")
    _submit(at, "apptest-huge", 500.0, dataset="cifar10", preset="paper")
    assert any("limit" in w.value and "minutes of compute" in w.value for w in at.warning), texts(at)


@pytest.mark.slow
def test_jobs_belong_to_their_session() -> None:
    """Two sessions: the second sees the first's job only as a count and cannot cancel it; the
    run's name never appears in the second session; the first cancels its own job."""
    a, b = open_page("train"), open_page("train")
    _submit(a, "apptest-private", 500.0)
    b.run()
    assert "apptest-private" not in texts(b), texts(b)
    assert any("of other sessions queued or running" in c.value for c in b.caption)
    assert not [x for x in b.button if x.key and x.key.startswith("cancel-")]
    deadline = time.monotonic() + 120
    while not (buttons := [x for x in a.button if x.key and x.key.startswith("cancel-")]):
        assert time.monotonic() < deadline, "no Cancel button"
        a.run()
    buttons[0].click().run()
    _wait_for(a, "apptest-private", "cancelled")
    b.run()
    assert not any("of other sessions" in c.value for c in b.caption)


# --------------------------------------------------------------------------- Your image

def test_your_image_page_demo_image_and_threshold() -> None:
    at = open_page("your_image")
    assert any("demo test image" in i.value for i in at.info)
    verdict = (at.success or at.warning)[0].value
    assert "typicality score" in verdict and "95th percentile" in verdict
    at.slider(key="yours_quantile").set_value(80.0).run()
    assert_clean(at)
    assert "80th percentile" in (at.success or at.warning)[0].value
    bars = charts(at)["yours_bars"]["data"][0]["y"]
    at.selectbox(key="yours_demo_class").set_value(1).run()
    assert_clean(at)
    assert not np.allclose(charts(at)["yours_bars"]["data"][0]["y"], bars)


def test_your_image_page_converts_an_upload() -> None:
    at = open_page("your_image")
    at.file_uploader(key="yours_upload").set_value(("photo.png", png(64, 48, "RGBA"), "image/png")).run()
    assert_clean(at)
    notice = " ".join(i.value for i in at.info)
    assert "Converted for the model" in notice and "resized from 64×48" in notice
    assert at.image and len(charts(at)) == 2
    at.checkbox(key="yours_invert").check().run()
    assert "colours inverted" in " ".join(i.value for i in at.info)


def test_your_image_page_rejects_a_file_that_is_no_image() -> None:
    at = open_page("your_image")
    at.file_uploader(key="yours_upload").set_value(("notes.txt", b"just some text", "text/plain")).run()
    assert not at.exception
    assert any("notes.txt is not an image" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_dashboard_checks_bundled_models_against_the_manifest(tmp_path, monkeypatch) -> None:
    """A bundled model whose weights changed on disk is refused, not shown as a wrong model."""
    import shutil
    import sys

    import ibinn

    sys.path.insert(0, str(APP.parent))
    import loading

    cards = _ibinn_cards()
    if not cards:
        pytest.skip("no bundled models")
    root = tmp_path / "pretrained"
    shutil.copytree(cards[0].path.parent, root / cards[0].name)
    shutil.copy(zoo.PRETRAINED_DIR / "manifest.json", root / "manifest.json")
    monkeypatch.setattr(zoo, "PRETRAINED_DIR", root)
    weights = root / cards[0].name / "model.safetensors"
    assert loading.load_model(str(weights), 1.0).config.image_shape  # intact: loads

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ibinn.CheckpointError, match="sha256"):
        loading.load_model(str(weights), 2.0)


def test_class_mean_labels_clear_the_stars_and_each_other() -> None:
    import sys

    sys.path.insert(0, str(APP.parent))
    import figures

    # four stars within a few pixels of each other (as γ = ∞'s means in a wide cloud) and one apart
    xy = np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01], [0.01, 0.01], [0.5, 0.9]])
    texts = ["Trouser", "Sandal", "Ankle boot", "Bag", "Coat"]
    extent, plot_px = ((-1.0, 1.0), (-1.0, 1.0)), (700.0, 450.0)
    offsets = np.array(figures.label_offsets(xy, texts, extent, plot_px))
    screen = (xy + 1) / 2 * plot_px * [1, -1]  # y down
    centres = screen + offsets
    half = np.stack([[len(t) * figures.LABEL_CHAR_PX + 8 for t in texts],
                     [figures.LABEL_LINE_PX] * len(texts)], axis=1) / 2
    for i in range(len(xy)):
        for j in range(len(xy)):  # no label box covers a star (8 px), its own or another
            assert np.any(np.abs(centres[i] - screen[j]) >= half[i] + 8), (texts[i], texts[j])
            if j > i:  # nor another label
                assert np.any(np.abs(centres[i] - centres[j]) >= half[i] + half[j]), (texts[i], texts[j])
    assert np.hypot(*offsets[4]) < 60  # a star apart keeps its label close
    alone = figures.label_offsets(xy[:1], texts[:1])  # a lone star's label goes right above it
    assert alone == [(pytest.approx(0.0, abs=1e-9), -(figures.LABEL_LINE_PX / 2 + 12))]
    assert figures.value_range(np.array([3.0, np.nan]), np.array([-1.0])) == (-1.0, 3.0)


@settings(max_examples=150, deadline=None)
@given(points=hst.lists(hst.tuples(hst.floats(-1, 1), hst.floats(-1, 1)), min_size=1, max_size=10),
       width=hst.floats(150, 900), height=hst.floats(100, 600), data=hst.data())
def test_class_mean_labels_stay_in_the_plot(points, width, height, data) -> None:
    """Wherever the means are (a star on the plot's edge: the Train page's "Trouser" was cut), each
    label's box lies inside the plot area."""
    import sys

    sys.path.insert(0, str(APP.parent))
    import figures

    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot"]
    texts = data.draw(hst.lists(hst.sampled_from(names), min_size=len(points), max_size=len(points)))
    xy, plot_px = np.array(points), np.array([width, height])
    offsets = np.array(figures.label_offsets(xy, texts, ((-1.0, 1.0), (-1.0, 1.0)), tuple(plot_px)))
    screen = (xy + 1) / 2 * plot_px
    screen[:, 1] = plot_px[1] - screen[:, 1]  # y down
    centres = screen + offsets
    half = np.stack([[len(t) * figures.LABEL_CHAR_PX + 8 for t in texts],
                     [figures.LABEL_LINE_PX] * len(texts)], axis=1) / 2
    assert np.all(centres - half >= -1e-6) and np.all(centres + half <= plot_px + 1e-6), texts
