import json
import math

import numpy as np
import pytest

from ibinn.cli import main
from ibinn.evaluate import evaluate, markdown_table, write_report


def test_evaluate_report_and_files(tmp_path, tiny_grey, demo_fm):
    test = demo_fm.subset(range(0, 2000, 10))
    sets = ["inverted", "noise-gaussian", "cifar10-grey", "noise-uniform"]
    report = evaluate(tiny_grey, test, sets, progress=False)
    t = report["test"]
    assert 0 <= t["error"] <= 100 and t["bits_per_dim"] > 0
    assert set(report["ood"]) | set(report["skipped"]) == set(sets)
    for row in report["ood"].values():
        assert 0 <= row["auc_typicality"] <= 100 and 0 <= row["auc_nll"] <= 100
    json_path, md_path = write_report(report, tmp_path, "tiny")
    assert json.loads(json_path.read_text())["test"]["error"] == pytest.approx(t["error"])
    assert "| tiny |" in md_path.read_text()
    assert "Cal. geo-mean" in markdown_table({"a": report})
    # Table 1's conventions: bits/dim both ways, geometric AUC mean without the uniform-noise set
    offset = (tiny_grey.normalization.log_abs_det((1, 28, 28)) / 784 - math.log(2 * math.pi)) / math.log(2)
    assert t["bits_per_dim_table1"] == pytest.approx(t["bits_per_dim"] + offset)
    avg, rows = report["ood_average"], report["ood"]
    assert avg["sets"] == [s for s in sets if s != "noise-uniform" and s in rows]
    counted = [rows[s]["auc_typicality"] for s in avg["sets"]]
    assert avg["auc_typicality"] == pytest.approx(float(np.exp(np.mean(np.log(counted)))))
    assert avg["auc_typicality_arithmetic"] == pytest.approx(float(np.mean(counted)))
    assert avg["entropy_increase"] == pytest.approx(np.mean([rows[s]["entropy_increase"]
                                                             for s in avg["sets"]]))
    table = markdown_table({"a": report})
    assert "Bits/dim (as Table 1)" in table and "AUC noise-uniform (not averaged)" in table


def test_evaluate_cli(tmp_path, tiny_grey, capsys):
    tiny_grey.save(tmp_path / "model.safetensors")
    code = main(["evaluate", str(tmp_path), "--data", "demo:fashion-mnist", "--limit", "300",
                 "--ood", "inverted", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Err. %" in out and (tmp_path / "evaluation.json").exists()
