"""The k13/s8 transposed conv in 35 % fewer multiply-adds: Winograd's F(2,2), exact on integers (Pyodide only).

A transposed conv with stride s and kernel k <= 2s gives every output pixel at most two taps per axis. In
one axis, output phase p (output row q*s + p) with m, r = divmod(pad + p, s) sums

    out[q] = d[q + m] * g0 + d[q + m - 1] * g1        (g0 = w[r], g1 = w[r + s]; no g1 when r + s >= k)

and the two outputs q0, q0 + 1 of a tile share one product (Winograd's minimal filtering F(2,2)):

    out[q0]     = (d[q0+m-1] - d[q0+m]) * g1 + d[q0+m] * (g0 + g1)
    out[q0 + 1] = d[q0+m] * (g0 + g1) + (d[q0+m+1] - d[q0+m]) * g0

3 products instead of 4, and in two dimensions 9 instead of 16 (a one-tap phase keeps its 2, 4 in 2-D). For
the k13/s8 layer (5 of 8 phases per axis have two taps) that is 110.25 instead of 169 products per input
position and (Cin, Cout) pair: 0.65x.

Every term is an integer (differences of inputs, sums of weights), so the sums are those of the direct
product, exactly: the pixels do not change. The differences need one bit more than the input, two in 2-D,
so the path runs only where the input is below 2^13 (the synthesis input of current models, at 8 fraction
bits: |x| < 6,000 on Kodak) and every transformed weight fits int16; otherwise ``conv_transpose`` takes the
direct int16 kernel. Per axis, the data vectors are d[q0 + j] ("value", kind 0) and d[q0 + j + 1] - d[q0 + j]
("difference", kind 1) for a few offsets j (5 for k13/s8); a 2-D transform is one of each per axis, and
the weights that multiply it are the rows (term y, term x, output channel) that read that pair. The
WebAssembly kernels (``_native.wino_data_into``, ``_native.wino_convt``) make the transformed inputs of a band of
tile rows (each band its own, so that two threads can take one each) and add each product to the one to four
output pixels it feeds; ``conv._winograd_check`` checks them against the NumPy reference on load.
"""

from __future__ import annotations

from collections.abc import Iterator
import functools
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from webdecoder import _native, conv, known_answers

if TYPE_CHECKING:
    from webdecoder.parallel import Job

MAX_INPUT = (1 << 13) - 1  # |input| bound: a 2-D transform adds at most 4 inputs, within int16
MAX_MAC_RATIO = 0.75  # used only where it saves at least a quarter of the multiply-adds (k18/s16 would save 11 %)
# The transformed inputs are nd^2 / 4 = 6.25x the int16 input: 3.7 MB for a Kodak image, 78 MB for a 4K one. Larger
# images take the direct kernel rather than grow the tab's memory further.
MAX_DATA_BYTES = 128 << 20


class Plan(NamedTuple):
    desc: np.ndarray  # (nd, 2) int32 (kind, j) per axis data vector
    border: int  # input rows / columns read outside the image (zeros)
    w16: np.ndarray  # (terms * cout, Kp) int16: term t's transformed weights for channel c in row t * cout + c, each
    # pair of rows interleaved by 8 channels as the kernel reads them (``natural_rows`` undoes it)
    tstart: np.ndarray  # (units + 1,) int32: unit u (output phase pair) owns terms tstart[u] .. tstart[u + 1] - 1
    py: np.ndarray  # (units,) int32 its phases
    px: np.ndarray
    combo: np.ndarray  # (terms,) int32: the 2-D data transform (iy * nd + ix) term t multiplies
    mask: np.ndarray  # (terms,) int32: bit oy * 2 + ox set for each tile output (oy, ox) term t feeds
    wmax: np.ndarray  # (terms,) int32: the largest |weight| of term t (for the int32 flush interval)


Term = tuple[int, tuple[int, int], tuple[tuple[int, int], ...], tuple[int, ...]]


