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
whole contiguous planes (see ``conv_transpose``). In CPython, layers with few input
channels skip the patch matrix: they gather the input by output phase (``_conv_phases``).

In Pyodide, optional WebAssembly kernels (``_native``; self-checked against this NumPy code on load)
take over whole transposed convs: int16 products (8 multiply-adds per instruction) added straight onto the
output (``_fused_convt``, no patch matrix; the k13/s8 layer in a third fewer products, ``winograd``), the
stride-1 gather on an int16 operand built in place (``_gather_i16``), a direct loop for few input channels;
and the per-channel requantization. CPython never uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import sys
import threading

import numpy as np

from webdecoder import _native, known_answers, trace, winograd
from webdecoder.errors import NicError

# Pyodide's NumPy has no BLAS; CPython's wheels do, and there BLAS matmul beats einsum by ~2x.
NO_BLAS = sys.platform == "emscripten"
SHORT_K = 64  # Cin up to which the no-BLAS product runs along N (measured in Pyodide: K=6 3x, K=48 even)


I16_SUM_LIMIT = (1 << 31) - 1  # every int32 sum of the int16 kernel stays within this
MAX_CHUNK = 1 << 12  # blocks of 8 between flushes when nothing bounds it (zero operands); fan-in is below 2^11


def _chunk(wmax: int, pmax: int) -> int | None:
    """Blocks of 8 products the int16 kernel may sum in int32 before flushing to float64 (a block adds at most
    8*wmax*pmax to the four-lane sum), or None when the operands do not fit it: activations beyond int16, or
    not even one block within int32. Capped, so that 8 * chunk stays a small C int even for zero operands."""
    if pmax >= (1 << 15) or 8 * wmax * pmax > I16_SUM_LIMIT:
        return None
    return min(MAX_CHUNK, I16_SUM_LIMIT // max(1, 8 * wmax * pmax))


CACHE_ENTRIES = 64  # per-weight caches: a few models' layers; callers without cached weights must not grow them
_w16_cache: dict[int, tuple] = {}  # id(wmat) -> (wmat, (int16 copy or None, max|w|))
_gather_cache: dict[int, tuple] = {}  # id(w) -> (w, gather matrix)
_gather16_cache: dict[int, tuple] = {}  # id(w) -> (w, (int16 gather matrix, taps-major, or None; max|w|))
_phase_cache: dict[int, tuple] = {}  # id(w) -> (w, {(stride, pad): phase groups of ``_conv_phases``})
_pairs_cache: dict[int, tuple] = {}  # id(w) -> (w, ``_native.weight_pairs(w)``)
_phase16_cache: dict[int, tuple] = {}  # id(w) -> (w, ``_phase_weights(w)``)


def _derived(cache: dict[int, tuple], arr: np.ndarray, make: Callable[[np.ndarray], object]) -> object:
    """``make(arr)``, computed once per weight array (by identity) and kept in a bounded cache.

    The entry holds ``arr`` itself, so its id cannot be reused by another array while cached.
    """
    hit = cache.get(id(arr))
    if hit is None or hit[0] is not arr:
        if len(cache) >= CACHE_ENTRIES:
            cache.pop(next(iter(cache)))  # the oldest entry
        hit = cache[id(arr)] = (arr, make(arr))
    return hit[1]


def _to_int16(wmat: np.ndarray) -> tuple[np.ndarray | None, int]:
    """wmat as int16 with K zero-padded to a multiple of 8, or None if it does not fit; and max|w|."""
    wmax = int(np.abs(wmat).max()) if wmat.size else 0
    if wmax >= (1 << 15):
        return None, wmax
    w16 = np.zeros((wmat.shape[0], -(-wmat.shape[1] // 8) * 8), np.int16)
    w16[:, : wmat.shape[1]] = wmat
    return w16, wmax


def _int16_parts(wmat: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, list] | None:
    """wmat @ a2 as int16 operands for the kernel (8 multiply-adds per wasm instruction): the int16 weights and
    a list of (at16 (N, Kp), chunk, scale) parts whose scaled products sum to it; None when it cannot be exact.

    Activations wider than 15 bits are split as a = hi * 2^b + lo (lo = the low b bits) and the two halves
    multiplied separately; every int32 lane sum is flushed to float64 before it could overflow (``chunk``).
    Same integers, so the same result as the float64 product, bit for bit.
    """
    w16, wmax = _derived(_w16_cache, wmat, _to_int16)
    if w16 is None:
        return None
    k, n = a2.shape
    if a2.dtype == np.float64 and a2.flags.c_contiguous and _to_i16t_kernel_ok():  # one pass in wasm
        at = np.empty((n, w16.shape[1]), np.int16)
        amax = _native.to_i16t(a2, at, (1 << 15) - 1)
        if amax >= 0:
            chunk = _chunk(wmax, amax)
            return None if chunk is None else (w16, [(at, chunk, 1.0)])
    amax = int(np.abs(a2).max()) if a2.size else 0
    if amax < (1 << 15):
        split = [(a2, 1.0, amax)]
    else:  # float64 arithmetic on integers below 2^53 is exact: floor(a / 2^b) and the remainder
        b = (amax.bit_length() + 1) // 2
        hi = np.floor(a2 * (1.0 / (1 << b)))
        split = [(hi, float(1 << b), (amax >> b) + 1), (a2 - hi * float(1 << b), 1.0, (1 << b) - 1)]
    parts = []
    for part, scale, pmax in split:
        chunk = _chunk(wmax, pmax)
        if chunk is None:
            return None
        at = np.zeros((n, w16.shape[1]), np.int16)
        at[:, :k] = part.astype(np.int16).T  # exact: integers within +-2^15
        parts.append((at, chunk, scale))
    return w16, parts


def _int16_product(wmat: np.ndarray, a2: np.ndarray) -> np.ndarray | None:
    """wmat @ a2 through the int16 kernel, or None when it cannot be exact (see ``_int16_parts``)."""
    ops = _int16_parts(wmat, a2)
    if ops is None:
        return None
    w16, parts = ops
    out = np.zeros((wmat.shape[0], a2.shape[1]), np.float64)
    for at, chunk, scale in parts:
        _native.matmul_i16(w16, at, out, chunk, scale)
    return out


def _fused_convt(a: np.ndarray, w: np.ndarray, wmat: np.ndarray, s: int, pad: int) -> np.ndarray | None:
    """The whole transposed conv in the int16 kernel, products added straight onto the output (no patch
    matrix: 25 MB less for the k13/s8 layer of a Kodak image, and no separate overlap-add pass); None when
    the operands do not fit int16 exactly."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    ops = _int16_parts(wmat, a.reshape(cin, h * wd))
    if ops is None:
        return None
    w16, parts = ops
    tap, pix = _scatter_index(cout, k, s, pad, h, wd)
    out = np.zeros((cout, s * h, s * wd), np.float64)
    for at, chunk, scale in parts:
        _native.convt_i16(w16, at, out, chunk, scale, tap, pix)
    return out


INDEX_ENTRIES = 8  # shapes kept (each a few KB for a photo, 2 MB at the 8192x8192 limit)
_index_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _scatter_index(cout: int, k: int, s: int, pad: int, h: int, wd: int) -> tuple[np.ndarray, np.ndarray]:
    """Where ``nic_convt_i16`` adds each product: per weight row (c, ky, kx) its offsets (ky - pad, kx - pad,
    flat index of its output pixel for input (0, 0)), per input pixel (y, x) its (y*s, x*s). Kept for the last
    few shapes: a page decodes many images of one size."""
    key = (cout, k, s, pad, h, wd)
    hit = _index_cache.get(key)
    if hit is None:
        H, W = s * h, s * wd
        p = np.arange(cout * k * k)
        c, ky, kx = p // (k * k), p // k % k, p % k  # rows of wmat are (c, ky, kx), C order (``weight_matrix``)
        tap = np.empty((p.size, 3), np.int32)
        tap[:, 0], tap[:, 1] = ky - pad, kx - pad
        tap[:, 2] = c * (H * W) + (ky - pad) * W + (kx - pad)
        n = np.arange(h * wd)
        pix = np.empty((n.size, 2), np.int32)
        pix[:, 0], pix[:, 1] = n // wd * s, n % wd * s
        if len(_index_cache) >= INDEX_ENTRIES:
            _index_cache.pop(next(iter(_index_cache)))
        hit = _index_cache[key] = (tap, pix)
    return hit


def _kernel_product(wmat: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """The int16 kernel where its bounds allow, else the float64 kernel."""
    out = _int16_product(wmat, a2)
    return _native.matmul(wmat, a2) if out is None else out


def _load_kernel() -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The WebAssembly matmul kernels (native/matmul.c via ``_native``) in Pyodide, or None.

    Optional by design: the NumPy path below is the reference and the fallback. The kernels are only used
    after they reproduced NumPy's product bit for bit on integers at the format's bounds (weights below
    2^14, activations within +-2^22), on both the int16 path (narrow and split activations) and the
    float64 one.
    """
    if not NO_BLAS or _native.lib() is None:
        return None
    rng = _native.CheckInts()
    for p, k, n, abits in ((7, 5, 9, 22), (12, 192, 10, 22), (75, 6, 33, 22), (9, 64, 13, 11), (5, 17, 6, 15)):
        w = rng.integers(-(1 << 14) + 1, 1 << 14, (p, k)).astype(np.float64)
        a = rng.integers(-(1 << abits), (1 << abits) + 1, (k, n)).astype(np.float64)
        want = np.einsum("pk,kn->pn", w, a)
        if not (np.array_equal(_native.matmul(w, a), want) and np.array_equal(_kernel_product(w, a), want)):
            return None
    _w16_cache.clear()
    return _kernel_product


_kernel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None | bool = False  # False: not tried yet


DIRECT_MAX_CIN = 8  # up to this many input channels, the wasm kernel convolves directly (no patch matrix)
# Up to this many input channels, CPython's BLAS path gathers by output phase (``_conv_phases``). Measured on
# a Kodak decode: the 5x5/s2 layers (6, 48 and 64 input channels) run 2-2.5x faster that way; the 192-channel
# k13/s8 and k18/s16 layers, whose products dominate, 1.15x and 3x slower (their zero taps cost 1.5x / 3.2x).
PHASE_MAX_CIN = 64
# Columns (input rows x width) per band of ``phase_bands``: the output layer's shifted copies of a band,
# 54 x 6,144 float64 (2.6 MB), stay in cache. 16 rows of a Kodak image; 8-32 measured the same, 64 slower.
PHASE_BAND_COLS = 6144


def _numpy_convt(a: np.ndarray, w: np.ndarray, wmat: np.ndarray, s: int, pad: int) -> np.ndarray:
    """The kernels' self-check reference: ``conv_transpose``'s NumPy product and overlap-add, whatever is loaded."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    return _overlap_add(np.einsum("pk,kn->pn", wmat, a.reshape(cin, -1)).reshape(cout, k, k, h, wd), s, pad)


# The conv kernels' load-time checks, one per path of ``conv_transpose`` (and the synthesis' bands), each run before
# that path's first use (``kernel_checked``), so that a decode pays for the paths its model takes: depth 2 runs the
# phase gather (the hyper-decoder's 5x5/s2 layers) and Winograd (k13/s8); depth 1 the phase gather and, split between
# the threads, the fused int16 product; older models the direct kernels and the overlap-add too. Each compares the
# kernel with the NumPy path (``_numpy_convt``) on random integers at its bounds: the two that depth 2 runs through
# known answers (``known_answers``: digests of the reference's outputs, made again in CPython by the tests), so that
# the browser's first decode does not pay for the first run of reference code it never otherwise runs.
# (One pass over every path cost Chromium's first decode 84-105 ms in session 38; the two that depth 2 needs are
# about a third of it.)

def _overlap_check() -> bool:
    """``nic_overlap_add`` against ``_overlap_add`` on 41-bit patches: four strides and kernel sizes, crops."""
    rng = _native.CheckInts()
    for cout, k, s, h, w, pad in ((3, 5, 2, 7, 9, 2), (4, 13, 8, 3, 5, 3), (2, 18, 16, 2, 3, 1), (5, 3, 1, 4, 6, 1)):
        patches = rng.integers(-(1 << 40), 1 << 40, (cout, k, k, h, w)).astype(np.float64)
        if not np.array_equal(_native.overlap_add(patches, s, pad), _overlap_add(patches, s, pad)):
            return False
    return True


def _direct_check() -> bool:
    """``nic_convt_direct`` (float64) on 22-bit activations, which the int16 direct conv must refuse; then the int16
    direct conv (``nic_convt_direct_i16``): 15-bit inputs (a flush every two dots) and 10-bit ones (64 dots per
    flush), an even and an odd channel count, rows with and without the 8-pixel SIMD body, and output channel groups
    of 3, 2, and 4 + 1."""
    rng = _native.CheckInts()
    for cout, k, s, h, w, pad in ((3, 5, 2, 7, 9, 2), (4, 13, 8, 3, 5, 3), (2, 18, 16, 2, 3, 1), (5, 3, 1, 4, 6, 1)):
        a = rng.integers(-(1 << 22), 1 << 22, (3, h, w)).astype(np.float64)
        wt = rng.integers(-(1 << 14), 1 << 14, (3, cout, k, k)).astype(np.float64)
        if not np.array_equal(_native.convt_direct(a, wt, s, pad), _numpy_convt(a, wt, weight_matrix(wt), s, pad)):
            return False
        if _direct_i16(a, wt, s, pad) is not None:  # 22-bit activations: beyond int16
            return False
    for cin, abits, cout, k, s, h, w, pad in ((6, 15, 3, 5, 2, 5, 21, 2), (5, 10, 2, 5, 2, 3, 11, 2),
                                              (3, 12, 5, 5, 2, 4, 13, 2)):
        a = rng.integers(-(1 << abits) + 1, 1 << abits, (cin, h, w)).astype(np.float64)
        wt = rng.integers(-(1 << 14), 1 << 14, (cin, cout, k, k)).astype(np.float64)
        got = _direct_i16(a, wt, s, pad)
        if got is None or not np.array_equal(got, _numpy_convt(a, wt, weight_matrix(wt), s, pad)):
            return False
    _pairs_cache.clear()
    return True


def _fused_check() -> bool:
    """The fused int16 product (``nic_convt_i16``, through ``_int16_parts``): 22-bit activations split in two int16
    passes, one pass of 13-bit ones that flushes every block of 8; stride 1 also through the gather
    (``_gather_i16``)."""
    rng = _native.CheckInts()
    for cout, k, s, h, w, pad in ((3, 5, 2, 7, 9, 2), (4, 13, 8, 3, 5, 3), (2, 18, 16, 2, 3, 1), (5, 3, 1, 4, 6, 1)):
        a = rng.integers(-(1 << 22), 1 << 22, (3, h, w)).astype(np.float64)
        wt = rng.integers(-(1 << 14), 1 << 14, (3, cout, k, k)).astype(np.float64)
        wm = weight_matrix(wt)
        got = _fused_convt(a, wt, wm, s, pad)
        if got is None or not np.array_equal(got, _numpy_convt(a, wt, wm, s, pad)):
            return False
    for cout, k, s, h, w, pad in ((4, 13, 8, 3, 5, 3), (5, 3, 1, 4, 6, 1)):
        a = rng.integers(-(1 << 13), 1 << 13, (21, h, w)).astype(np.float64)
        wt = rng.integers(-(1 << 14) + 1, 1 << 14, (21, cout, k, k)).astype(np.float64)
        wm = weight_matrix(wt)
        want = _numpy_convt(a, wt, wm, s, pad)
        got = [_fused_convt(a, wt, wm, s, pad)] + ([_gather_i16(a, wt, pad)] if s == 1 else [])
        if any(g is None or not np.array_equal(g, want) for g in got):
            return False
    _w16_cache.clear()
    _gather16_cache.clear()
    return True


def phase_check_cases() -> list[tuple[np.ndarray, np.ndarray, int, int]]:
    """The inputs (a, w, stride, pad) of ``_phase_check``: the hyper-decoder's 5x5/s2 (a width that is no multiple of
    4, 13-bit inputs: a flush every tap of six blocks) and other strides, crops and channel counts (Cin padded to 8, one
    tap per axis at s = k); every input and weight at its largest, of either sign: a flush every two blocks, after
    which each int32 lane holds +-2,147,287,044 (196,603 from int32's end), where a sum of four lanes before float64
    would have wrapped."""
    rng = _native.CheckInts()
    cases = []
    for cin, cout, k, s, h, w, pad, abits in ((48, 6, 5, 2, 5, 7, 2, 13), (13, 4, 5, 2, 3, 4, 1, 8),
                                              (21, 2, 13, 8, 3, 5, 3, 12), (5, 4, 4, 4, 2, 3, 0, 15)):
        a = rng.integers(-(1 << abits) + 1, 1 << abits, (cin, h, w)).astype(np.float64)
        wt = rng.integers(-(1 << 14) + 1, 1 << 14, (cin, cout, k, k)).astype(np.float64)
        if abits == 15:
            wt = np.clip(wt, -7, 7)  # 15-bit inputs: within int32 only for small weights
        cases.append((a, wt, s, pad))
    wt = np.full((48, 2, 5, 5), float((1 << 14) - 1))
    cases += [(np.full((48, 3, 5), sign * 32767.0), wt, 2, 2) for sign in (1.0, -1.0)]
    return cases


def _phase_check() -> bool:
    """The phase gather (``nic_convt_phase_i16``) on ``phase_check_cases``: its outputs must hash to
    ``known_answers.PHASE``, the digest of the NumPy transposed conv's (``_numpy_convt``; tests/test_decoder_speedups.py
    computes it again); and its refusal of 22-bit inputs. A known answer rather than the reference itself: NumPy's
    reference conv, whose code a decode never runs, cost the browser's first decode its first run."""
    cases = phase_check_cases()
    outs = [_phase_i16(a, wt, s, pad) for a, wt, s, pad in cases]
    if any(o is None for o in outs) or known_answers.digest(outs) != known_answers.PHASE:
        return False
    a, wt = cases[0][:2]  # the hyper-decoder's 5x5/s2 layers
    _native.tier_up(lambda: _phase_i16(a, wt, 2, 2))
    rng = _native.CheckInts(1)
    a = rng.integers(-(1 << 22), 1 << 22, (3, 7, 9)).astype(np.float64)  # 22-bit activations: beyond int16
    if _phase_i16(a, rng.integers(-(1 << 14), 1 << 14, (3, 4, 5, 5)).astype(np.float64), 2, 2) is not None:
        return False
    _phase16_cache.clear()
    return True


def winograd_check_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """The inputs (a, w) of ``_winograd_check`` (k13/s8, pad 3): at Winograd's bounds (inputs within 2^13, transforms
    of 4 weights up to 2^13: chunk 1), odd and even sizes."""
    rng = _native.CheckInts()
    return [(rng.integers(-winograd.MAX_INPUT, winograd.MAX_INPUT + 1, (cin, h, w)).astype(np.float64),
             rng.integers(-(1 << 11) + 1, 1 << 11, (cin, cout, 13, 13)).astype(np.float64))
            for cin, cout, h, w in ((21, 4, 3, 5), (16, 2, 4, 6))]


def _winograd_check() -> bool:
    """Winograd (``winograd``: ``nic_wino_data``, ``nic_wino_convt``) on ``winograd_check_cases``: its outputs must
    hash to ``known_answers.WINOGRAD``, the digest of ``_numpy_convt``'s (tests/test_decoder_speedups.py); its int32
    outputs (``nic_wino_convt32``) must be the same integers."""
    cases = winograd_check_cases()
    outs = [winograd.convt(a, wt, 8, 3) for a, wt in cases]
    if any(o is None for o in outs) or known_answers.digest(outs) != known_answers.WINOGRAD:
        return False
    # nic_wino_convt32 (the depth-2 bands' int32 sums): the same integers, and its refusal of a sum at 2^30
    for (a, wt), want in zip(cases, outs, strict=True):
        th, tw = -(-a.shape[1] // 2), -(-a.shape[2] // 2)
        got = np.empty((wt.shape[1], 16 * th, 16 * tw), np.int32)
        if winograd.convt_band(winograd.plan_for(wt, 8, 3), a, 0, th, 8, got) \
                or not np.array_equal(got[:, : want.shape[1], : want.shape[2]], want):
            return False
    big = np.full((17, 2, 2), float(winograd.MAX_INPUT)), np.full((17, 2, 13, 13), float((1 << 11) - 1))
    if winograd.convt_band(winograd.plan_for(big[1], 8, 3), big[0], 0, 1, 8, np.empty((2, 16, 16), np.int32)) != 2:
        return False
    # The decode's k13/s8 layer transforms int16 inputs (nic_wino_data16) for nic_wino_convt32, in bands: run both on
    # 64 tiles (the checks' layers have 6-12, and each call costs Python more than the kernels).
    wt = cases[-1][1]
    plan = winograd.plan_for(wt, 8, 3)
    a16 = _native.CheckInts(1).integers(-winograd.MAX_INPUT, winograd.MAX_INPUT + 1, (wt.shape[0], 16, 16))
    a16 = a16.astype(np.int16)
    out = np.empty((wt.shape[1], 16 * 8, 16 * 8), np.int32)
    _native.tier_up(lambda: winograd.convt_band(plan, a16, 0, 8, 8, out))
    winograd._plan_cache.clear()
    return True


def kernels_on() -> bool:
    """Whether the wasm conv kernels may run at all: Pyodide (no BLAS), the module loaded and not disabled, and not
    turned off by ``_kernel = None``. Each path then runs only once its own check passed (``overlap_ok``,
    ``direct_ok``, ``fused_ok``, ``phase_ok``, ``winograd_ok``)."""
    return NO_BLAS and _native.lib() is not None and _kernel is not None


def overlap_ok() -> bool:
    return kernel_checked("overlap_add", _overlap_check)


def direct_ok() -> bool:
    return kernel_checked("direct", _direct_check)


def fused_ok() -> bool:
    return kernel_checked("fused", _fused_check)


def phase_ok() -> bool:
    return kernel_checked("phase", _phase_check)


def winograd_ok() -> bool:
    return kernel_checked("winograd", _winograd_check)


CONV_CHECKS = (overlap_ok, direct_ok, fused_ok, phase_ok, winograd_ok)


_scratch = threading.local()  # per thread: concurrent decodes (the site's encode workers) never share one


SCRATCH_SHAPES = 12  # matrices kept per thread: every layer of both depths (~70 MB for a Kodak image)
SCRATCH_MAX_BYTES = 64 << 20  # larger ones (big images) are allocated per call, never held


def _scratch_matrix(rows: int, cols: int, role: str = "patches") -> np.ndarray | None:
    """A reused (rows, cols) float64 buffer for results consumed before the next call (the patch matrix).

    Fresh arrays of tens of MB come from mmap and page-fault on first touch; reusing them saves about
    10 ms per depth-2 Kodak decode in CPython, for memory held per thread (oldest shape dropped first).
    Buffers a caller needs at the same time take different ``role``s, so they never alias.
    """
    if rows * cols * 8 > SCRATCH_MAX_BYTES:
        return None
    bufs = getattr(_scratch, "patches", None)
    if bufs is None:
        bufs = _scratch.patches = {}
    buf = bufs.get((role, rows, cols))
    if buf is None:
        if len(bufs) >= SCRATCH_SHAPES:
            bufs.pop(next(iter(bufs)))
        buf = bufs[(role, rows, cols)] = np.empty((rows, cols), np.float64)
    return buf


def _scratch_or_new(rows: int, cols: int, role: str) -> np.ndarray:
    """``_scratch_matrix``, or a new array where it holds none (too large)."""
    buf = _scratch_matrix(rows, cols, role)
    return np.empty((rows, cols), np.float64) if buf is None else buf


def _product(wmat: np.ndarray, a2: np.ndarray, scratch: bool = False) -> np.ndarray:
    """(P, Cin) x (Cin, N) -> (P, N), exact on integers in float64 (any summation order).

    ``scratch``: the caller consumes the result before the next scratch product (BLAS path only).
    """
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
    out = _scratch_matrix(wmat.shape[0], a2.shape[1]) if scratch else None
    return wmat @ a2 if out is None else np.matmul(wmat, a2, out=out)


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
    if s == 1 and cin < cout:
        return _conv_gather(a, w, pad)
    kern = kernels_on()
    if kern and cin <= DIRECT_MAX_CIN and cin * (-(-k // s)) ** 2 <= _native.DIRECT_MAX_TERMS and direct_ok():
        out = _direct_i16(a, w, s, pad)  # int16 products where the operands fit
        return _native.convt_direct(a, w, s, pad) if out is None else out
    if wmat is None:
        wmat = weight_matrix(w)
    if kern:
        # Each path where it applies (None: it declines) and once its check passed.
        out = winograd.convt(a, w, s, pad) if winograd.applies(k, s) and winograd_ok() else None
        if out is None and phase_ok():
            out = _phase_i16(a, w, s, pad)
        if out is None and fused_ok():
            out = _fused_convt(a, w, wmat, s, pad)
        if out is not None:
            return out
    if uses_phases(cin, cout, s):
        return _conv_phases(a, w, s, pad)
    # The patch matrix is consumed by the overlap-add below (which returns new memory): scratch is safe.
    patches = _product(wmat, a.reshape(cin, h * wd), scratch=True).reshape(cout, k, k, h, wd)
    if kern and overlap_ok():
        return _native.overlap_add(patches, s, pad)
    return _overlap_add(patches, s, pad)


def _phase_weights(w: np.ndarray) -> tuple[np.ndarray | None, int]:
    """(Cin, Cout, k, k) weights -> (k * k, Cout, Kp) int16 (``_native.convt_phase_i16``'s): tap-major, Cin
    zero-padded to a multiple of 8, each pair of output channels interleaved by 8 input channels; or None beyond int16;
    and max |w|. Cout even."""
    cin, cout, k, _ = w.shape
    wmax = int(np.abs(w).max()) if w.size else 0
    if wmax >= (1 << 15):
        return None, wmax
    kp = -(-cin // 8) * 8
    taps = np.zeros((k * k, cout, kp), np.int16)
    taps[:, :, :cin] = w.transpose(2, 3, 1, 0).reshape(k * k, cout, cin)
    # each pair of output channels interleaved by 8 input channels: (k * k, cout / 2, Kp / 8, 2, 8)
    w16 = np.ascontiguousarray(taps.reshape(k * k, cout // 2, 2, kp // 8, 8).transpose(0, 1, 3, 2, 4))
    return w16.reshape(k * k, cout, kp), wmax


def _phase_i16(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray | None:
    """The transposed conv gathered by output phase in int16 products (``_native.convt_phase_i16``), or None where it
    does not apply (odd Cout, more than 8 taps per axis and phase) or cannot be exact (weights or inputs beyond
    int16, a block beyond int32): the hyper-decoder's 5x5/s2 layers, ~1.5x faster than ``_fused_convt``, whose
    kernel adds every product sum to the output's memory one by one (session 34: 2.10 -> 1.45 ms of a Kodak decode in
    Chromium)."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    if cout % 2 or -(-k // s) > 8 or s < 2:
        return None
    w16, wmax = _derived(_phase16_cache, w, _phase_weights)
    if w16 is None:
        return None
    out = np.empty((cout, s * h, s * wd), np.float64)
    if _native.convt_phase_i16(np.ascontiguousarray(a, np.float64), w16, wmax, s, pad, out):
        return None
    return out


def _direct_i16(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray | None:
    """The direct transposed conv in int16 products (``_native.convt_direct_i16``), or None where it cannot be
    exact (weights or inputs beyond int16, a product beyond int32)."""
    pairs = direct_pairs(w)
    return None if pairs is None else _native.convt_direct_i16(a, *pairs, s, pad)


def direct_pairs(w: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``_native.weight_pairs(w)``, kept per weight array."""
    return _derived(_pairs_cache, w, _native.weight_pairs)  # type: ignore[return-value]


def uses_phases(cin: int, cout: int, stride: int) -> bool:
    """Whether ``conv_transpose`` runs such a layer by output phase (``_conv_phases``, CPython's BLAS path)."""
    return not NO_BLAS and cin <= PHASE_MAX_CIN and not (stride == 1 and cin < cout)


def _conv_gather(a: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Stride-1 transposed conv as a gather: shifted copies of the input (im2col), then one product.

    Same sum as the scatter path, but the temporary is the input side (Cin*k*k rows) instead of the output
    side (Cout*k*k), and there is no overlap-add: the hyper-decoder's last layer (48 -> 384 channels)
    writes 8x less. out[c, y, x] = sum w[ci, c, ky, kx] * a[ci, y + pad - ky, x + pad - kx].
    """
    if kernels_on() and fused_ok():
        out = _gather_i16(a, w, pad)
        if out is not None:
            return out
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    wg = _derived(_gather_cache, w, lambda w: np.ascontiguousarray(w.transpose(1, 0, 2, 3).reshape(cout, -1)))
    e = k - 1  # zero border wide enough for every tap
    ap = np.zeros((cin, h + 2 * e, wd + 2 * e), np.float64)
    ap[:, e : e + h, e : e + wd] = a
    cols = np.empty((cin, k, k, h, wd), np.float64)
    for ky in range(k):
        y0 = pad - ky + e
        for kx in range(k):
            x0 = pad - kx + e
            cols[:, ky, kx] = ap[:, y0 : y0 + h, x0 : x0 + wd]
    return _product(wg, cols.reshape(cin * k * k, h * wd)).reshape(cout, h, wd)


def _phase_groups(w: np.ndarray, s: int, pad: int) -> list[tuple[slice, slice, int, int, np.ndarray]]:
    """The weights of ``_conv_phases``, one matrix per group of output phases that read the same input offsets.

    Output pixel Y = q*s + p (phase p) receives tap ky = t*s + r from input row q + m - t, where
    m, r = divmod(pad + p, s) and t < ceil(k/s); taps past k are zero weights. m grows with p, so the phases
    sharing an m are a contiguous range. Per group (ys, xs, my, mx, matrix): rows (Cout, phase y, phase x),
    columns (t_y, t_x, Cin), the layout of the shifted copies that ``_conv_phases`` stacks.
    """
    cout, k = w.shape[1], w.shape[2]
    taps = -(-k // s)
    m = [(pad + p) // s for p in range(s)]
    ranges = [slice(m.index(v), s - m[::-1].index(v)) for v in sorted(set(m))]
    # (Cout, k+1, k+1, Cin) with a zero last row and column: taps past k index it and read zero weights.
    wz = np.zeros((cout, k + 1, k + 1, w.shape[0]), np.float64)
    wz[:, :k, :k] = w.transpose(1, 2, 3, 0)

    def tap_index(r: slice) -> np.ndarray:
        """(phases, taps) kernel index of tap t for each phase p of ``r``: t*s + (pad + p) % s, or k past k."""
        ky = np.arange(taps)[None, :] * s + (pad + np.arange(r.start, r.stop))[:, None] % s
        return np.minimum(ky, k)

    groups = []
    for ys in ranges:
        for xs in ranges:
            ky, kx = tap_index(ys), tap_index(xs)
            g = wz[:, ky[:, None, :, None], kx[None, :, None, :]]  # (Cout, phases y, phases x, t_y, t_x, Cin)
            groups.append((ys, xs, m[ys.start], m[xs.start], g.reshape(g.shape[0] * g.shape[1] * g.shape[2], -1)))
    return groups


def _conv_phases(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray:
    """Transposed conv with few input channels (the 5x5/s2 layers: 6 to 64) by output phase, CPython's BLAS path.

    The patch matrix of the scatter form has Cout*k*k rows but only Cin terms per product: writing it and
    overlap-adding it is memory traffic for little arithmetic (75 rows of 98 k columns for a Kodak image).
    Gathered by phase, each group of output phases is one product over ceil(k/s)^2 shifted copies of the
    input (54 rows), written straight to the output with no overlap-add; (ceil(k/s)*s/k)^2 more multiply-adds
    (the zero taps), which is why only few-channel layers take this path. Same integer sums: exact.
    The work is done band by band (``phase_bands``); this interleaves the bands into (Cout, s*H, s*W).
    """
    _, h, wd = a.shape
    band, bands = phase_band_rows(h, wd)
    # Consumed before this returns (the interleaving reshape copies): scratch is safe.
    out = _scratch_or_new(bands * w.shape[1] * s * s, band * wd, "phase out")
    out = out.reshape(bands, w.shape[1], s, s, band, wd)
    for _ in phase_bands(a, w, s, pad, out):
        pass
    # (band, Cout, phase y, phase x, row, column) -> (Cout, band, row, phase y, column, phase x): one copy
    full = out.transpose(1, 0, 4, 2, 5, 3).reshape(w.shape[1], s * bands * band, s * wd)
    return full if bands * band == h else full[:, : s * h]


def phase_band_rows(h: int, wd: int) -> tuple[int, int]:
    """(input rows per band, number of bands) of ``phase_bands`` for an (h, wd) input."""
    band = max(1, min(h, -(-PHASE_BAND_COLS // wd)))
    return band, -(-h // band)


def phase_bands(a: np.ndarray, w: np.ndarray, s: int, pad: int,
                out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``_conv_phases`` band by band: yields (i, block), block i of the output in phase-major layout,
    (Cout, phase y, phase x, rows, W): output pixel (s*(i*band + q) + py, s*x + px) is block[:, py, px, q, x].

    Bands of ``phase_band_rows`` input rows keep the shifted copies of one band in the CPU's cache between
    being written and being read by the product, instead of a 42 MB matrix for the output layer of a Kodak
    image going out to memory and back (that layer: 12 -> 8 ms in CPython, session 21); a caller can
    finish each block while it is still in cache too (``synthesis``: the pixels). The last band's rows past
    ``h`` read the zero border. ``out`` (bands, Cout, s, s, band, W) receives the blocks; without it each
    block is a scratch buffer overwritten by the next, so consume it before asking for the next.
    """
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    taps = -(-k // s)
    groups = _derived(_phase_cache, w, lambda w: {})
    key = (s, pad)
    if key not in groups:
        groups[key] = _phase_groups(w, s, pad)
    band, bands = phase_band_rows(h, wd)
    lo, hi = pad // s - (taps - 1), (pad + s - 1) // s  # input offsets read: m - t over all phases and taps
    before, after = max(0, -lo), max(0, hi)
    ap = np.zeros((cin, bands * band + before + after, wd + before + after), np.float64)
    ap[:, before : before + h, before : before + wd] = a
    cols = _scratch_or_new(taps * taps * cin, band * wd, "phase cols")
    stacked = cols.reshape(taps, taps, cin, band, wd)
    block = None if out is not None else _scratch_or_new(cout * s * s, band * wd, "phase block")
    for i in range(bands):
        r0 = before + i * band
        blk = (out[i] if out is not None else block).reshape(cout, s, s, band * wd)
        for ys, xs, my, mx, g in groups[key]:
            for ty in range(taps):
                for tx in range(taps):
                    y0, x0 = r0 + my - ty, before + mx - tx
                    stacked[ty, tx] = ap[:, y0 : y0 + band, x0 : x0 + wd]
            if ys.stop - ys.start == xs.stop - xs.start == s:  # one group holds every phase (the 5x5/s2 layer)
                np.matmul(g, cols, out=blk.reshape(cout * s * s, band * wd))
            else:
                blk[:, ys, xs] = (g @ cols).reshape(cout, ys.stop - ys.start, xs.stop - xs.start, band * wd)
        yield i, blk.reshape(cout, s, s, band, wd)


def _gather_i16(a: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray | None:
    """``_conv_gather`` in the int16 kernel, the shifted copies written straight into its (N, K) int16 operand
    (taps-major, channels innermost) instead of a float64 (K, N) matrix converted afterwards: the
    hyper-decoder's last layer (where F(2x2, 3x3), ``wino3``, does not apply) builds 1.3 MB instead of 5.3 MB
    plus a transposing copy. None when the activations need more than 15 bits (the general path splits them)."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    w16, wmax = _derived(_gather16_cache, w, lambda w: _to_int16(np.ascontiguousarray(
        w.transpose(1, 2, 3, 0).reshape(cout, -1))))
    amax = int(np.abs(a).max()) if a.size else 0
    chunk = _chunk(wmax, amax)
    if w16 is None or chunk is None:
        return None
    e = k - 1
    ap = np.zeros((h + 2 * e, wd + 2 * e, cin), np.int16)
    ap[e : e + h, e : e + wd] = a.transpose(1, 2, 0)  # exact: integers within +-2^15
    at = np.zeros((h, wd, w16.shape[1]), np.int16)
    cols = at[:, :, : k * k * cin].reshape(h, wd, k, k, cin)  # a view: the last axis split, inner stride 1
    for ky in range(k):
        y0 = pad - ky + e
        for kx in range(k):
            x0 = pad - kx + e
            cols[:, :, ky, kx] = ap[y0 : y0 + h, x0 : x0 + wd]
    out = np.zeros((cout, h * wd), np.float64)
    _native.matmul_i16(w16, at.reshape(h * wd, -1), out, chunk, 1.0)
    return out.reshape(cout, h, wd)


def _overlap_add(patches: np.ndarray, s: int, pad: int) -> np.ndarray:
    """(Cout, k, k, h, w) patches painted on an s-grid, summed, cropped from ``pad``: (Cout, s*h, s*w)."""
    cout, k, _, h, wd = patches.shape
    tiles = -(-k // s)
    # Overlap-add phase by phase: output pixel (Y*s + py, X*s + px) lives at canvas[:, py, px, Y, X], and
    # kernel tap (ky, kx) adds a whole contiguous (h, wd) plane at phase (ky % s, kx % s), offset
    # (ky // s, kx // s). Plane adds with unit inner stride, then one interleaving copy; adding
    # s x s tiles straight into an interleaved canvas instead strides every element (the 768x512
    # last layer took 235 ms that way in Pyodide).
    # Taps with the same offset (ky // s, kx // s) cover distinct phases, so each offset is one NumPy add of
    # a block of phases: tiles^2 calls (4 for k13/s8) instead of k^2 (169).
    # The canvas is scratch (consumed by the interleaving copy below), not a fresh 10 MB array per call: with
    # fresh ones, glibc grew and trimmed its heap around every depth-2 decode (6,400 page faults each).
    # The first offset covers every phase (k >= s in every layer; the crop needs it), so it is assigned
    # rather than added to zeros, and only the strips it leaves (the last row and column of blocks) are cleared.
    if k < s:
        raise NicError(f"model file: transposed conv kernel {k} smaller than its stride {s}")
    shape = (cout, s, s, h + tiles - 1, wd + tiles - 1)
    canvas = _scratch_or_new(cout * s * s, shape[3] * shape[4], "canvas").reshape(shape)
    canvas[:, :, :, :h, :wd] = patches[:, :s, :s]
    canvas[:, :, :, h:] = 0.0
    canvas[:, :, :, :h, wd:] = 0.0
    for ty in range(tiles):
        ny = min(s, k - ty * s)
        for tx in range(tiles):
            if ty == tx == 0:
                continue
            nx = min(s, k - tx * s)
            canvas[:, :ny, :nx, ty : ty + h, tx : tx + wd] += patches[:, ty * s : ty * s + ny, tx * s : tx * s + nx]
    full = canvas.transpose(0, 3, 1, 4, 2).reshape(cout, (h + tiles - 1) * s, (wd + tiles - 1) * s)
    return full[:, pad : pad + s * h, pad : pad + s * wd]


def requantize(acc: np.ndarray, shift: int, limit: float, out: np.ndarray | None = None,
               offset: np.ndarray | None = None, lower: float | None = None) -> np.ndarray:
    """Round a fixed-point accumulator down by ``shift`` bits (half up) and clip to +-limit.

    ``out`` (which may be ``acc`` itself) receives the result: one buffer instead of a fresh temporary per
    operation, which for the full-resolution planes of a decode is memory to page in each time.
    ``offset``: integers per channel (axis 0) added first, a bias: one addition with the rounding's half
    (integers below 2^53, exact in any order), a pass fewer than adding it before. ``lower``: the clip's lower
    end instead of -limit (0 for a ReLU, a pass fewer than clipping twice).
    """
    add = float(1 << (shift - 1))
    if offset is not None:
        add = (offset + add).reshape(-1, *(1,) * (acc.ndim - 1))
    out = np.add(acc, add, out=out)
    out *= 1.0 / (1 << shift)
    np.floor(out, out=out)
    # minimum + maximum rather than np.clip: the same values, 0.67x the time on float64 (NumPy 2.0's clip
    # checks for NaN element by element; ~10 calls on full planes per decode)
    np.minimum(out, limit, out=out)
    return np.maximum(out, -limit if lower is None else lower, out=out)


def requantize_channels(acc: np.ndarray, shift: int, limit: float, mul: np.ndarray | None = None,
                        bias: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """``requantize(acc * mul_c + bias_c)`` per channel (axis 0), then ReLU if asked: one pass of the wasm
    kernel in Pyodide instead of five NumPy ones (same integers, same result), the NumPy code elsewhere."""
    if _requantize_kernel_ok():
        return _native.requantize(acc, mul, bias, shift, 0.0 if relu else -limit, limit)
    return _requantize_numpy(acc, shift, limit, mul, bias, relu)


def _requantize_numpy(acc: np.ndarray, shift: int, limit: float, mul: np.ndarray | None, bias: np.ndarray | None,
                      relu: bool) -> np.ndarray:
    """The reference arithmetic of ``requantize_channels`` (the wasm kernel computes the same integers)."""
    # The bias goes in with the rounding's half (``requantize``'s offset) and the ReLU is the clip's lower end:
    # the same integers as adding, rounding, clipping and then taking the maximum with 0, in two passes fewer.
    out = None if mul is None else acc * mul.reshape(-1, *(1,) * (acc.ndim - 1))
    return requantize(acc if out is None else out, shift, limit, out=out, offset=bias, lower=0.0 if relu else None)


_checked: dict[str, bool] = {}  # kernel name -> passed its self-check (run once)


def kernel_checked(name: str, check: Callable[[], bool]) -> bool:
    """Whether the optional wasm kernel ``name`` may be used: the kernels are on (``kernels_on``: Pyodide, not
    disabled) and ``check()``, which compares it with its NumPy reference on random integers, passed the one time it
    ran (before the kernel's first use: a decode pays for the checks of the kernels it runs)."""
    if not kernels_on():
        return False
    if name not in _checked:
        with trace.span("check:" + name):
            _checked[name] = bool(check())
    return _checked[name]


def _to_i16t_kernel_ok() -> bool:
    return kernel_checked("to_i16t", _to_i16t_check)


def _to_i16t_check() -> bool:
    """``nic_to_i16t`` against NumPy's transposed int16 copy on integers up to the int16 bound, and its refusals: a
    value one past the bound, and NaN."""
    a = _native.CheckInts().integers(-(1 << 15) + 1, 1 << 15, (13, 37)).astype(np.float64)
    a[3, 5], a[7, 2] = (1 << 15) - 1, -(1 << 15) + 1
    at = np.full((37, 16), 99, np.int16)
    want = np.zeros((37, 16), np.int16)
    want[:, :13] = a.astype(np.int16).T
    if _native.to_i16t(a, at, (1 << 15) - 1) != int(np.abs(a).max()) or not np.array_equal(at, want):
        return False
    for bad in (float(1 << 15), -float(1 << 15), np.nan):  # in the 4 x 2 blocks and in the remainder row / column
        for where in ((1, 4), (12, 36), (5, 36)):
            b = a.copy()
            b[where] = bad
            if _native.to_i16t(b, at, (1 << 15) - 1) != -1:
                return False
    return True


def _requantize_kernel_ok() -> bool:
    return kernel_checked("requantize", _requantize_check)


def _requantize_check() -> bool:
    rng = _native.CheckInts()
    acc = rng.integers(-(1 << 40), 1 << 40, (5, 3, 7)).astype(np.float64)
    mul = rng.integers(1, 1 << 16, 5).astype(np.float64)
    bias = rng.integers(-(1 << 30), 1 << 30, 5).astype(np.float64)
    for m, b, relu, a in ((None, bias, True, acc), (None, bias, False, acc), (mul, None, False, acc / (1 << 20))):
        a = np.floor(a)
        if not np.array_equal(_native.requantize(a, m, b, 19, 0.0 if relu else -(1 << 22), 1 << 22),
                              _requantize_numpy(a, 19, 1 << 22, m, b, relu)):
            return False
    return True
