"""benchmarks/load.py: its protocol helpers, and (slow) one session against the real server."""

from __future__ import annotations

import importlib.util
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
