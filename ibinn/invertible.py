"""Invertible modules that FrEIA 0.2 lacks or that need a fix, in FrEIA's ``InvertibleModule`` form.

- :class:`Flatten`: FrEIA's own ``Flatten`` calls ``.view``, which fails on the non-contiguous
  output of ``IRevNetDownsampling``; this one reshapes.
- :class:`DCTPooling`: the orthonormal 2-D discrete cosine transform of each channel, ordered
  lowest frequency first, in place of a ResNet's global average pooling (Jacobsen et al., 2019,
  as used by the IB-INN paper, appendix E). Orthonormal, so log |det J| = 0.
- :class:`DownsamplingCoupling`: the learned downsampling of the authors' official code, an
  affine coupling whose two halves are squeezed 2 × 2 and transformed in turn, the first by a
  strided subnet reading the other half at full resolution.

Example:
    >>> import torch
    >>> pool = DCTPooling([(4, 8, 8)])
    >>> x = torch.randn(2, 4, 8, 8)
    >>> (y,), _ = pool([x])
    >>> (x_back,), _ = pool([y], rev=True)
    >>> bool(torch.allclose(x, x_back, atol=1e-5))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import nn


class Flatten(InvertibleModule):
    """``(C, H, W)`` → ``(C·H·W,)``; a volume-preserving reshape."""

    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        self.shape = tuple(dims_in[0])

    def forward(self, x, c=None, jac=True, rev=False):
        x = x[0]
        out = x.reshape(x.shape[0], *self.shape) if rev else x.reshape(x.shape[0], -1)
        return (out,), torch.zeros(x.shape[0], device=x.device)

    def output_dims(self, input_dims):
        return [(math.prod(input_dims[0]),)]


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``M`` (``M @ M.T = I``); row ``k`` is frequency ``k``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    m = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


class DCTPooling(InvertibleModule):
    """Per-channel orthonormal 2-D DCT, flattened with all channels' DC terms first.

    The output's first ``C`` features are the channels' DC coefficients (``H·W``-scaled global
    averages), then the next frequency of every channel, and so on, so that fully connected
    blocks see the pooled features at the front, as after a ResNet's average pooling.
    """

    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        c, h, w = dims_in[0]
        self.shape = (c, h, w)
        self.register_buffer("dct_h", dct_matrix(h).float())
        self.register_buffer("dct_w", dct_matrix(w).float())
        # frequency order: by (ky + kx), then ky; each frequency for all channels
        freqs = sorted(((ky, kx) for ky in range(h) for kx in range(w)), key=lambda f: (sum(f), f))
        order = torch.tensor([ky * w + kx for ky, kx in freqs])
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))

    def forward(self, x, c=None, jac=True, rev=False):
        x = x[0]
        n = x.shape[0]
        ch, h, w = self.shape
        if not rev:
            coeffs = self.dct_h @ x @ self.dct_w.t()  # (N, C, H, W)
            coeffs = coeffs.reshape(n, ch, h * w)[:, :, self.order]
            out = coeffs.transpose(1, 2).reshape(n, -1)
        else:
            coeffs = x.reshape(n, h * w, ch).transpose(1, 2)[:, :, self.inverse_order]
            out = self.dct_h.t() @ coeffs.reshape(n, ch, h, w) @ self.dct_w
        return (out,), torch.zeros(n, device=x.device)

    def output_dims(self, input_dims):
        return [(math.prod(input_dims[0]),)]


class DownsamplingCoupling(InvertibleModule):
    """``(C, H, W)`` → ``(4C, H/2, W/2)``: a learned downsampling step (an affine coupling).

    The channels split into ``x1`` (the first ``C // 2``) and ``x2``. Forward:

    - ``y2 = squeeze(x2) · exp(s₁) + t₁`` with ``(s₁, t₁) = subnet_strided(x1)``, which maps the
      full-resolution ``x1`` to ``8 · len(x2)`` channels at half resolution;
    - ``y1 = squeeze(x1) · exp(s₂) + t₂`` with ``(s₂, t₂) = subnet_low_res(y2)``;
    - output ``[y1, y2]``; ``squeeze`` moves each 2 × 2 patch into 4 channels (pixel unshuffle).

    The log-scales are soft-clamped, ``clamp · tanh(0.2 · s)``, as in the official code, so
    log |det J| = Σ of the clamped ``s₁`` and ``s₂``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> conv = lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, 3, stride, padding=1)
        >>> block = DownsamplingCoupling([(3, 8, 8)], subnet_strided=lambda i, o: conv(i, o, 2),
        ...                              subnet_low_res=lambda i, o: conv(i, o, 1))
        >>> x = torch.randn(2, 3, 8, 8)
        >>> (y,), log_det = block([x])
        >>> tuple(y.shape), tuple(log_det.shape)
        ((2, 12, 4, 4), (2,))
        >>> (x_back,), _ = block([y], rev=True)
        >>> bool(torch.allclose(x, x_back, atol=1e-5))
        True
    """

    def __init__(self, dims_in, dims_c=None,
                 subnet_strided: Callable[[int, int], nn.Module] | None = None,
                 subnet_low_res: Callable[[int, int], nn.Module] | None = None,
                 clamp: float = 0.7):
        super().__init__(dims_in, dims_c)
        channels, h, w = dims_in[0]
        if dims_c:
            raise ValueError("DownsamplingCoupling takes no condition")
        if h % 2 or w % 2:
            raise ValueError(f"DownsamplingCoupling halves the image: height and width must be "
                             f"even, got {h}x{w}")
        if channels < 2 or subnet_strided is None or subnet_low_res is None:
            raise ValueError("DownsamplingCoupling needs at least 2 channels and both subnets")
        self.splits = (channels // 2, channels - channels // 2)
        self.clamp = clamp
        # each subnet gives a log-scale and a shift per squeezed channel of the half it transforms
        self.subnet_strided = subnet_strided(self.splits[0], 8 * self.splits[1])
        self.subnet_low_res = subnet_low_res(4 * self.splits[1], 8 * self.splits[0])

    def _affine(self, x: torch.Tensor, params: torch.Tensor, rev: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x · exp(s) + t`` (or its inverse) and ``Σ s`` per sample (negated for the inverse)."""
        log_scale = self.clamp * torch.tanh(0.2 * params[:, :x.shape[1]])
        shift = params[:, x.shape[1]:]
        log_det = log_scale.sum(dim=(1, 2, 3))
        if rev:
            return (x - shift) * torch.exp(-log_scale), -log_det
        return x * torch.exp(log_scale) + shift, log_det

    def forward(self, x, c=None, rev=False, jac=True):
        if not rev:
            x1, x2 = torch.split(x[0], self.splits, dim=1)
            y2, log_det2 = self._affine(F.pixel_unshuffle(x2, 2), self.subnet_strided(x1), rev)
            y1, log_det1 = self._affine(F.pixel_unshuffle(x1, 2), self.subnet_low_res(y2), rev)
            return (torch.cat((y1, y2), 1),), log_det1 + log_det2
        y1, y2 = torch.split(x[0], [4 * s for s in self.splits], dim=1)
        x1, log_det1 = self._affine(y1, self.subnet_low_res(y2), rev)
        x1 = F.pixel_shuffle(x1, 2)
        x2, log_det2 = self._affine(y2, self.subnet_strided(x1), rev)
        return (torch.cat((x1, F.pixel_shuffle(x2, 2)), 1),), log_det1 + log_det2

    def output_dims(self, input_dims):
        c, h, w = input_dims[0]
        return [(4 * c, h // 2, w // 2)]
