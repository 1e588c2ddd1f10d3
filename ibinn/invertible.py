"""Invertible modules that FrEIA 0.2 lacks or that need a fix, in FrEIA's ``InvertibleModule`` form.

- :class:`Flatten`: FrEIA's own ``Flatten`` calls ``.view``, which fails on the non-contiguous
  output of ``IRevNetDownsampling``; this one reshapes.
- :class:`DCTPooling`: the orthonormal 2-D discrete cosine transform of each channel, ordered
  lowest frequency first, in place of a ResNet's global average pooling (Jacobsen et al., 2019,
  as used by the IB-INN paper, appendix E). Orthonormal, so log |det J| = 0.

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

import torch
from FrEIA.modules import InvertibleModule


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
