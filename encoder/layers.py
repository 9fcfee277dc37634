"""Small torch building blocks: convolutions with the codec's padding rules, blocks, iGDN.

Every transposed convolution here crops exactly like the NumPy decoder
(``webdecoder/conv.py``): the full output of a stride-``s`` kernel-``k``
transposed conv, ``(H-1)*s + k`` rows, is cropped to ``s*H`` rows starting at
row ``(k - s + 1) // 2``; PyTorch expresses that as padding/output_padding.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv_crop(k: int, s: int) -> tuple[int, int]:
    """(padding, output_padding) so a transposed conv maps H -> s*H.

    The full output has (H-1)*s + k rows; we drop ``p`` rows at the start and
    ``k - s - p`` at the end. ``p`` is the one number the NumPy decoder needs.
    """
    p = (k - s + 1) // 2
    op = 2 * p - (k - s)
    return p, op


def deconv(cin: int, cout: int, k: int, stride: int) -> nn.ConvTranspose2d:
    p, op = deconv_crop(k, stride)
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=p, output_padding=op)


class BlockDeconv(nn.ConvTranspose2d):
    """``deconv`` computed as one matrix product and ``F.fold`` (overlap-add): same weights, same output.

    For a kernel barely larger than its stride (the JPEG-like k18/s16: a block transform) this is
    1.7-1.8x faster than PyTorch's transposed conv on the CPU, forward plus backward (what SGA and
    training run); for k13/s8 or k5/s2 it is slower, so only depth 1 uses it.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int):
        p, op = deconv_crop(k, stride)
        super().__init__(cin, cout, k, stride=stride, padding=p, output_padding=op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        b, c, h, w = x.shape
        cols = torch.matmul(self.weight.reshape(c, -1).t(), x.reshape(b, c, h * w))  # (B, Cout*k*k, H*W)
        full = F.fold(cols, output_size=((h - 1) * s + k, (w - 1) * s + k), kernel_size=k, stride=s)
        return full[:, :, p : p + s * h, p : p + s * w] + self.bias[None, :, None, None]


class ResBlock(nn.Module):
    """Bottleneck residual block (Cheng 2020 / ELIC): 1x1 -> 3x3 -> 1x1, plus skip."""

    def __init__(self, ch: int):
        super().__init__()
        mid = ch // 2
        self.body = nn.Sequential(
            nn.Conv2d(ch, mid, 1), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(mid, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Attention(nn.Module):
    """Simplified attention of Cheng 2020: x + trunk(x) * sigmoid(mask(x)).

    ELIC uses three residual blocks per branch; one each keeps the CPU budget.
    """

    def __init__(self, ch: int, blocks: int = 1):
        super().__init__()
        self.trunk = nn.Sequential(*[ResBlock(ch) for _ in range(blocks)])
        self.mask = nn.Sequential(*[ResBlock(ch) for _ in range(blocks)], nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.mask(x))


class InverseGDN1(nn.Module):
    """Simplified inverse GDN ("GDN1" of Johnston et al., used by the paper).

    out_i = x_i * (beta_i + sum_j gamma_ij |x_j|), beta > 0, gamma >= 0.
    Parametrised through squares so the constraints hold without projection.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.beta_sqrt = nn.Parameter(torch.ones(ch))
        self.gamma_sqrt = nn.Parameter(torch.full((ch, ch), 0.1**0.5) * torch.eye(ch) + 0.01)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.beta_sqrt**2 + 1e-6, self.gamma_sqrt**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.weights()
        norm = F.conv2d(x.abs(), gamma[:, :, None, None], beta)
        return x * norm


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()
