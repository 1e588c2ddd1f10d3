import math

import pytest
import torch

from ibinn import losses


def _setup():
    mu = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    log_w = torch.log(torch.tensor([0.25, 0.75]))
    log_det = torch.tensor([0.5, -1.0])
    return z, mu, log_w, log_det


def test_nll_x_matches_closed_form():
    z, mu, log_w, log_det = _setup()
    # by hand: q(z) = Σ_y w_y exp(-|z-μ_y|²/2); z0: d² = 1, 4; z1: d² = 4, 13
    q0 = 0.25 * math.exp(-0.5) + 0.75 * math.exp(-2.0)
    q1 = 0.25 * math.exp(-2.0) + 0.75 * math.exp(-6.5)
    expected = torch.tensor([-math.log(q0) - 0.5, -math.log(q1) + 1.0])
    assert torch.allclose(losses.nll_x(z, log_det, mu, log_w), expected, atol=1e-5)


def test_log_posterior_y_matches_closed_form():
    z, mu, log_w, _ = _setup()
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p0 = 0.25 * math.exp(-0.5) / (0.25 * math.exp(-0.5) + 0.75 * math.exp(-2.0))
    p1 = 0.75 * math.exp(-6.5) / (0.25 * math.exp(-2.0) + 0.75 * math.exp(-6.5))
    expected = torch.tensor([math.log(p0) - math.log(0.25), math.log(p1) - math.log(0.75)])
    assert torch.allclose(losses.log_posterior_y(z, y, mu, log_w), expected, atol=1e-5)


def test_beta_one_is_class_nll():
    """Section 3.3: at β = 1 (γ = 1/D) L_X − L_Y is the class-NLL, up to the rebalancing factor."""
    torch.manual_seed(0)
    n, d, k = 16, 12, 4
    z, mu, log_det = torch.randn(n, d) * 2, torch.randn(k, d), torch.randn(n)
    log_w = torch.log_softmax(torch.randn(k), 0)
    y = torch.nn.functional.one_hot(torch.randint(0, k, (n,)), k).float()
    gamma = 1.0 / d
    ib = losses.ib_loss(z, log_det, mu, log_w, y, gamma)
    # class-NLL with the class prior: ‖z − μ_y‖²/2 − log|det J| (w_y cancels in L_X − L_Y)
    expected = 2 / (1 + gamma) / d * losses.class_nll(z, log_det, mu, y).mean()
    assert torch.allclose(ib, expected, atol=1e-5)


def test_limits_ignore_the_other_term():
    torch.manual_seed(1)
    z, mu, log_det = torch.randn(8, 5), torch.randn(3, 5), torch.randn(8)
    log_w = torch.log(torch.full((3,), 1 / 3))
    y1 = torch.nn.functional.one_hot(torch.randint(0, 3, (8,)), 3).float()
    y2 = torch.roll(y1, 1, dims=1)
    def loss(y, gamma, shift=0.0, mode="ib"):
        return losses.ib_loss(z, log_det + shift, mu, log_w, y, gamma, mode)

    # γ = 0: labels play no part, the Jacobian does
    assert loss(y1, 0.0) == loss(y2, 0.0)
    assert loss(y1, 0.0) != loss(y1, 0.0, shift=1.0)
    # γ = ∞: the Jacobian (the L_X term) plays no part, labels do
    assert loss(y1, math.inf) == loss(y1, math.inf, shift=5.0)
    assert loss(y1, math.inf) != loss(y2, math.inf)
    # the named modes agree with the limits
    assert loss(y1, 7.0, mode="lx-only") == loss(y1, 0.0)
    assert loss(y1, 7.0, mode="ly-only") == loss(y1, math.inf)


def test_finite_at_extreme_inputs():
    mu = torch.randn(10, 64)
    z = torch.full((4, 64), 1e4, requires_grad=True)
    log_w = torch.log_softmax(torch.zeros(10), 0)
    y = torch.full((4, 10), 0.1)
    for gamma in (0.0, 0.1, 1.0, 1e6, math.inf):
        loss = losses.ib_loss(z, torch.zeros(4), mu, log_w, y, gamma)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
        z.grad = None
    assert torch.isfinite(losses.log_posterior(z.detach(), mu, log_w)).all()


