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
WebAssembly kernels (``_native.wino_data``, ``_native.wino_convt``) make the transformed inputs and add
each product to the one to four output pixels it feeds; ``conv._conv_kernels_pass`` checks them against the
NumPy reference on load.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from webdecoder import _native, conv

MAX_INPUT = (1 << 13) - 1  # |input| bound: a 2-D transform adds at most 4 inputs, within int16
MAX_MAC_RATIO = 0.75  # used only where it saves at least a quarter of the multiply-adds (k18/s16 would save 11 %)


class Plan(NamedTuple):
    desc: np.ndarray  # (nd, 2) int32 (kind, j) per axis data vector
    border: int  # input rows / columns read outside the image (zeros)
    w16: np.ndarray  # (rows, Kp) int16 transformed weights of every group, group after group
    targets: np.ndarray  # (rows, 4, 3) int32: (channel, dy, dx) of the output pixels a row's product feeds
    gstart: np.ndarray  # (groups + 1,) int32: group g is rows gstart[g] .. gstart[g + 1] - 1
    combo: np.ndarray  # (groups,) int32: the 2-D data transform (iy * nd + ix) that group g multiplies
    count: np.ndarray  # (groups,) int32: pixels each product of group g feeds (1, 2 or 4)
    wmax: list[int]  # per group, the largest |weight| (for the int32 flush interval)


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


def _make_plan(w: np.ndarray, s: int, pad: int) -> Plan | None:
    cin, cout, k = w.shape[0], w.shape[1], w.shape[2]
    if not (s < k <= 2 * s) or w.shape[3] != k:
        return None
    terms = _axis_terms(k, s, pad)
    desc = sorted({t[1] for t in terms})
    border = max(max(-j for _, j in desc), max(j + kind for kind, j in desc), 0)
    direct = 2 * k  # products per axis for a tile's two outputs of every phase (k taps over s phases, twice)
    if (len(terms) / direct) ** 2 > MAX_MAC_RATIO:
        return None
    kp = -(-cin // 8) * 8
    rows, targets, gstart, combo, count, wmax = [], [], [0], [], [], []
    for iy, dy in enumerate(desc):
        for ix, dx in enumerate(desc):
            # A group per (data transform, pixels fed), so the kernel's loop over it is uniform.
            group: dict[int, list] = {}
            for py, _, wy, oy in (t for t in terms if t[1] == dy):
                for px, _, wx, ox in (t for t in terms if t[1] == dx):
                    wc = sum(a * b * w[:, :, ky, kx] for a, ky in wy for b, kx in wx)  # (cin, cout)
                    where = [(o1 * s + py, o2 * s + px) for o1 in oy for o2 in ox]
                    for c in range(cout):  # channel-major: consecutive products land in one plane
                        group.setdefault(len(where), []).append((c, where, wc[:, c]))
            for n, members in sorted(group.items()):
                members.sort(key=lambda m: (m[0], m[1]))
                gw = np.array([m[2] for m in members])
                wmax.append(int(np.abs(gw).max()))
                if wmax[-1] >= 1 << 15:
                    return None
                rows.append(gw)
                targets += [[(c, *yx) for yx in where] + [(c, 0, 0)] * (4 - n) for c, where, _ in members]
                gstart.append(gstart[-1] + len(members))
                combo.append(iy * len(desc) + ix)
                count.append(n)
    w16 = np.zeros((gstart[-1], kp), np.int16)
    w16[:, :cin] = np.concatenate(rows)
    return Plan(np.array(desc, np.int32), border, w16, np.array(targets, np.int32), np.array(gstart, np.int32),
                np.array(combo, np.int32), np.array(count, np.int32), wmax)


_plan_cache: dict[int, tuple] = {}  # id(w) -> (w, {(stride, pad): Plan or None})
_offset_cache: dict[tuple, tuple[Plan, np.ndarray, np.ndarray]] = {}


def _offsets(plan: Plan, th: int, tw: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into the (Cout, 2s th, 2s tw) canvas: per row its four targets', per tile its origin's.
    Kept for the last few (plan, shape) pairs: a page decodes many images of one size."""
    key = (id(plan), th, tw, s)
    hit = _offset_cache.get(key)
    if hit is None or hit[0] is not plan:
        hh, ww = 2 * s * th, 2 * s * tw
        c, dy, dx = plan.targets[..., 0], plan.targets[..., 1], plan.targets[..., 2]
        off = np.ascontiguousarray((c * hh + dy) * ww + dx, np.int32)
        ty, tx = np.meshgrid(np.arange(th), np.arange(tw), indexing="ij")
        pix = np.ascontiguousarray((ty.ravel() * 2 * s * ww + tx.ravel() * 2 * s), np.int32)
        if len(_offset_cache) >= conv.INDEX_ENTRIES:
            _offset_cache.pop(next(iter(_offset_cache)))
        hit = _offset_cache[key] = (plan, off, pix)
    return hit[1], hit[2]


def convt(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray | None:
    """``conv.conv_transpose(a, w, s, pad)`` through the Winograd kernels, or None where it does not apply
    (shape, input range, int32 bounds): the caller then takes the direct path. Same integers, same result."""
    plans = conv._derived(_plan_cache, w, lambda w: {})
    if (s, pad) not in plans:
        plans[(s, pad)] = _make_plan(w, s, pad)
    plan = plans[(s, pad)]
    transformed = None if plan is None else _native.wino_data(a, plan.w16.shape[1], plan.desc, plan.border,
                                                                MAX_INPUT)
    if transformed is None:  # no plan, or an input beyond MAX_INPUT
        return None
    data, maxabs = transformed
    cin, h, wd = a.shape
    chunks = [conv._chunk(wmax, int(maxabs[c])) for wmax, c in zip(plan.wmax, plan.combo, strict=True)]
    if any(c is None for c in chunks):
        return None
    th, tw = -(-h // 2), -(-wd // 2)
    off, pix = _offsets(plan, th, tw, s)
    # Whole tiles: every product lands inside, so the kernel checks no bounds; odd sizes are cropped after.
    out = np.zeros((w.shape[1], 2 * s * th, 2 * s * tw), np.float64)
    band = max(4, tw // 4 * 4)  # about a row of tiles
    _native.wino_convt(plan.w16, off, plan.gstart, plan.combo, np.array(chunks, np.int32), plan.count, data, pix,
                       out, band)
    if out.shape[1:] != (s * h, s * wd):
        out = np.ascontiguousarray(out[:, : s * h, : s * wd])
    return out