def _axis_terms(k: int, s: int, pad: int) -> list[Term]:
    """Per axis: (phase p, data vector (kind, j), weight taps ((coefficient, kernel index), ...), tile outputs)."""
    terms = []
    for p in range(s):
        m, r = divmod(pad + p, s)
        if r + s < k:  # two taps: the three products of F(2,2)
            terms += [(p, (1, m - 1), ((-1, r + s),), (0,)),  # (d[m-1] - d[m]) = -difference(m - 1)
                      (p, (0, m), ((1, r), (1, r + s)), (0, 1)),
                      (p, (1, m), ((1, r),), (1,))]
        else:
            terms += [(p, (0, m), ((1, r),), (0,)), (p, (0, m + 1), ((1, r),), (1,))]
    return terms


class _Layout(NamedTuple):
    """What a plan takes from (k, s, pad) alone: its data vectors and, per term, the weight taps and outputs."""

    desc: list[tuple[int, int]]
    border: int
    taps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # c0, k0, c1, k1 (one per axis term)
    iy: np.ndarray  # (terms,) int32 the axis terms of each 2-D term, grouped by output phase pair
    ix: np.ndarray
    taps32: np.ndarray  # (axis terms, 4) int32: the taps as rows (c0, k0, c1, k1), as ``_native.wino_plan`` reads them
    tstart: np.ndarray
    py: np.ndarray
    px: np.ndarray
    combo: np.ndarray
    mask: np.ndarray


@functools.lru_cache(maxsize=8)
def _layout(k: int, s: int, pad: int) -> _Layout | None:
    terms = _axis_terms(k, s, pad)
    direct = 2 * k  # products per axis for a tile's two outputs of every phase (k taps over s phases, twice)
    if (len(terms) / direct) ** 2 > MAX_MAC_RATIO:
        return None
    desc = sorted({t[1] for t in terms})
    border = max(max(-j for _, j in desc), max(j + kind for kind, j in desc), 0)
    by_phase = [[i for i, t in enumerate(terms) if t[0] == p] for p in range(s)]
    c0, c1 = np.zeros(len(terms), np.int32), np.zeros(len(terms), np.int32)  # int32: the weight sums stay int32
    k0, k1 = np.zeros(len(terms), np.intp), np.zeros(len(terms), np.intp)
    for i, (_, _, taps, _) in enumerate(terms):
        (c0[i], k0[i]), (c1[i], k1[i]) = taps[0], taps[1] if len(taps) > 1 else (0, taps[0][1])
    pairs, tstart, py, px, combo, mask = [], [0], [], [], [], []
    index = {d: i for i, d in enumerate(desc)}  # a dict, not list.index: the browser's first decode builds this plan
    for p_y in range(s):
        for p_x in range(s):
            for iy in by_phase[p_y]:
                for ix in by_phase[p_x]:
                    (_, dy, _, oy), (_, dx, _, ox) = terms[iy], terms[ix]
                    pairs.append((iy, ix))
                    combo.append(index[dy] * len(desc) + index[dx])
                    mask.append(sum(1 << (o1 * 2 + o2) for o1 in oy for o2 in ox))
            tstart.append(len(pairs))
            py.append(p_y)
            px.append(p_x)
    iy, ix = np.array(pairs, np.int32).T.copy()
    taps32 = np.stack([c0, k0, c1, k1], axis=1).astype(np.int32)
    arrays = [np.array(v, np.int32) for v in (tstart, py, px, combo, mask)]
    for a in (c0, k0, c1, k1, iy, ix, taps32, *arrays):
        a.setflags(write=False)  # shared by every plan of this (k, s, pad)
    return _Layout(desc, border, (c0, k0, c1, k1), iy, ix, taps32, *arrays)


def applies(k: int, s: int) -> bool:
    """Whether a k x k, stride s transposed conv has a plan at all (s < k <= 2s: two taps per axis and phase at most;
    ``_layout`` may still decline one that saves too little)."""
    return s < k <= 2 * s


