"""The dashboard's path fence (app/sandbox.py): no visitor-typed path reaches the server's files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import sandbox  # noqa: E402

PIECES = st.sampled_from(["..", ".", "etc", "passwd", "pretrained", "runs", "data", "app", "~", "",
                          "fashion-mnist", "model.safetensors", "%2e%2e", "\\..", "link", "tmp"])
PATHS = st.one_of(
    st.text(max_size=60),
    st.lists(PIECES, max_size=8).map("/".join),
    st.lists(PIECES, max_size=8).map(lambda p: "/" + "/".join(p)),
)


@pytest.fixture()
def fenced(tmp_path, monkeypatch):
    """A runs folder with a link that points out of it, and no $IBINN_TRUST_PATHS."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "link").symlink_to("/etc")
    monkeypatch.setenv("IBINN_RUNS", str(runs))
    monkeypatch.delenv("IBINN_DATA", raising=False)
    monkeypatch.delenv(sandbox.TRUST_ENV, raising=False)
    return runs


def _inside(path: Path) -> bool:
    return any(path == r.resolve() or path.is_relative_to(r.resolve()) for r in sandbox.allowed_roots())


def _check(text: str) -> None:
    try:
        path = sandbox.allowed_path(text, "model file")
    except sandbox.PathNotAllowed as err:
        assert str(err).startswith("this server only reads model files under pretrained/, runs/")
        return
    assert path.is_absolute() and _inside(path.resolve()), (text, path)


def test_outside_paths_get_one_answer_whether_they_exist_or_not(fenced):
    answers = set()
    for text in ("/etc/passwd", "/etc/shadow", "/no/such/file", "../../etc/passwd", "runs/../../x",
                 str(fenced / "link" / "passwd"), "~/.bashrc", "/proc/self/environ", "pretrained/../app"):
        with pytest.raises(sandbox.PathNotAllowed) as err:
            sandbox.allowed_path(text, "model file")
        answers.add(str(err.value))
    assert len(answers) == 1
    assert sandbox.allowed_path("pretrained/fashion-mnist", "x") == (sandbox.REPO / "pretrained" /
                                                                     "fashion-mnist").resolve()
    assert sandbox.allowed_path(str(fenced / "new-run"), "x") == (fenced / "new-run").resolve()


def test_trusting_lifts_the_fence(fenced, monkeypatch):
    monkeypatch.setenv(sandbox.TRUST_ENV, "1")
    assert sandbox.allowed_path("/etc/passwd") == Path("/etc/passwd")


@given(PATHS)
@settings(max_examples=150, deadline=None)
def test_any_text_is_refused_or_inside_the_roots(text):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(sandbox.TRUST_ENV, raising=False)
        _check(text)


@pytest.mark.slow
@given(PATHS)
@settings(max_examples=1000, deadline=None)
def test_any_text_is_refused_or_inside_the_roots_many(text):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(sandbox.TRUST_ENV, raising=False)
        _check(text)


def _check_hidden(text: str) -> None:
    try:
        resolved = sandbox.allowed_path(text, "folder")
    except sandbox.PathNotAllowed:
        return
    message = f"imagefolder:{resolved}: no images under {resolved / 'cat'} (nor in {sandbox.runs_dir()})"
    shown = sandbox.hide_paths(message, {str(resolved): text.strip()})
    for root in (sandbox.REPO, *sandbox.allowed_roots()):
        assert str(root.resolve()) not in shown, (text, shown)
    if not Path(text.strip()).is_absolute():
        assert f"imagefolder:{text.strip()}:" in shown, (text, shown)


@given(PATHS)
@settings(max_examples=150, deadline=None)
def test_messages_show_paths_as_typed_never_the_servers(text):
    """A message about a typed path shows it as typed; any other path of an allowed folder
    relative to it, never where the folder lies on the server."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(sandbox.TRUST_ENV, raising=False)
        mp.delenv("IBINN_RUNS", raising=False)
        mp.setenv("IBINN_DATA", "/tmp/ibinn-data-for-test")
        _check_hidden(text)


def test_the_allowed_folders_are_shown_by_their_names(fenced):
    assert sandbox.hide_paths(f"{fenced}/x and {sandbox.REPO}/data/y") == "runs/x and data/y"
