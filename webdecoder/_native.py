"""Optional WebAssembly kernels for Pyodide (webdecoder/native/matmul.c, a side module loaded by ctypes).

Pyodide's NumPy has no BLAS, and every NumPy call costs microseconds in wasm; the two hot loops of the
decoder (the transposed-conv product and overlap-add, and the rANS step loop) run 2-10x faster in C. They are optional:
the NumPy code next to each call site is the reference and the fallback, CPython never loads them, and
``NIC_NO_KERNEL=1`` turns them off. Each kernel is used only after it reproduced the NumPy result bit
for bit on a self-check at load time (all integer arithmetic, so any correct build agrees exactly).
"""

from __future__ import annotations

from collections.abc import Callable
import ctypes
import os
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np

LIB_PATH = Path(__file__).with_name("native") / "nicmm.wasm.so"
_lib: ctypes.CDLL | None | bool = False  # False: not tried yet


def lib() -> ctypes.CDLL | None:
    """The loaded side module, or None outside Pyodide / when missing / when disabled."""
    global _lib
    if _lib is False:
        _lib = None
        if sys.platform == "emscripten" and not os.environ.get("NIC_NO_KERNEL"):
            try:
                _lib = open_module(LIB_PATH)
            except (OSError, AttributeError):
                _lib = None
    return _lib  # type: ignore[return-value]