def _make_plan(w: np.ndarray, s: int, pad: int) -> Plan | None:
    cin, cout, k = w.shape[0], w.shape[1], w.shape[2]
    if not applies(k, s) or w.shape[3] != k or cout % 2:
        return None
    lay = _layout(k, s, pad)
    if lay is None:
        return None
    kp = -(-cin // 8) * 8
    made = None
    if w.dtype == np.float64 and w.flags.c_contiguous and conv.kernel_checked("winograd_plan", _plan_check):
        made = _plan_weights_c(w, lay, kp)  # Pyodide: one pass in C
    if made is None:  # the reference, which also decides where the plan does not apply
        made = _plan_weights(w, lay, kp)
    if made is None:
        return None
    w16, wmax = made
    wmax.setflags(write=False)  # read-only like the layout's arrays: ``_native.wino_convt`` checks such a plan once
    return Plan(np.array(lay.desc, np.int32), lay.border, w16, lay.tstart, lay.py, lay.px, lay.combo, lay.mask, wmax)


def _plan_weights(w: np.ndarray, lay: _Layout, kp: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A plan's transformed weights (w16: (terms * Cout, Kp) int16, pairs of rows interleaved by 8 channels) and
    their largest |value| per term (int32), in NumPy: the reference of ``_native.wino_plan``; None where the weights
    are no integers, reach 2^28, or a transformed weight leaves int16."""
    cin, cout = w.shape[0], w.shape[1]
    # Each term's weight is c0 w[k0] + c1 w[k1] per axis (c1 = 0 for one tap), applied along y, then along x. In
    # int32 on a (ky, kx, Cout, Cin) copy, every gather moves whole contiguous (Cout, Cin) blocks: the browser's first
    # decode builds this plan in cold WebAssembly code, where float64 strided passes cost 3-4x as much.
    if np.abs(w).max() >= 1 << 28:
        return None
    by_tap = w.transpose(2, 3, 1, 0)
    wk = np.ascontiguousarray(by_tap, np.int32)
    if not np.array_equal(wk, by_tap):  # integers only: the plan must be exact
        return None
    c0, k0, c1, k1 = lay.taps
    wy = c0[:, None, None, None] * wk[k0] + c1[:, None, None, None] * wk[k1]  # (term y, kx, Cout, Cin)
    w2 = c0[None, :, None, None] * wy[:, k0] + c1[None, :, None, None] * wy[:, k1]  # (term y, term x, Cout, Cin)
    wt = w2[lay.iy, lay.ix]  # (terms, Cout, Cin)
    wmax = np.abs(wt).max(axis=(1, 2))
    if wmax.max() >= 1 << 15:
        return None
    rows = wt.shape[0] * cout
    src = wt.reshape(rows // 2, 2, cin)
    if kp != cin:  # zero channels up to a multiple of 8 (the self-checks' small layers; the models have 192)
        src = np.concatenate([src, np.zeros((rows // 2, 2, kp - cin), src.dtype)], axis=2)
    # Rows 2q and 2q + 1 interleaved by 8 channels (nic_wino_convt's two weight vectors of a step in one 32-byte run),
    # written in the one pass that makes them int16: a second, strided pass cost the first decode 2-9 ms.
    w16 = np.empty((rows // 2, kp // 8, 2, 8), np.int16)
    w16[...] = src.reshape(rows // 2, 2, kp // 8, 8).transpose(0, 2, 1, 3)
    return w16.reshape(rows, kp), wmax.astype(np.int32)


def _plan_weights_c(w: np.ndarray, lay: _Layout, kp: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``_plan_weights`` in one pass of C (``_native.wino_plan``): the same arrays, or None where it declines."""
    return _native.wino_plan(w, lay.taps32, lay.iy, lay.ix, kp)


def plan_check_cases() -> Iterator[tuple[np.ndarray, int]]:
    """The weights (Cin, Cout, 13, 13) and Kp of ``_plan_check``: 20 and 16 input channels (Kp padding, a whole block
    of 8) and 8, weights up to the bound where the transforms stay within int16."""
    rng = _native.CheckInts()
    for cin, cout, wbits in ((20, 4, 12), (16, 2, 12), (8, 6, 5)):
        yield rng.integers(-(1 << wbits) + 1, 1 << wbits, (cin, cout, 13, 13)).astype(np.float64), -(-cin // 8) * 8


def _plan_check() -> bool:
    """``_native.wino_plan`` on ``plan_check_cases``: its plans must hash to ``known_answers.WINOGRAD_PLAN``, the
    digest of the NumPy reference's (``_plan_weights``: tests/test_decoder_speedups.py computes it again, so the two
    cannot drift); and its refusals (a value beyond int16, a weight no integer, one at 2^28). A known answer rather
    than the reference itself: NumPy's plan code, run for the first time, was most of what the C builder saves."""
    lay = _layout(13, 8, 3)
    if lay is None:
        return False
    plans = [_plan_weights_c(w, lay, kp) for w, kp in plan_check_cases()]
    if any(p is None for p in plans) or known_answers.digest(a for p in plans for a in p) \
            != known_answers.WINOGRAD_PLAN:
        return False
    w = np.zeros((8, 2, 13, 13))
    for bad in (float(1 << 15), 0.5, float(1 << 28)):
        w[1, 1, 6, 6] = bad
        if _plan_weights_c(w, lay, 8) is not None:
            return False
    return True


def natural_rows(w16: np.ndarray) -> np.ndarray:
    """A plan's ``w16`` with its row pairs de-interleaved: row t * cout + c holds term t's weights for channel c."""
    kp = w16.shape[1]
    return np.ascontiguousarray(w16.reshape(-1, kp // 8, 2, 8).transpose(0, 2, 1, 3)).reshape(-1, kp)


_plan_cache: dict[int, tuple] = {}  # id(w) -> (w, {(stride, pad): Plan or None})
_pix_cache: dict[tuple, np.ndarray] = {}


def _tile_origins(th: int, tw: int, s: int) -> np.ndarray:
    """Flat index of each tile's first output pixel in a (2s th, 2s tw) plane. Kept for the last few shapes."""
    key = (th, tw, s)
    pix = _pix_cache.get(key)
    if pix is None:
        ty, tx = np.meshgrid(np.arange(th), np.arange(tw), indexing="ij")
        pix = np.ascontiguousarray((ty.ravel() * 2 * s * (2 * s * tw) + tx.ravel() * 2 * s), np.int32)
        pix.setflags(write=False)  # shared, and checked once per shape by ``_native.wino_convt``
        if len(_pix_cache) >= conv.INDEX_ENTRIES:
            _pix_cache.pop(next(iter(_pix_cache)))
        _pix_cache[key] = pix
    return pix


BAND_TILES = 24  # tiles per band: their transformed inputs (25 x 24 x 384 B) stay in cache across all units


def plan_for(w: np.ndarray, s: int, pad: int) -> Plan | None:
    """The plan of ``conv.conv_transpose(., w, s, pad)``, kept per weight array; None where Winograd does not apply."""
    plans = conv._derived(_plan_cache, w, lambda w: {})
    if (s, pad) not in plans:
        plans[(s, pad)] = _make_plan(w, s, pad)
    return plans[(s, pad)]


def fits(plan: Plan, h: int, wd: int) -> bool:
    """Whether the transformed inputs of an (h, wd) input stay within MAX_DATA_BYTES."""
    return len(plan.desc) ** 2 * _native.wino_tiles(-(-h // 2) * -(-wd // 2)) * plan.w16.shape[1] * 2 <= MAX_DATA_BYTES


class Band(NamedTuple):
    """Buffers of ``convt_band`` for up to ``tile_rows`` tile rows (a band takes a prefix of each)."""

    data: np.ndarray  # flat int16: (nd * nd, tiles in groups of four, Kp) inputs (``_native.wino_data_into``)
    maxabs: np.ndarray  # (nd * nd,) int32: the largest |value| of each transform
    scratch: np.ndarray  # flat int16: nic_wino_data's transposed input


def band_buffers(plan: Plan, wd: int, tile_rows: int) -> Band:
    nd2, kp = len(plan.desc) ** 2, plan.w16.shape[1]
    return Band(np.empty(nd2 * _native.wino_tiles(tile_rows * -(-wd // 2)) * kp, np.int16), np.empty(nd2, np.int32),
                np.empty(_native.wino_data_scratch(kp, wd, plan.border, tile_rows), np.int16))


def convt_band(plan: Plan, a: np.ndarray, t0: int, t1: int, s: int, out: np.ndarray, bufs: Band | None = None,
               run: Job | None = None) -> int | None:
    """Tile rows t0 .. t1 - 1 of ``conv.conv_transpose(a, w, s, pad)`` through ``plan`` (``plan_for(w, s, pad)``) into
    ``out`` (Cout, 2s (t1 - t0), 2s tw): output rows 2s t0 .. 2s t1 - 1 of the whole-tile output (rows and columns
    past s*h, s*w included). The band transforms its own inputs (the rows it reads), so bands can run on two threads.
    0, or 1 where the path does not apply (an input beyond MAX_INPUT, a flush bound past int32; ``out`` is then not
    written). ``run``: a ``parallel.Job`` to record the calls in (None returned; ``out`` declared by the caller)."""
    cin, h, wd = a.shape
    tw, n, kp, nd2 = -(-wd // 2), t1 - t0, plan.w16.shape[1], len(plan.desc) ** 2
    bufs = bufs or band_buffers(plan, wd, n)
    tiles = _native.wino_tiles(n * tw)
    data = bufs.data[: nd2 * tiles * kp].reshape(nd2, tiles, kp)
    scratch = bufs.scratch[: _native.wino_data_scratch(kp, wd, plan.border, n)]
    a0, a1 = max(0, 2 * t0 - plan.border), min(h, 2 * t1 + plan.border)  # the input rows the band reads
    src = a[:, a0:a1]  # a view: rows contiguous, channels h * wd apart
    pix = _tile_origins(n, tw, s)
    if run is not None:
        for arr in (plan.desc, plan.w16, plan.tstart, plan.py, plan.px, plan.combo, plan.mask, plan.wmax, pix):
            run.buf(arr, "const")
        for arr in (data, bufs.maxabs, scratch):
            run.buf(arr, "scratch")
        # The helper gets those rows of every channel, one after the other: a contiguous array there.
        src = np.empty((cin, a1 - a0, wd), a.dtype)  # only names the helper's copy
        run.gather_blocks(src, a[:, a0:a1])
    rc = _native.wino_data_into(src, (h, wd), a0, kp, plan.desc, plan.border, MAX_INPUT, t0, t1, data, bufs.maxabs,
                                scratch, run=run)
    if rc:
        return 1
    rc = _native.wino_convt(plan.w16, plan.tstart, plan.py, plan.px, plan.combo, plan.mask, plan.wmax, bufs.maxabs,
                            data, pix, out, s, BAND_TILES, run=run)
    return None if run is not None else rc


def convt(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray | None:
    """``conv.conv_transpose(a, w, s, pad)`` through the Winograd kernels, or None where it does not apply
    (shape, input range, int32 bounds): the caller then takes the direct path. Same integers, same result."""
    plan = plan_for(w, s, pad)
    _, h, wd = a.shape
    if plan is None or not fits(plan, h, wd):
        return None
    th, tw = -(-h // 2), -(-wd // 2)
    out = np.empty((w.shape[1], 2 * s * th, 2 * s * tw), np.float64)  # every pixel is written once
    if convt_band(plan, np.ascontiguousarray(a, np.float64), 0, th, s, out):
        return None
    if out.shape[1:] != (s * h, s * wd):  # whole tiles: odd sizes are cropped
        out = np.ascontiguousarray(out[:, : s * h, : s * wd])
    return out
