import json

import pytest

from ibinn.cli import main
from ibinn.evaluate import evaluate, markdown_table, write_report


def test_evaluate_report_and_files(tmp_path, tiny_grey, demo_fm):
    test = demo_fm.subset(range(0, 2000, 10))
    report = evaluate(tiny_grey, test, ["inverted", "noise", "cifar10-grey"], progress=False)
    t = report["test"]
    assert 0 <= t["error"] <= 100 and t["bits_per_dim"] > 0
    assert set(report["ood"]) | set(report["skipped"]) == {"inverted", "noise", "cifar10-grey"}
    for row in report["ood"].values():
        assert 0 <= row["auc_typicality"] <= 100 and 0 <= row["auc_nll"] <= 100
    json_path, md_path = write_report(report, tmp_path, "tiny")
    assert json.loads(json_path.read_text())["test"]["error"] == pytest.approx(t["error"])
    assert "| tiny |" in md_path.read_text()
    assert "Cal. geo-mean" in markdown_table({"a": report})


def test_evaluate_cli(tmp_path, tiny_grey, capsys):
    tiny_grey.save(tmp_path / "model.safetensors")
    code = main(["evaluate", str(tmp_path), "--data", "demo:fashion-mnist", "--limit", "300",
                 "--ood", "inverted", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Err. %" in out and (tmp_path / "evaluation.json").exists()
