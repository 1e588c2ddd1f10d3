"""The Train page's first run and its latent-space animation, under ``AppTest`` (helpers and the
temporary runs folder from :mod:`tests.test_app`)."""

from __future__ import annotations

import time

import pytest

from ibinn.jobs import FIRST_RUN

from .test_app import _submit, _wait_for, app_env, charts, open_page  # noqa: F401 (fixture)


def test_the_page_opens_on_the_first_run_and_says_what_it_takes() -> None:
    at = open_page("train")
    assert at.number_input(key="train_epochs").value == FIRST_RUN.epochs
    assert at.selectbox(key="train_dataset").value == FIRST_RUN.dataset
    assert at.selectbox(key="train_preset").value == FIRST_RUN.preset
    promise = " ".join(i.value for i in at.info)
    assert "first run worth watching" in promise and "about **1 minute**" in promise
    assert "74 % accuracy" in promise and "held-out" in promise


def test_a_run_shows_the_latent_space_forming_beside_its_curves() -> None:
    at = open_page("train")
    _submit(at, "apptest-forming", 0.3)  # 6 steps of the demo data: a frame at every step
    _wait_for(at, "apptest-forming", "finished")
    figs = charts(at)
    forming = next(fig for key, fig in figs.items() if key.startswith("forming-"))
    curves = next(fig for key, fig in figs.items() if key.startswith("curves-"))
    assert len(forming["layout"]["sliders"][0]["steps"]) == 7  # a frame at every step, and step 0
    titles = [frame["layout"]["title"]["text"] for frame in forming["frames"]]
    assert titles[0].startswith("step 0 · held-out accuracy") and titles[-1].startswith("step 6 ")
    assert forming["layout"]["sliders"][0]["active"] == 6 and forming["layout"]["title"]["text"] == titles[-1]
    assert [b["label"] for b in forming["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    assert len(forming["frames"][0]["data"][0]["x"]) == 30  # the first class's 30 held-out images
    assert "xaxis4" in curves["layout"] and curves["layout"]["height"] == 560  # 2 x 2 beside it


@pytest.mark.slow
def test_a_running_job_shows_its_remaining_time() -> None:
    at = open_page("train")
    _submit(at, "apptest-remaining", 500.0)
    deadline = time.monotonic() + 300  # the job's worker runs at a low priority
    while "s left" not in (progress := " ".join(p.proto.text for p in at.get("progress"))):
        assert time.monotonic() < deadline, f"no remaining time shown: {progress!r}"
        time.sleep(0.5)
        at.run()
    next(b for b in at.button if b.key and b.key.startswith("cancel-")).click().run()
    _wait_for(at, "apptest-remaining", "cancelled")