def open_module(path: Path) -> ctypes.CDLL:
    """A build of the side module at ``path``, its exports typed (``lib()`` opens the package's own; a benchmark may
    open another build beside it: bench/pyodide_ab.py --so)."""
    handle = ctypes.CDLL(str(path))
    handle.nic_matmul_f64.restype = None
    handle.nic_matmul_f64.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 3
    handle.nic_matmul_i16.restype = None
    handle.nic_matmul_i16.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_double]
    handle.nic_convt_i16.restype = None
    handle.nic_convt_i16.argtypes = ([ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_double]
                                     + [ctypes.c_void_p] * 2 + [ctypes.c_int] * 2)
    handle.nic_convt_phase_i16.restype = ctypes.c_int
    handle.nic_convt_phase_i16.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p]
                                           + [ctypes.c_int] * 7 + [ctypes.c_void_p] * 2)
    handle.nic_wino_data.restype = ctypes.c_int
    handle.nic_wino_data.argtypes = ([ctypes.c_void_p, ctypes.c_long] + [ctypes.c_int] * 8
                                     + [ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3)
    handle.nic_wino_convt.restype = ctypes.c_int
    handle.nic_wino_convt.argtypes = ([ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p] * 3
                                      + [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int]
                                      + [ctypes.c_void_p, ctypes.c_int, ctypes.c_long]
                                      + [ctypes.c_void_p] * 2
                                      + [ctypes.c_int, ctypes.c_long, ctypes.c_int, ctypes.c_int])
    handle.nic_wino_convt32.restype = ctypes.c_int
    handle.nic_wino_convt32.argtypes = handle.nic_wino_convt.argtypes
    handle.nic_wino_plan.restype = ctypes.c_int
    handle.nic_wino_plan.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3
                                     + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 3)
    handle.nic_wino3_plan.restype = ctypes.c_int
    handle.nic_wino3_plan.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 6 + [ctypes.c_void_p] * 5
    handle.nic_wino3_data.restype = ctypes.c_int
    handle.nic_wino3_data.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_void_p] * 3
    handle.nic_wino3_conv.restype = None
    handle.nic_wino3_conv.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 5
                                      + [ctypes.c_int] * 3 + [ctypes.c_void_p, ctypes.c_int]
                                      + [ctypes.c_double] * 2 + [ctypes.c_void_p] + [ctypes.c_int] * 3
                                      + [ctypes.c_void_p] + [ctypes.c_int] * 4)
    handle.nic_convt_direct_i16.restype = ctypes.c_int
    handle.nic_convt_direct_i16.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 9 + [ctypes.c_void_p]
    handle.nic_convt_direct_i16_pixels16.restype = ctypes.c_int
    handle.nic_convt_direct_i16_pixels16.argtypes = ([ctypes.c_void_p] * 3 + [ctypes.c_int] * 9 + [ctypes.c_void_p]
                                                     + [ctypes.c_int, ctypes.c_void_p] + [ctypes.c_int] * 4
                                                     + [ctypes.c_void_p])
    handle.nic_upres_igdn16.restype = ctypes.c_int
    handle.nic_upres_igdn16.argtypes = ([ctypes.c_void_p] * 5 + [ctypes.c_int] * 8 + [ctypes.c_double]
                                        + [ctypes.c_void_p])
    handle.nic_requantize.restype = None
    handle.nic_requantize.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 3 + [ctypes.c_double] * 2
    handle.nic_pixels.restype = None
    handle.nic_pixels.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 9
    handle.nic_convt_direct.restype = None
    handle.nic_convt_direct.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] * 8
    handle.nic_upres_igdn.restype = None
    handle.nic_upres_igdn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 6 + [ctypes.c_double]
    handle.nic_overlap_add.restype = None
    handle.nic_overlap_add.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int] * 6
    handle.nic_scale_index.restype = None
    handle.nic_scale_index.argtypes = ([ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_void_p]
                                       + [ctypes.c_int] * 2)
    handle.nic_latent16.restype = ctypes.c_int
    handle.nic_latent16.argtypes = ([ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_double, ctypes.c_int]
                                    + [ctypes.c_void_p])
    handle.nic_wino_data16.restype = ctypes.c_int
    handle.nic_wino_data16.argtypes = ([ctypes.c_void_p, ctypes.c_long] + [ctypes.c_int] * 8
                                       + [ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3)
    handle.nic_latent.restype = None
    handle.nic_latent.argtypes = ([ctypes.c_void_p] * 3 + [ctypes.c_int] * 4 + [ctypes.c_double]
                                  + [ctypes.c_void_p])
    handle.nic_to_i16t.restype = ctypes.c_int
    handle.nic_to_i16t.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 4 + [ctypes.c_void_p]
    handle.nic_rans_decode.restype = ctypes.c_int
    handle.nic_rans_decode.argtypes = ([ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                        ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                                       + [ctypes.c_void_p] * 8)
    return handle


_addressof, _from_buffer = ctypes.addressof, ctypes.c_char.from_buffer


def ptr(a: np.ndarray) -> int:
    """The address of ``a``'s first byte, as ``a.ctypes.data`` but cheaper where it can be: that builds a helper
    object, ~10 us in Pyodide, and a depth-2 decode takes ~170 addresses. A writable C-contiguous array (almost every
    argument) lends its buffer to ctypes for a moment instead (~4 us)."""
    try:
        return _addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):  # read-only (the plans' shared tables), not C-contiguous, or empty
        return a.ctypes.data


def _invoke(run: Callable[..., Any] | None, name: str, *args: Any) -> Any:
    """``lib().name(*args)``, or recorded by ``run`` (a ``parallel.Job``: the call then runs on the helper thread,
    and its result is only known after the job's ``wait``)."""
    return getattr(lib(), name)(*args) if run is None else run(name, *args)


def matmul(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(P, K) @ (K, N) in float64 through the kernel (caller checked ``lib()``)."""
    w = np.ascontiguousarray(w, np.float64)
    a = np.ascontiguousarray(a, np.float64)
    out = np.empty((w.shape[0], a.shape[1]), np.float64)
    lib().nic_matmul_f64(ptr(w), ptr(a), ptr(out), w.shape[0], w.shape[1], a.shape[1])
    return out


def matmul_i16(w16: np.ndarray, at16: np.ndarray, out: np.ndarray, chunk: int, scale: float) -> None:
    """out (P, N) += scale * w16 (P, Kp) @ at16 (N, Kp).T on int16 (conv.py sizes ``chunk`` against overflow)."""
    assert 1 <= chunk <= 1 << 24  # the kernel steps by 8 * chunk in a C int
    assert w16.dtype == at16.dtype == np.int16 and out.dtype == np.float64
    assert w16.flags.c_contiguous and at16.flags.c_contiguous and out.flags.c_contiguous
    assert w16.shape[1] == at16.shape[1] and w16.shape[1] % 8 == 0 and out.shape == (w16.shape[0], at16.shape[0])
    lib().nic_matmul_i16(ptr(w16), ptr(at16), ptr(out), w16.shape[0], w16.shape[1],
                         at16.shape[0], chunk, scale)


def convt_i16(w16: np.ndarray, at16: np.ndarray, out: np.ndarray, chunk: int, scale: float, tap: np.ndarray,
              pix: np.ndarray, run: Callable[..., Any] | None = None) -> None:
    """out (Cout, H, W) += scale * the overlap-add of w16 (P, Kp) @ at16 (N, Kp).T, without the (P, N) patches.

    ``tap`` (P, 3) int32: (ky - pad, kx - pad, flat offset of that tap's pixel (0, 0)) per row of w16;
    ``pix`` (N, 2) int32: (y * s, x * s) per input pixel (conv.py ``_fused_convt`` builds both).
    """
    assert w16.dtype == at16.dtype == np.int16 and out.dtype == np.float64
    assert 1 <= chunk <= 1 << 24  # the kernel steps by 8 * chunk in a C int
    assert tap.dtype == pix.dtype == np.int32 and tap.shape == (w16.shape[0], 3) and pix.shape == (at16.shape[0], 2)
    assert all(v.flags.c_contiguous for v in (w16, at16, out, tap, pix)) and out.ndim == 3
    assert w16.shape[1] == at16.shape[1] and w16.shape[1] % 8 == 0
    _invoke(run, "nic_convt_i16", ptr(w16), ptr(at16), ptr(out), w16.shape[0], w16.shape[1],
            at16.shape[0], chunk, scale, ptr(tap), ptr(pix), out.shape[1], out.shape[2])


def phase_border(k: int, s: int, pad: int) -> int:
    """The zero border ``convt_phase_i16``'s transposed input needs: output row s i + p reads input rows i - d for
    every d with 0 <= s d + p + pad < k, i.e. from i - (k - 1 - pad) // s to i + (s - 1 + pad) // s."""
    return max(0, (k - 1 - pad) // s, (s - 1 + pad) // s)


def convt_phase_i16(a: np.ndarray, w16: np.ndarray, wmax: int, s: int, pad: int, out: np.ndarray) -> int:
    """The transposed conv of a (Cin, h, w) float64 integers by w16 (k * k, Cout, Kp) int16 (conv.py
    ``_phase_weights``: tap-major, Cin zero-padded to Kp, channel pairs interleaved) into out (Cout, s h, s w),
    gathered by output phase (``nic_convt_phase_i16``): 0, or 1 (out untouched) where an input exceeds int16 or a
    block could overflow int32. Cout even, at most 8 taps per axis and phase."""
    cin, h, w = a.shape
    taps, cout, kp = w16.shape
    k = int(round(taps ** 0.5))
    assert k * k == taps and cout % 2 == 0 and kp % 8 == 0 and cin <= kp and -(-k // s) <= 8
    assert a.dtype == out.dtype == np.float64 and w16.dtype == np.int16 and out.shape == (cout, s * h, s * w)
    assert a.flags.c_contiguous and w16.flags.c_contiguous and out.flags.c_contiguous and 0 <= wmax < 1 << 15
    border = phase_border(k, s, pad)
    scratch = np.empty(((h + 2 * border) * (w + 2 * border) + 4) * kp, np.int16)  # (Kp / 8, pixels, 8)
    return lib().nic_convt_phase_i16(ptr(a), cin, h, w, ptr(w16), cout, kp, k, s, pad, wmax, border, ptr(scratch),
                                     ptr(out))


def wino_data_scratch(kp: int, w: int, border: int, tile_rows: int) -> int:
    """int16 elements of ``wino_data_into``'s scratch for a band of ``tile_rows`` tile rows."""
    return (2 * tile_rows + 2 * border) * (w + 2 * border) * kp


def wino_tiles(n: int) -> int:
    """Tiles that ``n`` tiles take in ``wino_data_into``'s output (and ``wino_convt``'s input): whole groups of four."""
    return -(-n // 4) * 4


def wino_data_into(a: np.ndarray, shape: tuple[int, int], a0: int, kp: int, desc: np.ndarray, border: int,
                   limit: int, ty0: int, ty1: int, out: np.ndarray, maxabs: np.ndarray, scratch: np.ndarray,
                   run: Callable[..., Any] | None = None) -> int | None:
    """Winograd-transformed inputs (``winograd``) of tile rows ty0 .. ty1 - 1 of a (Cin, h, w) float64 or int16 input
    of ``shape`` (h, w), of which ``a`` (Cin, rows, w) holds rows a0 .. a0 + rows - 1 (a view with contiguous rows, or
    a copy): into ``out`` (nd * nd, tiles rounded up to a multiple of 4, Kp) int16, tiles = (ty1 - ty0) * ceil(w/2),
    laid out as the kernel reads them (groups of four tiles interleaved by 8 channels, the missing tiles zero), and
    ``maxabs`` (nd * nd,) int32, the largest |value| of each transform. 0, or 1 where some |a| the band reads exceeds
    ``limit`` (None when recorded)."""
    cin, rows, w = a.shape
    h = shape[0]
    nd = desc.shape[0]
    assert shape[1] == w and kp % 8 == 0 and kp >= cin and desc.dtype == np.int32 and desc.shape == (nd, 2)
    assert border >= 0 and 0 <= limit < 1 << 13 and 0 <= ty0 < ty1 <= -(-h // 2)
    assert all(-border <= j and j + kind <= border for kind, j in desc.tolist())
    # every image row the band reads is there
    assert a0 <= max(0, 2 * ty0 - border) and a0 + rows >= min(h, 2 * ty1 + border)
    size = a.dtype.itemsize
    assert a.dtype in (np.float64, np.int16) and a.strides[1:] == (size * w, size) and a.strides[0] % size == 0
    tiles = wino_tiles((ty1 - ty0) * -(-w // 2))
    assert out.dtype == np.int16 and out.shape == (nd * nd, tiles, kp) and out.flags.c_contiguous
    assert maxabs.dtype == np.int32 and maxabs.shape == (nd * nd,) and scratch.dtype == np.int16
    assert scratch.size >= wino_data_scratch(kp, w, border, ty1 - ty0) and scratch.flags.c_contiguous
    name = "nic_wino_data16" if size == 2 else "nic_wino_data"
    return _invoke(run, name, ptr(a), a.strides[0] // size, a0, rows, cin, h, w, ty0, ty1, kp,
                   ptr(desc), nd, border, limit, ptr(scratch), ptr(out), ptr(maxabs))


def wino_convt(w16: np.ndarray, tstart: np.ndarray, py: np.ndarray, px: np.ndarray, combo: np.ndarray,
               mask: np.ndarray, wmax: np.ndarray, maxabs: np.ndarray, data: np.ndarray, pix: np.ndarray,
               out: np.ndarray, s: int, band: int, run: Callable[..., Any] | None = None) -> int | None:
    """out (Cout, 2s th, 2s tw) = the Winograd transposed conv (``winograd.convt``'s plan): unit u (phase pair
    py[u], px[u]) sums its terms tstart[u]..tstart[u+1]-1, term t being rows t*Cout + c of w16 against transform
    combo[t] of data (combos, N rounded up to a multiple of 4, Kp: ``wino_data_into``'s) into the tile outputs in
    mask[t]; tile n's origin is pix[n] (N tiles) in a plane. Every output is written once. ``data`` may be a band of
    tiles of a larger array (contiguous per transform); w16's row pairs are interleaved (``winograd.Plan``).
    The int32 flush intervals come from ``wmax`` (per term) and ``maxabs`` (per transform, ``wino_data_into``'s):
    0, or 1 with ``out`` untouched where a single block could overflow (None when recorded). The kernel checks no
    bounds: they are asserted here (the plan's, once per read-only plan: ``_plan_addresses``)."""
    cout, hh, ww = out.shape
    assert w16.dtype == data.dtype == np.int16 and out.dtype in (np.float64, np.int32) and cout % 2 == 0
    assert maxabs.dtype == np.int32 and maxabs.shape == (data.shape[0],) and maxabs.flags.c_contiguous
    assert w16.shape[1] == data.shape[2] and w16.shape[1] % 8 == 0 and band >= 4 and band % 4 == 0
    assert w16.flags.c_contiguous and out.flags.c_contiguous
    assert data.strides[1:] == (2 * data.shape[2], 2) and data.strides[0] % 2 == 0  # tiles contiguous

    def check() -> None:
        nu, nt = py.shape[0], combo.shape[0]
        assert all(v.dtype == np.int32 and v.flags.c_contiguous for v in (tstart, py, px, combo, mask, wmax, pix))
        assert tstart.shape == (nu + 1,) and px.shape == (nu,) and mask.shape == wmax.shape == (nt,)
        assert tstart[0] == 0 and tstart[-1] == nt and bool(np.all(np.diff(tstart) >= 0)) and w16.shape[0] == nt * cout
        assert nt <= WINO_MAX_TERMS and bool(np.all((combo >= 0) & (combo < data.shape[0]))) and pix.ndim == 1
        assert data.shape[1] == wino_tiles(pix.shape[0])
        assert bool(np.all((py >= 0) & (py < s) & (px >= 0) & (px < s))) and bool(np.all((mask >= 0) & (mask < 16)))
        if pix.size:  # the farthest output, (1, 1) of the last phase of the last tile, stays inside a plane
            assert int(pix.min()) >= 0 and int(pix.max()) + (2 * s - 1) * ww + 2 * s - 1 < hh * ww

    at = _plan_addresses((tstart, py, px, combo, mask, wmax, pix), (s, cout, hh, ww, *w16.shape, *data.shape[:2]),
                         check)
    a_tstart, a_py, a_px, a_combo, a_mask, a_wmax, a_pix = at
    name = "nic_wino_convt" if out.dtype == np.float64 else "nic_wino_convt32"
    return _invoke(run, name, ptr(w16), w16.shape[1], a_tstart, a_py,
                   a_px, py.shape[0], a_combo, a_mask, a_wmax, ptr(maxabs),
                   cout, ptr(data), pix.shape[0], data.strides[0] // 2, a_pix, ptr(out), s,
                   hh * ww, ww, band)


def wino_plan(w: np.ndarray, taps: np.ndarray, iy: np.ndarray, ix: np.ndarray, kp: int) -> tuple[np.ndarray,
                                                                                             np.ndarray] | None:
    """A Winograd plan's (w16, wmax) from the weights w (Cin, Cout, k, k) float64 and its layout (``winograd._layout``:
    taps (axis terms, 4) int32 (c0, k0, c1, k1), iy, ix (terms,) int32), as ``winograd._plan_weights`` computes them;
    None where that declines (a weight no integer or beyond 2^28, a value beyond int16)."""
    cin, cout, k, _ = w.shape
    assert w.dtype == np.float64 and w.flags.c_contiguous and w.shape[3] == k and cout % 2 == 0
    assert kp % 8 == 0 and kp >= cin and taps.dtype == iy.dtype == ix.dtype == np.int32 and taps.shape[1] == 4
    assert iy.shape == ix.shape and taps.flags.c_contiguous and iy.flags.c_contiguous and ix.flags.c_contiguous
    terms = np.concatenate([iy, ix])
    assert int(terms.min()) >= 0 and int(terms.max()) < taps.shape[0]
    assert int(taps[:, 1::2].min()) >= 0 and int(taps[:, 1::2].max()) < k
    w16 = np.empty((iy.shape[0] * cout, kp), np.int16)
    wmax = np.empty(iy.shape[0], np.int32)
    wk = np.empty(w.size, np.int32)  # scratch: the weights by tap
    if lib().nic_wino_plan(ptr(w), cin, cout, k, ptr(taps), ptr(iy), ptr(ix), iy.shape[0], kp, ptr(wk), ptr(w16),
                           ptr(wmax)):
        return None
    return w16, wmax


def wino3_plan(w: np.ndarray, row0: int, nrows: int) -> tuple[np.ndarray, ...] | None:
    """The F(2x2, 3x3) plan (``wino3.Plan``'s fields: upk, combo, scale, skip, wmax) of output channels row0 ..
    row0 + nrows - 1 of the 3x3 weights w (Cin, Cout, 3, 3) float64, as ``wino3._plan_numpy`` makes it; None where a
    weight is no integer or reaches 2^20, or a part leaves int16."""
    cin, cout = w.shape[:2]
    assert w.dtype == np.float64 and w.flags.c_contiguous and w.shape[2:] == (3, 3)
    assert 0 <= row0 and nrows > 0 and row0 + nrows <= cout and nrows % W3_ROWS == 0
    kp = -(-cin // 8) * 8
    u = np.empty((16, nrows, cin), np.int32)  # scratch: the transforms
    split = np.empty(16, np.int32)
    upk = np.empty((32, nrows, kp // 2), np.int32)
    skip = np.empty((32, nrows // W3_ROWS), np.uint8)
    wmax = np.empty(32, np.int64)
    nt = lib().nic_wino3_plan(ptr(w), cin, cout, row0, nrows, kp, W3_ROWS, ptr(u), ptr(split), ptr(upk), ptr(skip),
                              ptr(wmax))
    if nt < 0:
        return None
    assert 16 <= nt <= 32
    combo = np.concatenate([np.arange(16, dtype=np.int32), split[: nt - 16]])
    scale = np.concatenate([np.ones(16), np.full(nt - 16, 256.0)])
    return upk[:nt].copy(), combo, scale, skip[:nt].copy(), wmax[:nt].copy()


# Plans whose checks passed (``_plan_addresses``): a few models' layers and band shapes.
PLAN_CHECKS = 32
_plan_checks: dict[tuple, tuple[tuple[np.ndarray, ...], tuple[int, ...]]] = {}


def _plan_addresses(arrays: tuple[np.ndarray, ...], shapes: tuple[int, ...],
                    check: Callable[[], None]) -> tuple[int, ...]:
    """The addresses of a plan's arrays once ``check()`` (their asserts against a call's ``shapes``) has passed.
    Read-only arrays (a plan's, which their makers froze) are checked once per call shape and their addresses kept:
    asserting the k13/s8 plan's ~1,300 values cost every depth-2 decode 0.2 ms of Python (Pyodide under Node). The entry
    holds the arrays themselves, so that their ids cannot name other arrays while it is kept. Writable arrays are
    checked at every call."""
    key = (*map(id, arrays), *shapes)
    hit = _plan_checks.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], arrays, strict=True)):
        return hit[1]
    check()
    at = tuple(ptr(a) for a in arrays)
    if not any(a.flags.writeable for a in arrays):
        if len(_plan_checks) >= PLAN_CHECKS:
            _plan_checks.clear()
        _plan_checks[key] = (arrays, at)
    return at


WINO_MAX_TERMS = 1024  # matmul.c's
W3_ROWS, W3_GROUPS = 2, 4  # matmul.c's W3_R, W3_G: the blocks of nic_wino3_conv


def wino3_data(a: np.ndarray, kp: int, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """F(2x2, 3x3) transformed inputs of a (Cin, h, w) float64 input (``wino3.prepare``): (16, groups, Kp / 2, 4, 2)
    int16, channel pairs of four tiles per vector (groups: whole blocks of W3_GROUPS, zeros past the tiles),
    and the largest |value| of each transform; None if some |a| exceeds ``limit``."""
    cin, h, w = a.shape
    a = np.ascontiguousarray(a, np.float64)
    assert kp % 8 == 0 and kp >= cin and 0 <= limit < 1 << 13
    scratch = np.empty((h + 3) * (w + 3) * kp, np.int16)
    groups = -(-(-(-h // 2) * -(-w // 2)) // (4 * W3_GROUPS)) * W3_GROUPS
    out = np.empty((16, groups, kp // 2, 4, 2), np.int16)
    maxabs = np.empty(16, np.int32)
    if lib().nic_wino3_data(ptr(a), cin, h, w, kp, limit, ptr(scratch), ptr(out),
                            ptr(maxabs)):
        return None
    return out, maxabs


def wino3_conv(upk: np.ndarray, combo: np.ndarray, tscale: np.ndarray, seg: np.ndarray, skip: np.ndarray,
               data: np.ndarray, shape: tuple[int, int], bias4: np.ndarray, shift: int, lo: float, hi: float,
               out: np.ndarray, run: Callable[..., Any] | None = None,
               lut: tuple[np.ndarray, int] | None = None, row_range: tuple[int, int] | None = None) -> None:
    """out (rows, h, w), float64 or int32, = clip(floor((4 conv + bias4 + 2^(shift-1)) / 2^shift), lo, hi), conv
    the 3x3 correlation whose F(2x2, 3x3) transforms are ``data`` (``wino3_data``) and term t's weight pairs upk[t]
    (rows, Kp / 2) for transform combo[t], times tscale[t], int32 sums flushed every seg[t] pairs (``wino3.conv3``).
    ``lut`` (table, lo): int32 ``out`` receives ``scale_index(that, table, lo)`` instead, in the same pass.
    ``row_range`` (r0, r1): only those rows of the plan (multiples of W3_ROWS), into out (r1 - r0, h, w).
    The kernel checks no bounds: they are asserted here."""
    nt, rows, pairs = upk.shape
    h, w = shape
    tiles = -(-h // 2) * -(-w // 2)
    assert upk.dtype == combo.dtype == seg.dtype == np.int32 and data.dtype == np.int16 and skip.dtype == np.uint8
    assert tscale.dtype == bias4.dtype == np.float64 and rows % W3_ROWS == 0 and rows > 0
    assert out.dtype == np.float64 or (out.dtype == np.int32 and -(1 << 31) <= lo <= hi < 1 << 31)
    assert combo.shape == tscale.shape == seg.shape == (nt,) and skip.shape == (nt, rows // W3_ROWS)
    assert bool(np.all((combo >= 0) & (combo < 16))) and bool(np.all(seg >= 1))
    assert data.shape == (16, -(-tiles // (4 * W3_GROUPS)) * W3_GROUPS, pairs, 4, 2) and bias4.shape == (rows,)
    r0, r1 = row_range or (0, rows)
    assert 0 <= r0 < r1 <= rows and r0 % W3_ROWS == 0 and r1 % W3_ROWS == 0
    assert out.shape == (r1 - r0, h, w) and 1 <= shift < 62
    assert all(v.flags.c_contiguous for v in (upk, combo, tscale, seg, skip, data, bias4, out))
    table, llo = lut if lut is not None else (None, 0)
    if table is not None:
        assert out.dtype == np.int32 and table.dtype == np.int32 and table.flags.c_contiguous and table.size >= 1
    _invoke(run, "nic_wino3_conv", ptr(upk), rows, pairs, nt, ptr(combo), ptr(tscale),
            ptr(seg), ptr(skip), ptr(data), data.shape[1], tiles, -(-w // 2), ptr(bias4),
            shift, lo, hi, ptr(out), int(out.dtype == np.int32), h, w,
            None if table is None else ptr(table), llo, llo + (0 if table is None else table.size - 1), r0, r1)


DIRECT_MAX_TERMS = 256  # MAX_TERMS in matmul.c: Cin * ceil(k/s)^2 taps per output phase


def convt_direct(a: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """(Cin, h, w) x (Cin, Cout, k, k) transposed conv -> (Cout, s*h, s*w), cropped from ``pad`` (few Cin)."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    assert cin * (-(-k // stride)) ** 2 <= DIRECT_MAX_TERMS and 0 <= pad < k
    e = direct_border(k, stride)
    ap = np.zeros((cin, h, wd + 2 * e), np.float64)
    ap[:, :, e : e + wd] = a
    w = np.ascontiguousarray(w, np.float64)
    out = np.empty((cout, stride * h, stride * wd), np.float64)  # every element is written
    lib().nic_convt_direct(ptr(ap), ptr(w), ptr(out), cin, cout, k, stride, h, wd, pad, e)
    return out


def weight_pairs(w: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(Cin, Cout, k, k) integer weights as ``nic_convt_direct_i16`` reads them: (Cout, k, k, pairs) int32
    w[2q] | w[2q + 1] << 16 (a zero channel past an odd Cin), and max|w|; None if a weight needs more than 15
    bits. conv.py keeps it per weight array."""
    cin, cout, k = w.shape[0], w.shape[1], w.shape[2]
    wmax = int(np.abs(w).max()) if w.size else 0
    if wmax >= 1 << 15:
        return None
    pairs = -(-cin // 2)
    wz = np.zeros((2 * pairs, cout, k, k), np.int64)
    wz[:cin] = w
    wz = wz.reshape(pairs, 2, cout, k, k).transpose(2, 3, 4, 0, 1)
    return np.ascontiguousarray(((wz[..., 1] << 16) | (wz[..., 0] & 0xFFFF)).astype(np.int32)), wmax


def convt_direct_i16(a: np.ndarray, wpk: np.ndarray, wmax: int, stride: int, pad: int) -> np.ndarray | None:
    """``convt_direct`` in int16 products (same result) with ``weight_pairs``' weights, or None where some
    input exceeds 2^15 - 1 or a product could overflow int32: the caller then runs ``convt_direct``."""
    cin, h, wd = a.shape
    a = np.ascontiguousarray(a, np.float64)
    out = np.empty((wpk.shape[0], stride * h, stride * wd), np.float64)  # every element is written
    scratch = np.empty(direct_i16_scratch(cin, h, wd, wpk.shape[1], stride), np.int16)
    return None if convt_direct_i16_into(a, wpk, wmax, stride, pad, out, scratch) else out


def direct_border(k: int, stride: int) -> int:
    """Zero columns each side of a direct k x k, ``stride`` layer's input rows: every tap's shifted row stays inside."""
    return -(-k // stride) + 1


def pairs_shape(cin: int, h: int, wd: int, k: int, stride: int) -> tuple[int, int, int, int]:
    """The int16 channel pairs such a layer's int16 kernels read (``pairs_to_i16`` in matmul.c, ``upres_igdn16``):
    ((cin + 1) / 2 pairs, h, wd + 2 ``direct_border``, 2), channels 2q and 2q + 1 interleaved pixel by pixel."""
    return -(-cin // 2), h, wd + 2 * direct_border(k, stride), 2


def direct_i16_scratch(cin: int, h: int, wd: int, k: int, stride: int) -> int:
    """int16 elements of ``convt_direct_i16_into``'s scratch: the input as channel pairs, with zero borders."""
    return int(np.prod(pairs_shape(cin, h, wd, k, stride)))


def convt_direct_i16_into(a: np.ndarray, wpk: np.ndarray, wmax: int, stride: int, pad: int, out: np.ndarray,
                          scratch: np.ndarray, run: Callable[..., Any] | None = None) -> int | None:
    """``convt_direct_i16`` into ``out`` (Cout, s*h, s*w) with a given ``scratch``: 0, or 1 where the int16
    products cannot be exact (``out`` is then garbage); None when recorded by ``run``."""
    cin, h, wd = a.shape
    cout, k, pairs = wpk.shape[0], wpk.shape[1], wpk.shape[3]
    assert wpk.dtype == np.int32 and wpk.flags.c_contiguous and wpk.shape == (cout, k, k, pairs)
    assert pairs == -(-cin // 2) and pairs * (-(-k // stride)) ** 2 <= DIRECT_MAX_TERMS and 0 <= pad < k
    assert 0 <= wmax < 1 << 15 and a.dtype == out.dtype == np.float64 and scratch.dtype == np.int16
    assert out.shape == (cout, stride * h, stride * wd) and scratch.size >= direct_i16_scratch(cin, h, wd, k, stride)
    assert a.flags.c_contiguous and out.flags.c_contiguous and scratch.flags.c_contiguous
    e = direct_border(k, stride)
    return _invoke(run, "nic_convt_direct_i16", ptr(a), ptr(wpk), ptr(out), cin, cout, k,
                   stride, h, wd, pad, e, wmax, ptr(scratch))


def convt_direct_i16_pixels16(ap: np.ndarray, amax: np.ndarray, cin: int, h: int, wd: int, wpk: np.ndarray,
                              wmax: int, stride: int, pad: int, row0: int, b: np.ndarray, shift: int, out: np.ndarray,
                              scratch: np.ndarray, run: Callable[..., Any] | None = None) -> int | None:
    """``convt_direct_i16_into`` and ``pixels_rows`` row by row, from a (cin, h, wd) input already in int16 channel
    pairs (``ap``: ``direct_i16_scratch``'s layout, as ``upres_igdn16`` writes it; ``amax`` (1,) int32 a bound of its
    |values|, read when the call runs): rows row0 .. row0 + oh - 1 of the layer's output (Cout, s*h, s*w), rounded
    to pixels, into ``out`` (oh, ow, Cout or Cout + 1); the float64 planes of the whole output are never made
    (``scratch`` holds one row's: ``direct_pixels_scratch``). 0, or 1 where the int16 products cannot be exact (a
    bound beyond int16, or a product past int32: ``out`` untouched); None when recorded by ``run``."""
    cout, k, pairs = wpk.shape[0], wpk.shape[1], wpk.shape[3]
    oh, ow, channels = out.shape
    assert wpk.dtype == np.int32 and wpk.flags.c_contiguous and wpk.shape == (cout, k, k, pairs)
    assert pairs == -(-cin // 2) and pairs * (-(-k // stride)) ** 2 <= DIRECT_MAX_TERMS and 0 <= pad < k
    assert ap.dtype == np.int16 and ap.flags.c_contiguous and ap.size >= direct_i16_scratch(cin, h, wd, k, stride)
    assert amax.dtype == np.int32 and amax.shape == (1,) and 0 <= wmax < 1 << 15 and b.dtype == np.float64
    assert out.dtype == np.uint8 and channels in (cout, cout + 1) and b.shape == (cout,) and shift >= 1
    assert 0 <= row0 and 0 < oh and row0 + oh <= stride * h and 0 < ow <= stride * wd
    assert scratch.dtype == np.int16 and scratch.size >= direct_pixels_scratch(cin, cout, h, wd, k, stride)
    assert out.flags.c_contiguous and scratch.flags.c_contiguous and b.flags.c_contiguous
    e = direct_border(k, stride)
    row = ptr(scratch) + 2 * _pixels_row_at(cin, h, wd, k, stride)
    return _invoke(run, "nic_convt_direct_i16_pixels16", ptr(ap), ptr(amax), ptr(wpk), cin, cout, k, stride, h, wd,
                   pad, e, wmax, ptr(b), shift, ptr(out), row0, oh, ow, channels, row)


def direct_pixels_scratch(cin: int, cout: int, h: int, wd: int, k: int, stride: int) -> int:
    """int16 elements of ``convt_direct_i16_pixels16``' scratch: ``direct_i16_scratch``'s, then one output row's float64
    planes (Cout x s*w)."""
    return _pixels_row_at(cin, h, wd, k, stride) + 4 * cout * stride * wd


def _pixels_row_at(cin: int, h: int, wd: int, k: int, stride: int) -> int:
    """Where that row's float64 planes start in the scratch, in int16 elements: after the int16 input, 8-byte
    aligned."""
    at = direct_i16_scratch(cin, h, wd, k, stride)
    return at + (-at) % 4


def requantize(acc: np.ndarray, mul: np.ndarray | None, bias: np.ndarray | None, shift: int, lo: float,
               hi: float) -> np.ndarray:
    """clip(floor((acc * mul_c + bias_c + 2^(shift-1)) / 2^shift), lo, hi) for (C, ...) acc (conv.py)."""
    acc = np.ascontiguousarray(acc, np.float64)
    c = acc.shape[0]
    mul, bias = (None if v is None else np.ascontiguousarray(v, np.float64) for v in (mul, bias))
    assert all(v is None or v.shape == (c,) for v in (mul, bias)) and shift >= 1
    out = np.empty(acc.shape, np.float64)
    lib().nic_requantize(ptr(acc), None if mul is None else ptr(mul),
                         None if bias is None else ptr(bias), ptr(out), c, acc.size // max(1, c),
                         shift, lo, hi)
    return out


def pixels(acc: np.ndarray, b: np.ndarray, shift: int, size: tuple[int, int], layout: str) -> np.ndarray:
    """(C, H, W) last-layer accumulators + bias -> uint8 pixels of the top-left ``size`` crop, rounded half up
    and clipped (synthesis.py), in ``layout``: "planes" (C, h, w), "rgb" (h, w, C) or "rgba" (h, w, C + 1)."""
    acc = np.ascontiguousarray(acc, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    c, (hh, ww), (oh, ow) = acc.shape[0], acc.shape[1:], size
    assert b.shape == (c,) and shift >= 1 and 0 < oh <= hh and 0 < ow <= ww
    if layout == "planes":
        out, cstride, pstride = np.empty((c, oh, ow), np.uint8), oh * ow, 1
    else:
        channels = {"rgb": c, "rgba": c + 1}[layout]
        out, cstride, pstride = np.empty((oh, ow, channels), np.uint8), 1, channels
    lib().nic_pixels(ptr(acc), ptr(b), ptr(out), c, hh, ww, oh, ow, cstride, pstride,
                     int(layout == "rgba"), shift)
    return out


def pixels_rows(acc: np.ndarray, row0: int, b: np.ndarray, shift: int, out: np.ndarray,
                run: Callable[..., Any] | None = None) -> None:
    """``pixels`` of rows row0 .. row0 + oh - 1 of ``acc`` (C, H, W) into ``out`` (oh, ow, C or C + 1), the rgb
    or rgba layout (C + 1 channels: opaque alpha)."""
    c, hh, ww = acc.shape
    oh, ow, channels = out.shape
    assert acc.dtype == b.dtype == np.float64 and out.dtype == np.uint8 and b.shape == (c,) and shift >= 1
    assert channels in (c, c + 1) and 0 <= row0 and 0 < oh and row0 + oh <= hh and 0 < ow <= ww
    assert acc.flags.c_contiguous and out.flags.c_contiguous and b.flags.c_contiguous
    _invoke(run, "nic_pixels", ptr(acc) + row0 * ww * 8, ptr(b), ptr(out), c, hh, ww, oh, ow,
            1, channels, int(channels == c + 1), shift)


def upres_igdn(acc: np.ndarray, b: np.ndarray, gamma: np.ndarray, beta: np.ndarray, shifts: tuple[int, int, int, int],
               limit: float, out: np.ndarray | None = None, run: Callable[..., Any] | None = None) -> np.ndarray:
    """(2C, H, W) fused up/res accumulators -> (C, H, W) hidden layer (synthesis.py's NumPy arithmetic)."""
    c2 = acc.shape[0]
    c = c2 // 2
    assert c2 == 2 * c and c <= 16 and gamma.shape == (c, c)
    acc = np.ascontiguousarray(acc, np.float64)
    b, gamma, beta = (np.ascontiguousarray(v, np.float64) for v in (b, gamma, beta))
    if out is None:
        out = np.empty((c, *acc.shape[1:]), np.float64)
    assert out.shape == (c, *acc.shape[1:]) and out.dtype == np.float64 and out.flags.c_contiguous
    _invoke(run, "nic_upres_igdn", ptr(acc), ptr(b), ptr(gamma), ptr(beta),
            ptr(out), c, acc[0].size, *shifts, limit)
    return out


def upres_igdn16(acc: np.ndarray, b: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                 shifts: tuple[int, int, int, int], limit: float, k: int, stride: int, ap: np.ndarray,
                 amax: np.ndarray, run: Callable[..., Any] | None = None) -> int | None:
    """``upres_igdn`` of int32 accumulators (``wino_convt``'s int32 output), written as the next layer's int16 channel
    pairs (``ap``: ``direct_i16_scratch``'s layout for a k x k, ``stride`` layer) and their largest |value| into
    ``amax`` (1,) int32: 0, or 1 where a value leaves int16 or a parameter its int32 bounds (the caller then takes the
    float64 path); None when recorded by ``run``."""
    c2, h, wd = acc.shape
    c = c2 // 2
    assert c2 == 2 * c and 1 <= c <= 16 and gamma.shape == (c, c) and b.shape == (c2,) and beta.shape == (c,)
    assert acc.dtype == np.int32 and acc.flags.c_contiguous and ap.dtype == np.int16 and ap.flags.c_contiguous
    assert all(v.dtype == np.float64 and v.flags.c_contiguous for v in (b, gamma, beta))
    assert ap.size >= direct_i16_scratch(c, h, wd, k, stride) and amax.dtype == np.int32 and amax.shape == (1,)
    return _invoke(run, "nic_upres_igdn16", ptr(acc), ptr(b), ptr(gamma), ptr(beta), ptr(ap), c, h, wd,
                   direct_border(k, stride), *shifts, limit, ptr(amax))


def overlap_add(patches: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """(Cout, k, k, h, w) transposed-conv patches -> cropped (Cout, s*h, s*w) output, like conv.py's NumPy path."""
    cout, k, _, h, w = patches.shape
    patches = np.ascontiguousarray(patches, np.float64)
    out = np.zeros((cout, stride * h, stride * w), np.float64)
    lib().nic_overlap_add(ptr(patches), ptr(out), cout, k, stride, h, w, pad)
    return out


def scale_index(t: np.ndarray, lut: np.ndarray, lo: int) -> np.ndarray:
    """``lut[clip(t, lo, lo + lut.size - 1) - lo]`` as int32 for float64 integers t (hyper.py's scale indices)."""
    t = np.ascontiguousarray(t, np.float64)
    assert lut.dtype == np.int32 and lut.flags.c_contiguous and lut.size >= 1
    out = np.empty(t.shape, np.int32)
    lib().nic_scale_index(ptr(t), ptr(out), t.size, ptr(lut), lo, lo + lut.size - 1)
    return out


def _latent_operands(q: np.ndarray, means: np.ndarray, inv: np.ndarray, frac: int, shift: int,
                     limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The latent kernels' operands as they read them (int32 symbols and means, float64 inverse gains) and the channel
    count, their shapes and ranges asserted."""
    q = np.ascontiguousarray(q, np.int32)
    means = np.ascontiguousarray(means, np.int32)
    inv = np.ascontiguousarray(inv, np.float64)
    c = q.shape[0]
    assert q.shape == means.shape and inv.shape == (c,) and 0 <= frac <= 8 and 1 <= shift < 62 and limit > 0
    return q, means, inv, c


def latent(q: np.ndarray, means: np.ndarray, inv: np.ndarray, frac: int, shift: int, limit: float) -> np.ndarray:
    """(C, ...) float64 clip(floor(((q 2^frac + means) inv_c + 2^(shift-1)) / 2^shift), +-limit) from int32 latent
    values q and means of the same shape (synthesis.py ``latent_input``)."""
    q, means, inv, c = _latent_operands(q, means, inv, frac, shift, limit)
    out = np.empty(q.shape, np.float64)
    lib().nic_latent(ptr(q), ptr(means), ptr(inv), c, q.size // max(1, c), frac, shift, limit,
                     ptr(out))
    return out


def latent16(q: np.ndarray, means: np.ndarray, inv: np.ndarray, frac: int, shift: int, limit: float,
             limit16: int) -> np.ndarray | None:
    """``latent``'s values as int16, or None where one is beyond +-limit16 (the caller then makes them in float64)."""
    q, means, inv, c = _latent_operands(q, means, inv, frac, shift, limit)
    assert 0 <= limit16 < 1 << 15
    out = np.empty(q.shape, np.int16)
    if lib().nic_latent16(ptr(q), ptr(means), ptr(inv), c, q.size // max(1, c), frac, shift, limit, limit16,
                          ptr(out)):
        return None
    return out


def to_i16t(a: np.ndarray, at: np.ndarray, limit: int) -> int:
    """at (N, Kp) int16 = the transpose of a (K, N) float64 integers, zero-padded to Kp columns; returns max |a|, or
    -1 where some |a| exceeds ``limit`` (``at`` then holds garbage)."""
    k, n = a.shape
    assert a.dtype == np.float64 and at.dtype == np.int16 and a.flags.c_contiguous and at.flags.c_contiguous
    assert at.shape[0] == n and at.shape[1] >= k and 0 <= limit < 1 << 15
    return int(lib().nic_to_i16t(ptr(a), k, n, at.shape[1], limit, ptr(at)))


def rans_decode(tables: np.ndarray, lanes: int, x: np.ndarray, words: np.ndarray, word_ptr: int, buckets: np.ndarray,
                freqs: np.ndarray, start: np.ndarray, values: tuple[np.ndarray, np.ndarray] | None = None,
                pause: tuple[int, Callable[[], None]] | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The rANS step loop: returns (global symbol indices, None, new word pointer); pointer -1 = out of words, -2 = a
    table index outside the (tables, 257) ``buckets`` (the loop checks each as it reads it: ``tables`` need no check).

    ``x`` (int64 lane states) is updated in place, like the NumPy loop does; ``buckets`` is the
    (tables, 257) int32 index of ``rans._decode_tables``. ``values`` (base, escsym), int32 per table (entropy.py
    ``_value_tables``): the loop maps each symbol to its latent value as it goes, and returns (int32 values, int32
    positions of the escapes, whose values are left 0, new word pointer).

    ``pause`` (at, fn), with ``values``: decodes symbols 0 .. at - 1, calls fn(), which may fill ``tables[at:]`` (the
    scale indices the helper thread computes, ``hyper.hyper_decode_deferred``), then decodes the rest. The same
    symbols: a step may be cut between lanes (symbol i is lane i % lanes's, and the lanes of a step take their
    words in lane order either way). ``tables`` must then be int32 and contiguous (read in place, not copied).
    """
    n = tables.size
    if pause is not None and not (values is not None and tables.dtype == np.int32 and tables.flags.c_contiguous
                                  and 0 < pause[0] < n):
        pause[1]()  # nothing to decode before it, or the tables would be copied before it filled them
        pause = None
    args = [np.ascontiguousarray(tables, np.int32), np.ascontiguousarray(words, np.int64),
            np.ascontiguousarray(buckets, np.int32), np.ascontiguousarray(freqs, np.int64),
            np.ascontiguousarray(start, np.int64)]
    assert x.dtype == np.int64 and x.flags.c_contiguous
    out = np.empty(n, np.int32)
    tb, wd, bk, fr, st = args
    if values is None:
        new_ptr = lib().nic_rans_decode(ptr(tb), n, bk.shape[0], lanes, ptr(x), ptr(wd), wd.size, word_ptr,
                                        ptr(bk), ptr(fr), ptr(st), ptr(out),
                                        None, None, None, None)
        return out, None, new_ptr
    base, escsym = values
    assert base.dtype == escsym.dtype == np.int32 and base.shape == escsym.shape == (bk.shape[0],)
    assert base.flags.c_contiguous and escsym.flags.c_contiguous
    escpos = np.empty(n, np.int32)
    nesc = np.zeros(1, np.int32)
    at = n if pause is None else pause[0]
    ne, new_ptr, first = 0, word_ptr, 0
    # the addresses once (y's decode takes up to three calls: ~4 us of Pyodide for each address)
    p_tb, p_x, p_wd, p_bk, p_fr, p_st, p_out, p_base, p_esc, p_pos, p_nesc = map(
        ptr, (tb, x, wd, bk, fr, st, out, base, escsym, escpos, nesc))
    decode = lib().nic_rans_decode
    for stop in (at, n):
        if stop > at:
            pause[1]()  # type: ignore[index]
        while first < stop:
            # From lane j0 of a step: first its lanes j0.. (x from lane j0, as a step of lanes - j0), then whole steps
            j0 = first % lanes
            count = min(stop - first, lanes - j0) if j0 else stop - first
            new_ptr = decode(p_tb + 4 * first, count, bk.shape[0], lanes - j0, p_x + 8 * j0, p_wd, wd.size, new_ptr,
                             p_bk, p_fr, p_st, p_out + 4 * first, p_base, p_esc, p_pos + 4 * ne, p_nesc)
            if new_ptr < 0:
                return out, escpos[:0], new_ptr
            k = int(nesc[0])
            escpos[ne : ne + k] += first  # the loop counts positions from its first symbol
            ne += k
            first += count
    return out, escpos[:ne], new_ptr


# V8 (Chromium, Node) runs a WebAssembly function in its baseline code until the function has spent a budget of work,
# then compiles it with its optimising tier in the background for its later calls: a call already running keeps its
# code to the end. A kernel whose first call is a whole layer of the decode therefore runs that layer in baseline code
# from start to end (a cold start's first decode of a Kodak image in Chromium: the k13/s8 layer 64-77 ms against 8-11
# once warm). tier_up spends the budget on a self-check's small inputs instead, 30-150 ms before the decode's first
# large call; V8 shares a module's code between the threads that compile the same bytes, so the helper thread's calls
# (nic-helper.js) start optimised too.
TIER_UP_S = 0.003  # ~1-2 ms of baseline calls spent the budget in a standalone test (BENCHMARKS.md, session 38)
TIER_UP_MIN_CALLS = 4  # and at least this many calls, however slow the first ones (cold code, fresh memory)
TIER_UP_CALLS = 100


def tier_up(call: Callable[[], object]) -> None:
    """Call ``call`` (kernel calls on a self-check's inputs, whose results are thrown away) again: TIER_UP_MIN_CALLS
    times, then until TIER_UP_S seconds have passed, TIER_UP_CALLS times at most, so that V8 optimises the kernels it
    runs before a decode needs them. Only the kernels' checks call it, and they run only where the kernels load
    (Pyodide)."""
    end = time.perf_counter() + TIER_UP_S
    for i in range(TIER_UP_CALLS):
        call()
        if i + 1 >= TIER_UP_MIN_CALLS and time.perf_counter() >= end:
            return


class CheckInts:
    """Deterministic integers for the kernels' load-time self-checks (a splitmix64 counter in NumPy).

    ``numpy.random`` would do, but importing it costs ~65 ms of the first decode in Pyodide.
    """

    def __init__(self, seed: int = 0):
        self._next = seed

    def integers(self, lo: int, hi: int, shape: int | tuple[int, ...] = ()) -> np.ndarray:
        """int64 values in ``[lo, hi)`` (``hi - lo`` below 2^62), like ``Generator.integers``."""
        n = int(np.prod(shape))
        z = np.arange(self._next + 1, self._next + 1 + n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        self._next += n
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return (lo + (z % np.uint64(hi - lo)).astype(np.int64)).reshape(shape)
