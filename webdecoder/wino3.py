"""The hyper-decoder's last layer in 2.25x fewer multiply-adds: Winograd's F(2x2, 3x3), exact on integers (Pyodide).

That layer (3x3, stride 1, cropped by 1) is the correlation ``out[y][x] = sum_ij g[i][j] a[y - 1 + i][x - 1 + j]``
with the flipped kernel ``g[i][j] = w[2 - i][2 - j]``, and its 48 -> 384 channels are a third of a Kodak decode's
multiply-adds. Per axis, the two outputs of a tile read d0..d3 = a[2t - 1 .. 2t + 2], and F(2, 3) gives them from
four products instead of six:

    G' g = (2 g0, g0 + g1 + g2, g0 - g1 + g2, 2 g2),   B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
    m = (G' g) * (B^T d),   2 out[2t] = m0 + m1 + m2,   2 out[2t + 1] = m1 - m2 - m3

(the textbook form with its halves moved into the output). In two dimensions: 16 products for 36, and the sums
are 4 times the direct ones. Every term is an integer, so that is exact, and dividing by 4 is folded into the
requantization (shift + 2, bias * 4): the scales and means are those of ``conv.conv_transpose`` to the bit.

The transformed inputs add 4 values: the path runs where the input is below 2^13 (the hyper-decoder's last input
stays below 2^12 on Kodak at every quality). A transformed weight adds up to 9 weights with factors up to 4:
those of the scales fit int16, a few of the means' (0.004 %) do not; each such weight row is split into a
high part (times 256, a term of its own, skipped for the row pairs where it is zero) and a low part.
The WebAssembly kernels ``_native.wino3_data`` and ``_native.wino3_conv`` do the work; ``hyper._wino3_check``
compares them with the layer's NumPy reference on load, and ``tests/test_decoder_speedups.py`` replays a plan in
NumPy int64 against the scatter-add layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from webdecoder import _native, conv, known_answers

if TYPE_CHECKING:
    from webdecoder.parallel import Job

MAX_INPUT = (1 << 13) - 1  # |input| bound: a 2-D transform adds 4 inputs, within int16
HIGH_SCALE = 256  # a weight beyond int16 is HIGH_SCALE * high + low
G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], np.int64)  # G' (the weight transform, doubled)


class Plan(NamedTuple):
    upk: np.ndarray  # (terms, rows, Kp / 2) int32: term t's transformed weights as pairs w[2q] | w[2q + 1] << 16
    combo: np.ndarray  # (terms,) int32: the transform (a * 4 + b) term t multiplies
    scale: np.ndarray  # (terms,) float64: 1, or HIGH_SCALE for a high part
    skip: np.ndarray  # (terms, rows // W3_ROWS) uint8: 1 where a block of rows is all zero in that term
    wmax: np.ndarray  # (terms,) int64: the largest |weight| of term t (for the int32 flush interval)


def transformed_weights(w: np.ndarray, rows: slice) -> np.ndarray:
    """(16, rows, Cin) G' g G'^T of the flipped kernels of output channels ``rows`` of w (Cin, Cout, 3, 3), integers
    in float64 (exact: below 2^20)."""
    g = np.ascontiguousarray(w[:, rows, ::-1, ::-1], np.float64)  # (Cin, rows, i, j): integers, exact in float64
    cin, n = g.shape[:2]
    # Two 2-D products over every kernel at once (not einsum's int64 loops, nor a matmul per kernel): the browser's
    # first decode builds this.
    gt = G2.T.astype(np.float64)
    t = (g.reshape(-1, 3) @ gt).reshape(cin, n, 3, 4)  # along j: (Cin, rows, i, b)
    u = (np.ascontiguousarray(t.transpose(0, 1, 3, 2)).reshape(-1, 3) @ gt).reshape(cin, n, 4, 4)  # (.., b, a)
    return np.ascontiguousarray(u.transpose(3, 2, 1, 0)).reshape(16, n, cin)


def _make_plan(w: np.ndarray, rows: slice) -> Plan | None:
    if w.shape[2:] != (3, 3) or (rows.stop - rows.start) % _native.W3_ROWS:
        return None
    if w.dtype == np.float64 and w.flags.c_contiguous and conv.kernel_checked("wino3_plan", _plan_check):
        got = _native.wino3_plan(w, rows.start, rows.stop - rows.start)  # Pyodide: one pass in C
        if got is not None:
            return Plan(*got)
    return _plan_numpy(w, rows)


def _plan_numpy(w: np.ndarray, rows: slice) -> Plan | None:
    """The plan in NumPy: the reference of ``_native.wino3_plan`` (checked against it on load: ``_plan_check``)."""
    u = transformed_weights(w, rows)  # (16, rows, cin)
    nrows, cin = u.shape[1], u.shape[2]
    if nrows % _native.W3_ROWS:
        return None
    # Whole arrays at once and in float64 (integers, exact), not a loop over the 16 transforms in int64: every NumPy
    # call, and every integer loop NumPy has not run yet, costs the browser's first decode (80 ms in a first version).
    limit = (1 << 15) - 1
    over = np.abs(u).max(axis=2) > limit  # (16, rows): rows with a weight beyond int16
    high = np.where(over[:, :, None], np.floor((u + HIGH_SCALE // 2) * (1.0 / HIGH_SCALE)), 0.0)
    split = np.flatnonzero(over.any(axis=1))  # the transforms that need a high term
    wt = np.concatenate([u - HIGH_SCALE * high, high[split]])  # (terms, rows, cin): 16 low terms, then the highs
    if np.abs(wt).max() > limit:
        return None
    nt = wt.shape[0]
    kp = -(-cin // 8) * 8
    wz = np.zeros((nt, nrows, kp))
    wz[:, :, :cin] = wt
    # w[2q] | w[2q + 1] << 16 as an int32 bit pattern: high half * 2^16 + low half mod 2^16, within int32
    upk = (wz[:, :, 1::2] * 65536.0 + np.mod(wz[:, :, 0::2], 65536.0)).astype(np.int32)
    r = _native.W3_ROWS
    skip = ~np.any(wt.reshape(nt, nrows // r, r * cin) != 0, axis=2)
    skip[:16] = False  # only high parts are skipped: the others are rarely all zero
    combo = np.concatenate([np.arange(16), split]).astype(np.int32)
    scale = np.concatenate([np.ones(16), np.full(split.size, float(HIGH_SCALE))])
    return Plan(upk, combo, scale, np.ascontiguousarray(skip, np.uint8), np.abs(wt).max(axis=(1, 2)).astype(np.int64))


def plan_check_cases() -> Iterator[tuple[np.ndarray, slice]]:
    """The weights (Cin, Cout, 3, 3) and row ranges of ``_plan_check``: odd and even channel counts, weights whose
    transforms stay within int16 and ones that need high parts (some all zero in a block of rows), a range inside."""
    rng = _native.CheckInts()
    r = _native.W3_ROWS
    for cin, cout, rows, wbits in ((11, 12 * r, slice(2 * r, 10 * r), 14), (8, 4 * r, slice(0, 4 * r), 10),
                                   (5, 8 * r, slice(0, 8 * r), 13)):
        yield rng.integers(-(1 << wbits) + 1, 1 << wbits, (cin, cout, 3, 3)).astype(np.float64), rows


def _plan_check() -> bool:
    """``_native.wino3_plan`` on ``plan_check_cases``: its plans (high parts in some) must hash to
    ``known_answers.WINO3_PLAN``, the digest of the NumPy reference's (``_plan_numpy``: tests/test_decoder_speedups.py
    computes it again); and its refusals (a weight no integer, one at 2^20, a high part beyond int16)."""
    plans = [_native.wino3_plan(w, rows.start, rows.stop - rows.start) for w, rows in plan_check_cases()]
    if any(p is None for p in plans) or len(plans[-1][1]) == 16:  # the last case has high parts
        return False
    if known_answers.digest(a for p in plans for a in p) != known_answers.WINO3_PLAN:
        return False
    r = _native.W3_ROWS
    for bad in (0.5, float(1 << 20)):
        w = np.zeros((3, r, 3, 3))
        w[1, 1, 1, 1] = bad
        if _native.wino3_plan(w, 0, r) is not None:
            return False
    w = np.zeros((3, r, 3, 3))
    w[2, 1] = (1 << 20) - 1  # transform (1, 1) sums all nine: a high part beyond int16
    return _native.wino3_plan(w, 0, r) is None


_plan_cache: dict[int, tuple] = {}  # id(w) -> (w, {(start, stop): Plan or None})


def plan(w: np.ndarray, rows: slice) -> Plan | None:
    """The plan for output channels ``rows`` (a slice with a step of 1) of the 3x3 weights w (Cin, Cout, 3, 3), kept
    per weight array; None where it does not apply (kernel size, a row count not a multiple of W3_ROWS)."""
    plans = conv._derived(_plan_cache, w, lambda w: {})
    key = rows.indices(w.shape[1])[:2]
    if key not in plans:
        plans[key] = _make_plan(w, slice(*key))
    return plans[key]


class Prepared(NamedTuple):
    data: np.ndarray  # (16, groups, Kp / 2, 4, 2) int16 transformed inputs (``_native.wino3_data``)
    maxabs: np.ndarray  # (16,) int32 the largest |value| of each transform
    shape: tuple[int, int]  # (h, w) of the input and of the output


def prepare(a: np.ndarray, kp: int) -> Prepared | None:
    """The transformed inputs of a (Cin, h, w) float64 integer input, or None where some |a| exceeds MAX_INPUT."""
    got = _native.wino3_data(a, kp, MAX_INPUT)
    return None if got is None else Prepared(*got, a.shape[1:])


def segments(p: Plan, prep: Prepared) -> np.ndarray | None:
    """Each term's int32 flush interval in channel pairs: a lane adds two products of at most wmax * maxabs per pair,
    and its sum must stay within int32. None where not even one pair fits (the caller takes the direct path)."""
    bound = 2 * p.wmax * prep.maxabs[p.combo].astype(np.int64)
    if bound.max() > conv.I16_SUM_LIMIT:
        return None
    pairs = p.upk.shape[2]
    return np.minimum(pairs, conv.I16_SUM_LIMIT // np.maximum(bound, 1)).astype(np.int32)


def conv3(p: Plan, prep: Prepared, seg: np.ndarray, bias4: np.ndarray, shift: int, limit: float,
          out: np.ndarray, run: Job | None = None, lut: tuple[np.ndarray, int] | None = None,
          rows: tuple[int, int] | None = None) -> np.ndarray:
    """out (rows, h, w) = ``conv.requantize_channels`` of the layer's output channels in ``p`` (bias, shift, clip to
    +-limit, no ReLU), through the transforms. ``bias4``: 4 times the bias (the sums are 4 times the layer's), float64,
    kept by the caller (a constant of its jobs). ``run``: a ``parallel.Job`` to record the call in (the caller declares
    ``prep.data`` and ``out``; the plan's arrays are declared here). ``lut`` (table, lo), with an int32 ``out``: each
    value's ``_native.scale_index`` instead, looked up as it is stored. ``rows`` (r0, r1): only those of the plan's
    rows (multiples of ``_native.W3_ROWS``; ``bias4`` is still the whole plan's), into out (r1 - r0, h, w)."""
    if run is not None:
        for arr in (p.upk, p.combo, p.scale, p.skip, bias4) + ((lut[0],) if lut is not None else ()):
            run.buf(arr, "const")
        run.buf(seg, "in")
    _native.wino3_conv(p.upk, p.combo, p.scale, seg, p.skip, prep.data, prep.shape, bias4, shift + 2, -limit, limit,
                       out, run=run, lut=lut, row_range=rows)
    return out
