"""Transposed convolution as one matrix product plus an overlap-add, exact on integers.

Arrays hold integers in float64. Every product and every partial sum stays
below 2**53 (bounds in docs/FORMAT.md), so the result is exact whatever order a
BLAS, or Pyodide's BLAS-less NumPy, adds the terms in: integer arithmetic,
carried by the fastest matrix product each platform has.
"""

from __future__ import annotations

import numpy as np


def conv_transpose(a: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """(Cin, H, W) x (Cin, Cout, k, k) -> (Cout, stride*H, stride*W), no bias.

    The full output ((H-1)*s + k rows) is cropped to s*H rows from row ``pad``
    (PyTorch: ``padding=pad`` with the matching ``output_padding``).
    Each input position paints a k x k patch on an s-grid; the patch is cut
    into ceil(k/s)^2 tiles of at most s x s, each added as a whole block.
    """
    cin, h, wd = a.shape
    cout, k, s = w.shape[1], w.shape[2], stride
    tiles = -(-k // s)
    patches = (a.reshape(cin, h * wd).T @ w.reshape(cin, -1)).reshape(h, wd, cout, k, k)
    canvas = np.zeros((cout, h + tiles - 1, s, wd + tiles - 1, s), a.dtype)
    for ty in range(tiles):
        ry = min(s, k - ty * s)
        for tx in range(tiles):
            rx = min(s, k - tx * s)
            tile = patches[:, :, :, ty * s : ty * s + ry, tx * s : tx * s + rx]
            canvas[:, ty : ty + h, :ry, tx : tx + wd, :rx] += tile.transpose(2, 0, 3, 1, 4)
    full = canvas.reshape(cout, (h + tiles - 1) * s, (wd + tiles - 1) * s)
    return full[:, pad : pad + s * h, pad : pad + s * wd]


def requantize(acc: np.ndarray, shift: int, limit: float) -> np.ndarray:
    """Round a fixed-point accumulator down by ``shift`` bits (half up) and clip to +-limit."""
    return np.clip(np.floor((acc + float(1 << (shift - 1))) * (1.0 / (1 << shift))), -limit, limit)
