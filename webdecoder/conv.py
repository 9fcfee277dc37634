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
The patches come out channel-major, (Cout, k, k, H, W), so the overlap-add adds
whole contiguous planes (see ``conv_transpose``).
"""

from __future__ import annotations

from collections.abc import Callable
import sys

import numpy as np

from webdecoder import _native

# Pyodide's NumPy has no BLAS; CPython's wheels do, and there BLAS matmul beats einsum by ~2x.
NO_BLAS = sys.platform == "emscripten"
SHORT_K = 64  # Cin up to which the no-BLAS product runs along N (measured in Pyodide: K=6 3x, K=48 even)


def _load_kernel() -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The WebAssembly matmul kernel (native/matmul.c via ``_native``) in Pyodide, or None.

    Optional by design: the NumPy path below is the reference and the fallback. The kernel is only used
    after it reproduced NumPy's product bit for bit on integers at the format's bounds.
    """
    if not NO_BLAS or _native.lib() is None:
        return None
    rng = np.random.default_rng(0)
    for p, k, n in ((7, 5, 9), (12, 192, 10), (75, 6, 33)):
        w = rng.integers(-(1 << 14) + 1, 1 << 14, (p, k)).astype(np.float64)
        a = rng.integers(-(1 << 22), (1 << 22) + 1, (k, n)).astype(np.float64)
        if not np.array_equal(_native.matmul(w, a), np.einsum("pk,kn->pn", w, a)):
            return None
    return _native.matmul


_kernel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None | bool = False  # False: not tried yet


def _product(wmat: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """(P, Cin) x (Cin, N) -> (P, N), exact on integers in float64 (any summation order)."""
    global _kernel
    if _kernel is False:
        _kernel = _load_kernel()
    if _kernel is not None and NO_BLAS:
        return _kernel(wmat, a2)
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
    Each input position paints a k x k patch on an s-grid (one matrix product
    makes all patches; an overlap-add places them).
    ``wmat`` is ``weight_matrix(w)`` when the caller has it cached.
    """
    cin, h, wd = a.shape
    cout, k, s = w.shape[1], w.shape[2], stride
    if wmat is None:
        wmat = weight_matrix(w)
    tiles = -(-k // s)
    patches = _product(wmat, a.reshape(cin, h * wd)).reshape(cout, k, k, h, wd)
    # Overlap-add phase by phase: output pixel (Y*s + py, X*s + px) lives at canvas[:, py, px, Y, X], and
    # kernel tap (ky, kx) adds a whole contiguous (h, wd) plane at phase (ky % s, kx % s), offset
    # (ky // s, kx // s). k*k plane adds with unit inner stride, then one interleaving copy; adding
    # s x s tiles straight into an interleaved canvas instead strides every element (the 768x512
    # last layer took 235 ms that way in Pyodide).
    canvas = np.zeros((cout, s, s, h + tiles - 1, wd + tiles - 1), np.float64)
    for ky in range(k):
        py, ty = ky % s, ky // s
        for kx in range(k):
            px, tx = kx % s, kx // s
            canvas[:, py, px, ty : ty + h, tx : tx + wd] += patches[:, ky, kx]
    full = canvas.transpose(0, 3, 1, 4, 2).reshape(cout, (h + tiles - 1) * s, (wd + tiles - 1) * s)
    return full[:, pad : pad + s * h, pad : pad + s * wd]


def requantize(acc: np.ndarray, shift: int, limit: float) -> np.ndarray:
    """Round a fixed-point accumulator down by ``shift`` bits (half up) and clip to +-limit."""
    return np.clip(np.floor((acc + float(1 << (shift - 1))) * (1.0 / (1 << shift))), -limit, limit)
