"""The paper's metrics, as plain functions on tensors or arrays.

Example:
    >>> import torch
    >>> bits_per_dim(torch.tensor([0.0]), dim=1)  # a uniform density on [0, 1]
    tensor([8.])
"""

from __future__ import annotations

import math

import numpy as np
import torch


def bits_per_dim(log_likelihood: torch.Tensor, dim: int) -> torch.Tensor:
    """Bits per dimension of 8-bit images from ``log p(x)`` of images scaled to [0, 1].

    A density on [0, 1]-scaled pixels becomes a probability of the 8-bit value by multiplying with
    the bin volume ``(1/256)^D`` (the dequantisation noise is uniform over one bin), so
    ``bits/dim = −(log p(x) − D·log 256) / (D·ln 2) = 8 − log p(x) / (D·ln 2)``.
    ``log p(x)`` must include every Jacobian from [0, 1] pixels to the latent, the normalisation's
    included (:meth:`ibinn.IBINN.log_likelihood` does).
    """
    return (dim * math.log(256.0) - log_likelihood) / (dim * math.log(2.0))


def classification_error(proba, labels) -> float:
    """Fraction of argmax predictions that differ from ``labels``."""
    pred = np.asarray(proba).argmax(1)
    return float((pred != np.asarray(labels)).mean())
