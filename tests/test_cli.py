import json

import pytest

import ibinn
from ibinn.cli import main


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