def test_bad_gamma_and_mode():
    z, mu, log_w, log_det = _setup()
    y = torch.eye(2)
    with pytest.raises(ValueError, match="gamma"):
        losses.ib_loss(z, log_det, mu, log_w, y, -1.0)
    with pytest.raises(ValueError, match="unknown loss mode"):
        losses.ib_loss(z, log_det, mu, log_w, y, 1.0, "nope")


# ------------------------------------------------------- the official code's definitions (issue 17)
def test_class_nll_uses_hard_labels_and_the_official_scale():
    """The official loss is ``2 · (Σ_y round(y)·‖z − μ_y‖²/2 − log|det J|)/D``: with smoothed labels
    the other class means pull nothing. By hand (_setup, D = 3): z0 = (1, 0, 0) labelled 0 (0.9
    of 1): ‖z0 − μ0‖² = 1, log|det J| = 0.5, so 0.5 − 0.5 = 0; z1 = (0, 2, 0) labelled 1:
    ‖z1 − μ1‖² = 4 + 9 = 13, so 6.5 + 1 = 7.5. Loss 2 · mean(0, 7.5) / 3 = 2.5."""
    z, mu, log_w, log_det = _setup()
    smoothed = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert torch.allclose(losses.class_nll(z, log_det, mu, smoothed), torch.tensor([0.0, 7.5]))
    for mode in ("class-nll", "class-nll-reg"):
        assert losses.ib_loss(z, log_det, mu, log_w, smoothed, 1.0, mode).item() == pytest.approx(2.5)


def test_ly_only_is_minus_l_y_as_the_official_code():
    """γ = ∞ (the official ``no_NLL_term``): loss = −L_Y, not the Eq. 9 limit −2·L_Y. By hand
    from the closed form of test_log_posterior_y_matches_closed_form (hard labels)."""
    z, mu, log_w, log_det = _setup()
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p0 = 0.25 * math.exp(-0.5) / (0.25 * math.exp(-0.5) + 0.75 * math.exp(-2.0))
    p1 = 0.75 * math.exp(-6.5) / (0.25 * math.exp(-2.0) + 0.75 * math.exp(-6.5))
    l_y = 0.5 * (math.log(p0) - math.log(0.25) + math.log(p1) - math.log(0.75))
    for gamma, mode in ((math.inf, "ib"), (3.0, "ly-only")):
        assert losses.ib_loss(z, log_det, mu, log_w, y, gamma, mode).item() == pytest.approx(-l_y)


def test_lx_only_keeps_the_eq_9_limit():
    """γ = 0 is 2·L_X/D, the limit of Eq. 9 and the official β = 0 (β_x = 2/(1+β) = 2)."""
    z, mu, log_w, log_det = _setup()
    expected = 2 * losses.nll_x(z, log_det, mu, log_w).mean() / 3
    assert losses.ib_loss(z, log_det, mu, log_w, torch.eye(2), 0.0).item() == pytest.approx(
        expected.item())


@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0, 10.0, math.inf])
def test_only_l_x_trains_the_class_weights(gamma):
    """Appendix B: the class weights w_y = log q(y) get their gradient from L_X alone, so
    ∂L/∂Φ is that of the L_X term, 2/(1+γ) · L_X/D (none at γ = ∞), whatever the labels say.
    Smoothed labels and unequal weights make a gradient through L_Y non-zero, so a loss that
    let it through would fail here."""
    torch.manual_seed(2)
    n, d, k = 6, 5, 3
    z, mu, log_det = torch.randn(n, d, requires_grad=True), torch.randn(k, d) * 2, torch.randn(n)
    y = torch.softmax(torch.randn(n, k) * 3, 1)
    phi = torch.randn(k, requires_grad=True)

    def grad_phi(loss: torch.Tensor) -> torch.Tensor:
        (grad,) = torch.autograd.grad(loss, phi, allow_unused=True)
        return torch.zeros(k) if grad is None else grad

    through_loss = grad_phi(losses.ib_loss(z, log_det, mu, torch.log_softmax(phi, 0), y, gamma))
    scale = 0.0 if math.isinf(gamma) else 2.0 / (1.0 + gamma)
    through_l_x = grad_phi(scale * losses.nll_x(z, log_det, mu, torch.log_softmax(phi, 0)).mean() / d)
    assert through_l_x.abs().max() > 1e-3 or math.isinf(gamma)  # the L_X term does train Φ
    assert torch.allclose(through_loss, through_l_x, atol=1e-6)
