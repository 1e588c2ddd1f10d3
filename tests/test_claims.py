"""The claims table: each rule decided on synthetic cards, and the CLI on the shipped ones."""

import math
from pathlib import Path

import pytest

from ibinn import claims
from ibinn.cli import main
from ibinn.evaluate import CONVENTIONS
from ibinn.zoo import ModelCard


def _card(name: str, kind: str = "ibinn", mode: str = "ib", gamma: float = 1.0, error=10.0,
          bits=5.0, calibration=1.0, auc=70.0, entropy=0.4) -> ModelCard:
    metrics = {"conventions": CONVENTIONS,
               "test": {"error": error, "bits_per_dim": bits, "calibration_geo_mean": calibration},
               "ood": {"rgb-rotation": {"entropy_increase": entropy}},
               "ood_average": {"entropy_increase": entropy, "auc_typicality": auc}}
    return ModelCard(name=f"toy/{name}", family="toy", dataset_label="Toy", kind=kind, mode=mode,
                     gamma=gamma, preset="small", path=Path("unused"), metrics=metrics)


def _paper_like_family() -> list[ModelCard]:
    """A family that behaves as Table 1 says."""
    return [_card("gamma-0", mode="lx-only", gamma=0.0, error=90.0, bits=4.8, calibration=9.0, auc=75),
            _card("gamma-0.1", gamma=0.1, error=12.0, bits=4.9, calibration=0.8, auc=72),
            _card("gamma-1", gamma=1.0, error=10.0, bits=5.2, calibration=1.3, auc=69),
            _card("gamma-10", gamma=10.0, error=9.0, bits=8.0, calibration=2.0, auc=65),
            _card("gamma-inf", mode="ly-only", gamma=math.inf, error=8.7, bits=17.0,
                  calibration=4.0, auc=61, entropy=0.3),
            _card("class-nll", mode="class-nll", gamma=1.0, error=61.0, calibration=12.6, entropy=0.03),
            _card("resnet", kind="resnet", error=6.5, bits=None, calibration=6.2, auc=None, entropy=0.18)]


def test_spearman_ranks_infinity_last():
    assert claims.spearman([0.1, 1, 10, math.inf], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert claims.spearman([math.inf, 0.1, 1], [3, 1, 2]) == pytest.approx(1.0)


def test_every_claim_holds_on_a_family_that_behaves_as_table_1():
    checks = claims.check_claims(_paper_like_family(), "toy")
    assert len(checks) == 8
    assert [c.holds for c in checks] == [True] * 8, [(c.claim, c.reason) for c in checks]
    assert all(c.reason == "" for c in checks)
    # γ = 0 has no classifier: the error trend starts at γ = 0.1, the bits/dim trend at γ = 0
    assert "0.1 … ∞" in checks[0].rule and "γ = 0 … ∞" in checks[1].rule


def test_broken_claims_say_why_with_the_measurement():
    cards = _paper_like_family()
    cards[3] = _card("gamma-10", gamma=10.0, error=9.0, bits=8.0, calibration=0.5, auc=65)
    cards[4] = _card("gamma-inf", mode="ly-only", gamma=math.inf, error=8.7, bits=17.0,
                     calibration=0.6, auc=61, entropy=0.3)
    cards[5] = _card("class-nll", mode="class-nll", error=15.0)  # only 1.5× γ = 1's 10 %
    cards[2] = _card("gamma-1", error=10.0, bits=5.2, calibration=1.3, auc=69, entropy=-0.1)
    by_claim = {c.claim: c for c in claims.check_claims(cards, "toy")}
    calibration = by_claim["Calibration error rises from small to large γ"]
    assert calibration.holds is False and "γ = 1 to 10 it goes 1.30 % → 0.50 %" in calibration.reason
    nll = by_claim["Class-NLL classifies far worse than the IB-INN"]
    assert nll.holds is False and "1.50×" in nll.reason
    assert "class-NLL errs 0.24× and γ = 1 0.97× as often as the paper's" in nll.reason
    positive = by_claim["γ = 1 predicts more uncertainly on OoD data"]
    assert positive.holds is False and "rgb-rotation" in positive.reason
    beats = by_claim["γ = 1's OoD entropy increase beats the baselines'"]
    assert beats.holds is False and "resnet 0.18" in beats.reason
    table = claims.markdown_claims(list(by_claim.values()))
    assert table.count("✗ does not hold") == 4 and table.count("✓ holds") == 4


def test_claims_without_the_cards_they_need_are_not_checked():
    cards = [c for c in _paper_like_family() if c.kind == "ibinn" and c.mode != "class-nll"]
    by_claim = {c.claim: c for c in claims.check_claims(cards, "toy")}
    assert by_claim["Class-NLL classifies far worse than the IB-INN"].holds is None
    assert by_claim["γ = 1 is better calibrated than every discriminative baseline"].holds is None
    assert claims.check_claims(cards[:2], "toy")[0].holds is None  # two points make no trend


def test_stale_cards_are_named():
    cards = _paper_like_family()
    cards[0].metrics.pop("conventions")
    assert "toy/gamma-0" in claims.stale_note(cards, "toy")
    assert claims.stale_note(cards[1:], "toy") == ""


def test_zoo_cli_prints_the_claims_of_the_shipped_cards(capsys):
    assert main(["zoo", "--claims", "--dataset", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "### Claims on Fashion-MNIST" in out and "CIFAR-10 (JPEG)" not in out
    assert out.count("| Spearman ρ(γ, value)") == 4
