"""The "Generative vs discriminative" page and the OoD page's colour counterpart, under AppTest.

The page needs an IB-INN and a discriminative baseline of one family in pretrained/ (Fashion-MNIST
ships γ = 1 with a ResNet, a VIB and an i-RevNet). Zoo models ship their detector scores
(derived.npz); without them the first render computes them, which takes a minute.
"""

from __future__ import annotations

import pytest

from ibinn import zoo
from tests.test_app import (  # noqa: F401  (app_env: the module's autouse environment)
    app_env,
    assert_clean,
    charts,
    open_page,
    png,
)

GREY, COLOUR = "fashion-mnist/gamma-1", "cifar10/gamma-1"
FAMILY = {c.name for c in zoo.list_models() if c.family == "fashion-mnist"}
pytestmark = pytest.mark.skipif(not {GREY, "fashion-mnist/resnet", "fashion-mnist/vib"} <= FAMILY,
                                reason="needs Fashion-MNIST's γ = 1, ResNet and VIB in pretrained/")


#: The page's tables in order (AppTest does not keep a dataframe's key).
TABLES = ("versus_capabilities", "versus_aucs")


def frame(at, key: str):
    """The DataFrame of the table ``key`` (of :data:`TABLES`)."""
    return at.dataframe[TABLES.index(key)].value


def test_versus_page_compares_the_default_pair() -> None:
    at = open_page("versus", [GREY])
    assert at.selectbox(key="versus_discriminative").value == "fashion-mnist/resnet"
    capabilities = frame(at, "versus_capabilities")
    assert list(capabilities.columns) == ["IB-INN (γ = 1)", "ResNet"]
    assert capabilities.loc["likelihood"].tolist() == ["✓", "✗"]
    assert capabilities.loc["classify"].tolist() == ["✓", "✓"]
    figs = charts(at)
    assert {"versus_trajectory", "versus_reliability", "versus_entropy_ibinn",
            "versus_entropy_resnet", "versus_bars_ibinn", "versus_bars_resnet"} <= set(figs)
    notes = [a["text"] for a in figs["versus_trajectory"]["layout"]["annotations"]]
    # said on the chart (under the panel's title), not left blank
    assert any(n.startswith("bits/dim<br>") and "ResNet: no likelihood p(x), so no bits/dim" in n
               for n in notes), notes
    traces = {t["name"] for t in figs["versus_reliability"]["data"]}
    assert any(name.startswith("ResNet (ECE ") for name in traces)
    aucs = frame(at, "versus_aucs")
    assert {"IB-INN (γ = 1) · typicality", "ResNet · max-softmax"} <= set(aucs.columns)
    assert ((aucs.to_numpy() >= 0) & (aucs.to_numpy() <= 100)).all()
    summary = " ".join(m.value for m in at.markdown)
    assert "OoD sets" in summary and "IB-INN (γ = 1) wins on" in summary
    assert any("How to demo this in class" in e.label for e in at.expander)


def test_versus_page_switches_baseline_and_ib_inn() -> None:
    at = open_page("versus", [GREY])
    at.selectbox(key="versus_discriminative").set_value("fashion-mnist/vib").run()
    assert_clean(at)
    assert "VIB · info loss" in frame(at, "versus_aucs").columns  # the VIB's own OoD score
    assert frame(at, "versus_capabilities").loc["OoD score"].tolist() == ["✓", "✓"]
    other = next(k for k in at.selectbox(key="versus_generative").options if k != GREY)
    at.selectbox(key="versus_generative").set_value(other).run()
    assert_clean(at)
    assert not any(c.startswith("IB-INN (γ = 1)") for c in frame(at, "versus_capabilities").columns)


def test_versus_trajectory_follows_the_distortion() -> None:
    at = open_page("versus", [GREY])
    at.radio(key="versus_transform").set_value("inversion").run()
    at.slider(key="versus_max_inversion").set_value(0.5).run()
    assert_clean(at)
    curves = charts(at)["versus_trajectory"]["data"]
    assert max(curves[0]["x"]) == pytest.approx(0.5)
    assert {t["name"] for t in curves} == {"IB-INN (γ = 1)", "ResNet"}
    at.number_input(key="versus_image_index").set_value(3).run()
    assert_clean(at)


def test_versus_page_answers_an_upload_with_both_models() -> None:
    at = open_page("versus", [GREY])
    at.file_uploader(key="versus_upload").set_value(("photo.png", png(40, 30), "image/png")).run()
    assert_clean(at)
    assert "Converted for the models" in " ".join(i.value for i in at.info)
    assert [m.label for m in at.metric] == ["IB-INN (γ = 1)", "ResNet"]
    verdicts = [v.value for v in [*at.success, *at.warning]]
    assert any("typicality" in v for v in verdicts) and any("confidence" in v for v in verdicts)
    at.file_uploader(key="versus_upload").set_value(("notes.txt", b"just text", "text/plain")).run()
    assert any("notes.txt is not an image" in e.value for e in at.error)
    assert "versus_bars_ibinn" not in charts(at)


@pytest.mark.skipif(COLOUR not in {c.name for c in zoo.list_models()},
                    reason="needs cifar10/gamma-1 in pretrained/")
def test_ood_page_offers_the_colour_counterpart_in_one_click() -> None:
    at = open_page("ood", [GREY])
    assert "rgb-rotation" not in at.radio(key="ood_transform").options
    at.button(key="ood_counterpart").click().run()
    assert_clean(at)
    assert at.multiselect(key="selected_models").value == [GREY, COLOUR]
    assert at.selectbox(key="ood_model").value == COLOUR
    assert at.radio(key="ood_transform").value == "rgb-rotation"
    assert "ood_counterpart" not in [b.key for b in at.button]  # colour needs no counterpart
