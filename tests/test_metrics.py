import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ibinn import metrics as M


def test_bin_edges_are_the_papers():
    expected = [0, .01, .02, .03, .04, .05, .15, .25, .35, .45, .55, .65, .75, .85, .95,
                .96, .97, .98, .99, 1.0]
    assert np.allclose(M.CALIBRATION_BIN_EDGES, expected)


def test_calibration_on_a_hand_computed_example():
    # three images, two classes; every class probability is binned
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7]])
    labels = np.array([0, 1, 1])
    # binned probabilities (bin, is it the true class?):
    #   0.9 -> [0.85, 0.95): true, false, 0.1 -> [0.05, 0.15): false, true
    #   0.3 -> [0.25, 0.35): false;       0.7 -> [0.65, 0.75): true
    # bin [0.05,0.15): P=0.10, Q=1/2 -> |gap|=0.40, n=2, width 0.1
    # bin [0.25,0.35): P=0.30, Q=0   -> 0.30, n=1, width 0.1
    # bin [0.65,0.75): P=0.70, Q=1   -> 0.30, n=1, width 0.1
    # bin [0.85,0.95): P=0.90, Q=1/2 -> 0.40, n=2, width 0.1
    ece = (2 * 0.4 + 0.3 + 0.3 + 2 * 0.4) / 6
    mce = 0.4
    ice = 0.1 * (0.4 + 0.3 + 0.3 + 0.4)
    result = M.calibration(proba, labels)
    assert result["ece"] == pytest.approx(ece)
    assert result["mce"] == pytest.approx(mce)
    assert result["ice"] == pytest.approx(ice)
    assert result["geometric_mean"] == pytest.approx((ece * mce * ice) ** (1 / 3))
    assert math.isnan(result["overconfidence"])  # no prediction above 99.7 %
    diagram = M.reliability_diagram(proba, labels)
    assert diagram["counts"].sum() == 6 and np.nansum(diagram["correct"]) == 3


def test_probability_one_lands_in_the_last_bin_and_overconfidence():
    proba = np.array([[1.0, 0.0], [0.999, 0.001], [0.9995, 0.0005], [0.5, 0.5]])
    labels = np.array([0, 1, 0, 0])
    diagram = M.reliability_diagram(proba, labels)
    assert diagram["counts"][-1] == 3 and diagram["counts"][0] == 3
    # confident: three predictions above 0.997, one of them wrong
    assert M.calibration(proba, labels)["overconfidence"] == pytest.approx((1 / 3) / 0.003)


def test_perfect_calibration_has_small_errors():
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, len(p1)) > p1).astype(int)  # class 0 with probability p1
    proba = np.stack([p1, 1 - p1], 1)
    result = M.calibration(proba, labels)
    assert result["ece"] < 0.01  # bins are narrow; P (bin centre) ≈ mean confidence


def test_roc_auc_equals_sklearn():
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(0, 1, 300), rng.normal(1, 1, 200)
    y = np.r_[np.zeros(300), np.ones(200)]
    assert M.roc_auc(s_in, s_out) == pytest.approx(roc_auc_score(y, np.r_[s_in, s_out]))
    assert M.roc_auc(torch.tensor(s_in), torch.tensor(s_out)) == pytest.approx(M.roc_auc(s_in, s_out))


def test_typicality_is_two_sided():
    nll = np.array([10.0, 12.0, 8.0])
    assert np.allclose(M.typicality_score(nll, 10.0), [0, 2, 2])


def test_entropy_and_increase():
    uniform = np.full((4, 4), 0.25)
    certain = np.eye(4)
    assert np.allclose(M.entropy(uniform), math.log(4))
    assert np.allclose(M.entropy(certain), 0)
    assert M.entropy_increase(uniform, certain) == pytest.approx(math.log(4))


def test_bits_per_dim_of_a_known_density():
    # uniform density on [0, 1]^D: log p = 0 -> exactly 8 bits per 8-bit dimension
    assert float(M.bits_per_dim(torch.tensor(0.0), 784)) == pytest.approx(8.0)
    # a density of 2^-D·k on [0,1]^D (k bits less likely per dimension) -> 8 + k bits/dim
    d, k = 3072, 0.5
    log_p = torch.tensor(-d * k * math.log(2))
    assert float(M.bits_per_dim(log_p, d)) == pytest.approx(8.5)


def test_classification_error():
    assert M.classification_error(np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 1]) == 0.5


def test_geometric_mean_reproduces_table_1s_ood_average():
    # Table 1, IB-INN γ = 1: the four ROC-AUCs average to 68.76, the arithmetic mean being 69.47
    aucs = [78.80, 67.30, 77.19, 54.59]
    assert M.geometric_mean(aucs) == pytest.approx(68.76, abs=0.01)
    assert np.mean(aucs) == pytest.approx(69.47, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        M.geometric_mean([50.0, 0.0])


def test_table1_bits_per_dim_drops_the_normalisation_jacobian_and_the_gaussian_constant():
    # the official code: L_x = (−logsumexp(−½‖z−μ‖² + log w) − log|det J_inn|)/D, then
    # bits/dim = (L_x + log 256 − ½ log 2π)/ln 2. Rebuild it from one latent and compare.
    d, std = 12, 0.25
    z_sq, log_det_inn = 20.0, 3.0  # one class, w = 1
    log_det_norm = -d * math.log(std)
    log_p = -0.5 * z_sq - 0.5 * d * math.log(2 * math.pi) + log_det_inn + log_det_norm
    exact = float(M.bits_per_dim(torch.tensor(log_p), d))
    l_x = (0.5 * z_sq - log_det_inn) / d
    official = (l_x + math.log(256) - 0.5 * math.log(2 * math.pi)) / math.log(2)
    assert M.table1_bits_per_dim(exact, d, log_det_norm) == pytest.approx(official)
    assert official - exact == pytest.approx(-0.651, abs=1e-3)  # CIFAR-10-like std 0.25
