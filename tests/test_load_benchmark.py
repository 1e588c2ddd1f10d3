"""benchmarks/load.py: its protocol helpers, and (slow) one session against the real server."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("websockets")

from streamlit.proto.Element_pb2 import Element  # noqa: E402

from ibinn import zoo  # noqa: E402

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("load_benchmark", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_percentile(load):
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert load.percentile([], 50) != load.percentile([], 50)  # nan


def test_choose_option(load):
    options = ["IB-INN (generative)", "ResNet (discriminative)"]
    assert load.choose_option(options, "ibinn") == "IB-INN (generative)"
    assert load.choose_option(["tiny", "small"], "small") == "small"
    with pytest.raises(load.ProtocolError):
        load.choose_option(options, "vib")


def test_scan_element_widgets_errors_refusals(load):
    run = load.Run(0.0, b"", {})
    el = Element()
    el.selectbox.id, el.selectbox.label = "$$ID-abc123-train_preset", "Preset"
    el.selectbox.options.extend(["tiny", "small"])
    load._scan_element(el, run)
    el = Element()
    el.button.id, el.button.label, el.button.is_form_submitter = "$$ID-def-FormSubmitter:f-Go", "Go", True
    load._scan_element(el, run)
    for body, fmt in (("Queue limit reached", 1), ("boom", 1), ("per-session LIMIT", 2), ("ood", 2)):
        el = Element()
        el.alert.body, el.alert.format = body, fmt
        load._scan_element(el, run)
    el = Element()
    el.exception.type, el.exception.message = "ValueError", "bad"
    load._scan_element(el, run)
    assert set(run.widgets) == {"train_preset", "FormSubmitter:f-Go", "submit:Go"}
    assert run.errors == ["boom"] and len(run.refusals) == 2 and run.exceptions == ["ValueError: bad"]
    state = load.widget_state(run.widgets["train_preset"], "small")
    assert state.id == "$$ID-abc123-train_preset" and state.string_value == "small"
    assert load.widget_state(run.widgets["submit:Go"], True).trigger_value


def test_job_state(load, tmp_path):
    assert load.job_state(tmp_path, "job") == "waiting"
    (tmp_path / "app" / "job").mkdir(parents=True)
    assert load.job_state(tmp_path, "job") == "running" and load.any_job_running(tmp_path)
    (tmp_path / "app" / "job" / "metrics.json").write_text("{}")
    assert load.job_state(tmp_path, "job") == "ended" and not load.any_job_running(tmp_path)


def test_app_pages_follow_main_py(load, tmp_path):
    """The toured pages are app/main.py's PAGES: a page added there is toured with no edit here."""
    assert load.app_pages(load.APP) == load.PAGES
    assert load.PAGES["models"] == "" and load.PAGES["your_image"] == "your_image"
    main = tmp_path / "main.py"
    main.write_text('PAGES = [\n    st.Page("views/models.py", title="Models", default=True),\n'
                    '    st.Page("views/02_new_page.py", title="New"),\n'
                    '    st.Page("views/other.py", url_path="/renamed/"),\n]\n')
    assert load.app_pages(main) == {"models": "", "02_new_page": "new_page", "other": "renamed"}
    main.write_text("pages = []\n")
    with pytest.raises(load.ProtocolError, match="PAGES"):
        load.app_pages(main)


def test_pauses_vary_within_jitter_and_repeat(load, monkeypatch):
    """Think times vary by ± jitter (sessions must not click in lockstep), the same on every run."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(load.asyncio, "sleep", sleep)

    async def pauses(name: str, jitter: float) -> list[float]:
        session = load.Session(name, 0, 1.0, think=2.0, jitter=jitter)
        for _ in range(20):
            await session.pause()
        return slept[-20:]

    s0 = asyncio.run(pauses("s0", 0.5))
    assert all(1.0 <= x <= 3.0 for x in s0) and max(s0) - min(s0) > 0.5
    assert asyncio.run(pauses("s0", 0.5)) == s0 and asyncio.run(pauses("s1", 0.5)) != s0
    assert asyncio.run(pauses("s0", 0.0)) == [2.0] * 20


def _phase(load, name: str, sessions: int, times: dict, cpu_views: dict | None = None, cpu: float = 0.0):
    phase = load.Phase(name, sessions)
    for label, values in times.items():
        phase.times[label] += values
    for label, values in (cpu_views or {}).items():
        phase.cpu_views[label] += values
    phase.cpu = phase.cpu_server = cpu
    phase.wall = 10.0
    return phase


def test_phase_table_per_page_markdown(load):
    phase = _phase(load, "no job running", 1, {"models": [0.1, 0.3], "latent": [0.2],
                                               "upload (your_image)": [0.5]},
                   {"models": [0.05, 0.15], "latent": [0.3]}, cpu=2.0)
    lines = load.phase_table(phase)
    assert lines[0].startswith("no job running: wall 10.0 s, server CPU 2.0 s = 0.20 cores")
    assert "| page | p50 s | p95 s | max s | views | server CPU s/view |" in lines
    assert "| models | 0.20 | 0.29 | 0.30 | 2 | 0.100 |" in lines
    assert "| upload (your_image) | 0.50 | 0.50 | 0.50 | 1 | – |" in lines
    # all pages: the three page views (not the upload); CPU per view is their own with one session
    assert "| **all pages** | 0.20 | 0.29 | 0.30 | 3 | 0.167 |" in lines
    shared = _phase(load, "no job running", 4, {"models": [0.1, 0.3]}, {"models": [1.0, 1.0]}, cpu=2.0)
    assert math.isnan(shared.cpu_per_view("models")) and shared.cpu_per_page_view() == 1.0


def test_summary_compares_session_counts(load):
    def result(n: int, idle: list[float], busy: list[float]):
        phases = [_phase(load, "no job running", n, {"models": idle}, cpu=4.0),
                  _phase(load, "submit", n, {}),
                  _phase(load, "job running", n, {"models": busy}, cpu=8.0),
                  _phase(load, "leak check", n, {})]
        return load.Result(n, load.Phase("warm-up"), load.Tally("warm"), phases, [], "job", 1.0, "ended")

    lines = load.summary([result(1, [1.0, 1.0], [2.0, 2.0]), result(8, [1.0, 3.0], [4.0, 4.0])])
    assert "| page | N=1 p50 | N=1 p95 | N=8 p50 | N=8 p95 |" in lines
    assert "| models | 1.00 | 1.00 | 2.00 | 2.90 |" in lines
    assert "| 8 | job running | 4.00 | 4.00 | 2 | 8.0 | 4.000 | 10.0 | 0.80 |" in lines
    assert "p95 at N = 8 / p95 at N = 1, no job running: 2.90 / 1.00 = 2.9×" in lines
    assert "p95 at N = 8 / p95 at N = 1, job running: 4.00 / 2.00 = 2.0×" in lines


@pytest.mark.slow
def test_one_session_end_to_end(load, capsys):
    """The whole protocol (tour, upload, form submit) against `streamlit run`: one session, so no
    leak is possible; it must see no exception and finish every step."""
    if not any(c.kind == "ibinn" for c in zoo.list_models()):
        pytest.skip("no IB-INN in pretrained/")
    code = load.main(["--sessions", "1", "--no-warmup", "--think", "0", "--epochs", "0.1",
                      "--long-epochs", "1", "--timeout", "600"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "uploads ok 1/1" in out and "failed sessions 0" in out, out
