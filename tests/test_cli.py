import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ibinn
from ibinn.cli import main
from ibinn.device import resolve_device


def test_train_then_info(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "demo:fashion-mnist", "--preset", "tiny", "--epochs", "0.5",
                 "--gamma", "inf", "--device", "cpu", "--quiet", "--out", str(out),
                 "--arch", "fc_width=24", "--arch", "widths=[8,16]", "--augment", "flip"])
    assert code == 0
    assert "test error" in capsys.readouterr().out
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["gamma"], saved["augment"]) == ("inf", "flip")
    config = ibinn.load(out).config
    assert (config.fc_width, config.widths, config.preset) == (24, [8, 16], "tiny")
    assert main(["info", str(out)]) == 0
    assert "γ = ∞" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--dataset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    assert main(["info", str(tmp_path / "bad.safetensors")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_arch_option_names_the_fields_it_knows(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--arch", "depth=3", "--out", str(tmp_path / "x")])
    assert "KEY one of levels, widths" in capsys.readouterr().err


def test_rebuild_set_takes_recipe_fields_only(capsys):
    """`zoo rebuild --set` changes how a family trains, never which models it makes."""
    for setting in ("seed=1", "gamma=2", "budget_minutes=5", "sigma"):
        with pytest.raises(SystemExit):
            main(["zoo", "rebuild", "--set", setting])
        assert "KEY one of optimizer, lr" in capsys.readouterr().err


TINY = ["train", "--dataset", "demo:fashion-mnist", "--preset", "tiny", "--epochs", "0.1", "--device", "cpu",
        "--quiet"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12) | st.sampled_from(["tpu", "xla", "meta", "cuda:0", "cpu", "CPU", "cuda:x",
                                                "mps", "", "auto:1", "vulkan", "ipu"]))
def test_a_device_is_resolved_or_refused_with_the_valid_ones(spec):
    try:
        device = resolve_device(spec)
    except ValueError as err:
        assert "valid: auto, cpu, cuda" in str(err) or "available" in str(err), err
    else:
        assert device.type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("option,value,words", [
    ("--device", "tpu", "valid: auto, cpu, cuda"),
    ("--out", "/proc/ibinn-x", "cannot create this folder"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, option, value, words):
    if value.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    argv = [*TINY, "--out", str(tmp_path / "run"), option, value]
    assert main(argv) == 2
    assert words in one_line_error(capsys)


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_naming_a_file_says_it_must_be_a_folder(tmp_path, capsys, below):
    (tmp_path / "file").write_text("x")
    assert main([*TINY, "--out", str(tmp_path / "file" / below)]) == 2
    assert "--out must be a folder" in one_line_error(capsys)


def test_resume_refuses_options_that_the_saved_run_would_override(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main([*TINY, "--out", out]) == 0
    capsys.readouterr()
    assert main([*TINY, "--out", out, "--resume", "--preset", "small", "--arch", "fc_width=8"]) == 2
    err = one_line_error(capsys)
    assert "--preset 'small' (the saved run has 'tiny')" in err and "--arch" in err
    # the same settings again (a script repeating one command), or a new device: it continues
    assert main([*TINY, "--out", out, "--resume", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["preset"] == "tiny"
