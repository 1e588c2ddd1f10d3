"""The IB-INN losses: L_X, L_Y and the rebalanced Information-Bottleneck loss.

All terms follow appendix B of Ardizzone et al., "Training Normalizing Flows with the Information
Bottleneck for Competitive Generative Classification" (NeurIPS 2020), computed with
``logsumexp`` / ``log_softmax`` so that they stay finite in fp32 for latents far from every mean.

Notation: ``z`` latents ``(N, D)``, ``log_det`` log |det J| of the flow ``(N,)``, ``mu`` class means
``(K, D)``, ``log_w`` class log-weights ``log q(y) = log_softmax(Φ)`` ``(K,)``, ``y`` (soft) labels
``(N, K)``.

The scales of the γ = ∞ limit and of the class-NLL follow the authors' official code
(github.com/VLL-HD/IB-INN, ``train.py`` and ``model.py``), which produced the paper's tables:
``ly-only`` is ``−L_Y`` and the class-NLL is ``2·(‖z − μ_y‖²/2 − log|det J|)/D`` with hard labels.

Example:
    >>> import torch
    >>> z, mu = torch.zeros(4, 6), torch.eye(2, 6) * 3
    >>> log_w = torch.log(torch.full((2,), 0.5))
    >>> y = torch.tensor([[1.0, 0.0]] * 4)
    >>> ib_loss(z, torch.zeros(4), mu, log_w, y, gamma=1.0).shape
    torch.Size([])
"""

from __future__ import annotations

import math

import torch

#: Loss modes: the IB loss at a finite γ, its two limits, and the standard generative classifiers.
MODES = ("ib", "lx-only", "ly-only", "class-nll", "class-nll-reg")


def squared_distances(z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """``‖z_i − μ_k‖²`` for all pairs, ``(N, K)``, via the expanded form (no ``(N, K, D)`` tensor)."""
    zz = (z * z).sum(1, keepdim=True)
    mm = (mu * mu).sum(1).unsqueeze(0)
    return (zz + mm - 2.0 * z @ mu.t()).clamp_min(0.0)


def joint_log_density(z: torch.Tensor, mu: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """``log q(z, y) = −‖z − μ_y‖²/2 + w_y`` up to the Gaussian constant, ``(N, K)``."""
    return -0.5 * squared_distances(z, mu) + log_w.unsqueeze(0)


def gaussian_log_norm(dim: int) -> float:
    """``−D/2 · log 2π``: the constant of a unit-covariance Gaussian in ``dim`` dimensions."""
    return -0.5 * dim * math.log(2 * math.pi)


def nll_x(z: torch.Tensor, log_det: torch.Tensor, mu: torch.Tensor, log_w: torch.Tensor
          ) -> torch.Tensor:
    """L_X per sample (Eq. 55): ``−logsumexp_y(−‖z − μ_y‖²/2 + w_y) − log|det J|`` in nats.

    The Gaussian constant ``D/2 · log 2π`` is dropped, as in the paper; add
    ``-gaussian_log_norm(D)`` for the true negative log-likelihood of the flow's input.
    """
    return -torch.logsumexp(joint_log_density(z, mu, log_w), dim=1) - log_det


def log_posterior(z: torch.Tensor, mu: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """``log q(y | z)`` for every class, ``(N, K)``: the GMM's Bayes-rule posterior."""
    return torch.log_softmax(joint_log_density(z, mu, log_w), dim=1)


def log_posterior_y(z: torch.Tensor, y: torch.Tensor, mu: torch.Tensor, log_w: torch.Tensor
                    ) -> torch.Tensor:
    """L_Y per sample (Eq. 56), the quantity to maximise: ``Σ_y y · (log q(y|z) − w_y)``.

    ``y`` may be smoothed labels; subtracting ``w_y`` makes it the mutual-information bound of
    Eq. 6 (the entropy term of p(Y) aside). Only L_X trains the class weights (appendix B), so
    ``log_w`` is detached here.
    """
    log_w = log_w.detach()
    return ((log_posterior(z, mu, log_w) - log_w.unsqueeze(0)) * y).sum(1)


def class_nll(z: torch.Tensor, log_det: torch.Tensor, mu: torch.Tensor, y: torch.Tensor
              ) -> torch.Tensor:
    """The class-conditional NLL ``−log q(x | y) = ‖z − μ_y‖²/2 − log|det J|`` per sample
    (constant dropped), for each sample's hard label ``y = argmax`` of its (smoothed) labels.

    Hard labels as in the official code: with smoothed labels every sample would also be pulled
    towards every other class's mean.

    Example:
        >>> z, mu = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> class_nll(z, torch.tensor([0.5]), mu, torch.tensor([[0.1, 0.9]]))  # ‖(0, 2)‖²/2 − 0.5
        tensor([1.5000])
    """
    hard = y.argmax(1, keepdim=True)
    return 0.5 * squared_distances(z, mu).gather(1, hard).squeeze(1) - log_det


def ib_loss(z: torch.Tensor, log_det: torch.Tensor, mu: torch.Tensor, log_w: torch.Tensor,
            y: torch.Tensor, gamma: float, mode: str = "ib") -> torch.Tensor:
    """The training loss, averaged over the batch.

    ``mode="ib"``: Eq. 9, ``2/(1+γ) · (L_X/D − γ·L_Y)``; ``γ = 0`` is ``2·L_X/D`` (the formula's
    limit) and ``γ = ∞`` (``math.inf``) is ``−L_Y``, the official code's scale for that limit
    (half the formula's limit, 2γ/(1+γ) → 2; a constant factor leaves the minimiser alone).
    ``"lx-only"`` and ``"ly-only"`` name those limits whatever γ is. ``"class-nll"`` and
    ``"class-nll-reg"`` are the standard generative classifier's loss, ``2·``:func:`class_nll`
    ``/D`` (the official scale, that of ``lx-only``); for the regularised version the caller
    keeps μ fixed (:class:`ibinn.model.IBINN` with ``fixed_mu_radius``).
    """
    dim = z.shape[1]
    if mode == "ib":
        if gamma < 0 or math.isnan(gamma):
            raise ValueError(f"gamma must be >= 0 (or inf), got {gamma}")
        if gamma == 0:
            mode = "lx-only"
        elif math.isinf(gamma):
            mode = "ly-only"
        else:
            lx = nll_x(z, log_det, mu, log_w).mean() / dim
            ly = log_posterior_y(z, y, mu, log_w).mean()
            return 2.0 / (1.0 + gamma) * (lx - gamma * ly)
    if mode == "lx-only":
        return 2.0 * nll_x(z, log_det, mu, log_w).mean() / dim
    if mode == "ly-only":
        return -log_posterior_y(z, y, mu, log_w).mean()
    if mode in ("class-nll", "class-nll-reg"):
        return 2.0 * class_nll(z, log_det, mu, y).mean() / dim
    raise ValueError(f"unknown loss mode {mode!r}; known: {', '.join(MODES)}")
