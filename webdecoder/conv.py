"""Transposed convolution as one matrix product plus an overlap-add, exact on integers.

Arrays hold integers in float64. Every product and every partial sum stays
below 2**53 (bounds in docs/FORMAT.md), so the result is exact whatever order a
BLAS, or Pyodide's BLAS-less NumPy, adds the terms in: integer arithmetic,
carried by the fastest matrix product each platform has.

Speed in Pyodide (no BLAS): NumPy's fallback matmul walks each dot product with
the operands' strides, so a product whose inner (Cin) axis is strided in memory
runs at cache-miss speed (the old ``a.T @ w`` took 1.9 s for the 768x512
synthesis layer). Here both operands keep Cin as their last, contiguous axis and
the product goes through ``np.einsum`` (CPython keeps BLAS matmul), whose contiguous sum-of-products kernel
is about 2x faster than the fallback matmul even then (0.3 s for that layer).
The patches come out channel-major, (Cout, k, k, H, W), so every tile of the
overlap-add is a run of W contiguous values (s = 1 layers add whole rows).
"""

from __future__ import annotations

import sys

import numpy as np

# Pyodide's NumPy has no BLAS; CPython's wheels do, and there BLAS matmul beats einsum by ~2x.
NO_BLAS = sys.platform == "emscripten"
SHORT_K = 64  # Cin up to which the no-BLAS product runs along N (measured in Pyodide: K=6 3x, K=48 even)


def _product(wmat: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """(P, Cin) x (Cin, N) -> (P, N), exact on integers in float64 (any summation order)."""
    if NO_BLAS:
        if wmat.shape[1] <= SHORT_K:
            # Few input channels (the last synthesis layer has 6): einsum then runs along N, over whole
            # contiguous rows of the output and of a2; 3x faster than per-output dot products of length 6.
            return np.einsum("pk,kn->pn", wmat, a2)
        # Both operands with Cin contiguous: every dot product reads two contiguous rows.
        return np.einsum("pk,nk->pn", wmat, np.ascontiguousarray(a2.T))
    return wmat @ a2


def weight_matrix(w: np.ndarray) -> np.ndarray:
    """(Cin, Cout, k, k) weights -> C-contiguous (Cout*k*k, Cin): Cin innermost, as ``conv_transpose`` wants.

    Callers that reuse weights (the model) compute this once; see ``Model.convt``.
    """
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T, dtype=np.float64)


def conv_transpose(a: np.ndarray, w: np.ndarray, stride: int, pad: int, wmat: np.ndarray | None = None) -> np.ndarray:
    """(Cin, H, W) x (Cin, Cout, k, k) -> (Cout, stride*H, stride*W), no bias.

    The full output ((H-1)*s + k rows) is cropped to s*H rows from row ``pad``
    (PyTorch: ``padding=pad`` with the matching ``output_padding``).
    Each input position paints a k x k patch on an s-grid; the patch is cut
    into ceil(k/s)^2 tiles of at most s x s, each added as a whole block.
    ``wmat`` is ``weight_matrix(w)`` when the caller has it cached.
    """
    cin, h, wd = a.shape
    cout, k, s = w.shape[1], w.shape[2], stride
    if wmat is None:
        wmat = weight_matrix(w)
    tiles = -(-k // s)
    patches = _product(wmat, a.reshape(cin, h * wd)).reshape(cout, k, k, h, wd)
    canvas = np.zeros((cout, h + tiles - 1, s, wd + tiles - 1, s), np.float64)
    for ty in range(tiles):
        ry = min(s, k - ty * s)
        for tx in range(tiles):
            rx = min(s, k - tx * s)
            tile = patches[:, ty * s : ty * s + ry, tx * s : tx * s + rx]  # (cout, ry, rx, h, wd)
            canvas[:, ty : ty + h, :ry, tx : tx + wd, :rx] += tile.transpose(0, 3, 1, 4, 2)
    full = canvas.reshape(cout, (h + tiles - 1) * s, (wd + tiles - 1) * s)
    return full[:, pad : pad + s * h, pad : pad + s * wd]


def requantize(acc: np.ndarray, shift: int, limit: float) -> np.ndarray:
    """Round a fixed-point accumulator down by ``shift`` bits (half up) and clip to +-limit."""
    return np.clip(np.floor((acc + float(1 << (shift - 1))) * (1.0 / (1 << shift))), -limit, limit)
