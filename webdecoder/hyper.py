"""Integer hyper-decoder: z_hat -> (means in fixed point, scale indices).

This is the bit-exact heart of nic: it decides which probability table every
latent uses, so the encoder runs this very function (``encoder/codec.py``)
rather than its float twin. Activations are integers with ``FRAC_BITS``
fractional bits, weights integers with a per-layer shift; see docs/FORMAT.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from webdecoder import _native, conv, known_answers, parallel, wino3
from webdecoder.conv import conv_transpose, requantize_channels
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS, LOG_SCALE_MAX_FX, LOG_SCALE_MIN_FX, NUM_SCALES, scale_index

ACT_LIMIT = float(1 << 22)  # activations are clipped to +-2^22 (exactness bound)
HYPER_LAYERS = ((5, 2, 2), (5, 2, 2), (3, 1, 1))  # (kernel, stride, crop) of h_s
# The helper's jobs, recorded once per plan, shape and split of the scales (``parallel.Templates``).
HYPER_JOBS = parallel.Templates(32)
SPLIT_MIN_MACS = 20_000_000  # (direct) multiply-adds of the last layer below which it runs on one thread: the helper's
# hand-over costs ~0.3 ms


# Scale channels whose indices are not there yet, and the function that brings them: (the channels before them,
# fn). ``hyper_decode_deferred``'s third value (None: all there).
Pending = tuple[int, Callable[[], None]] | None


def hyper_decode(model: Model, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_hat: (Cz, hz, wz) integers -> means_fx (C, 4hz, 4wz) int64 and scale_idx (int64, or int32 from the wasm
    kernel: the type the rANS loop reads)."""
    means, scale_idx, pending = hyper_decode_deferred(model, z_hat)
    if pending is not None:
        pending[1]()
    return means().astype(np.int64, copy=False), scale_idx


def hyper_decode_deferred(model: Model,
                          z_hat: np.ndarray) -> tuple[Callable[[], np.ndarray], np.ndarray, Pending]:
    """``hyper_decode`` with the means handed over later, as a function that returns them: where a helper thread
    is there (``parallel``), it computes a quarter of the last layer's scales and then its means, while this thread
    computes the other scales and the caller decodes y with them (the means are needed only at the end). The means
    are int64, or int32 from the wasm kernels (half the bytes to hand over from the helper; the same integers).

    The third value: None where every scale index is in ``scale_idx``; else (k, fn): the indices of channels k and
    after (the helper's) are there once fn() has returned, so the caller may decode y's first k channels
    meanwhile (``entropy.decode_values``' pause). fn() comes before the means function."""
    t = last_layer_input(model, z_hat)
    last = len(HYPER_LAYERS) - 1
    w, wmat = model.convt(f"h{last}.w")
    fast = _last_layer_winograd(model, t, w)
    if fast is not None:
        return fast
    _k, stride, crop = HYPER_LAYERS[last]
    t = requantize_channels(conv_transpose(t, w, stride, crop, wmat), model.int(f"h{last}.shift"), ACT_LIMIT,
                            bias=model.f64(f"h{last}.b"), relu=False)
    c = t.shape[0] // 2
    if _scale_kernel_ok():  # one pass instead of NumPy's six over 300 k values (Kodak), no int64 copy
        means = t[:c].astype(np.int64)
        return lambda: means, _native.scale_index(t[c:], SCALE_LUT, LOG_SCALE_MIN_FX), None
    t = t.astype(np.int64)
    return lambda: t[:c], scale_index(t[c:]), None


def last_layer_input(model: Model, z_hat: np.ndarray) -> np.ndarray:
    """The layers before the last: z_hat (Cz, hz, wz) integers -> the last (3x3) layer's input, float64 integers with
    FRAC_BITS fraction bits (ReLU after each layer)."""
    t = z_hat.astype(np.float64) * (1 << FRAC_BITS)
    for i, (_k, stride, crop) in enumerate(HYPER_LAYERS[:-1]):
        w, wmat = model.convt(f"h{i}.w")
        t = requantize_channels(conv_transpose(t, w, stride, crop, wmat), model.int(f"h{i}.shift"), ACT_LIMIT,
                                bias=model.f64(f"h{i}.b"), relu=True)
    return t


def _last_layer_winograd(model: Model, t: np.ndarray,
                         w: np.ndarray) -> tuple[Callable[[], np.ndarray], np.ndarray, Pending] | None:
    """The last layer (3x3, stride 1) through ``wino3``, by output channels. Where a helper thread is there
    (``parallel``), it computes part of the scales and then the means, while this thread computes the other scales
    and its caller decodes y with them (the means are needed only at the end of y; the helper's scales only from
    y's channel m - c on: ``hyper_decode_deferred``'s pending). None without the kernels, or where the transforms do
    not apply (input range, int32 bounds): the caller then runs the layer directly."""
    if not (_wino3_kernel_ok() and _scale_kernel_ok()) or w.shape[1] % 4:
        return None
    c = w.shape[1] // 2
    prep = wino3.prepare(t, 8 * -(-t.shape[0] // 8))
    h = parallel.helper() if t.shape[0] * 9 * 2 * c * t[0].size >= SPLIT_MIN_MACS else None
    # Output channels: the means [0, c), the scales this thread computes [c, m), those the helper computes [m, 2c):
    # two plans (the means, the scales), each thread taking a range of the scales' rows.
    m = 2 * c if h is None else c + _scales_here(c, parallel.share("hyper").value)
    parts = []
    for rows, bias4 in zip((slice(0, c), slice(c, 2 * c)), _bias4(model), strict=True):
        p = wino3.plan(w, rows)
        seg = None if p is None or prep is None else wino3.segments(p, prep)
        if seg is None:
            return None
        parts.append((p, seg, bias4))
    shift, shape, lut = model.int("h2.shift"), (c, *t.shape[1:]), (SCALE_LUT, LOG_SCALE_MIN_FX)
    means = np.empty(shape, np.int32)
    scale_idx = np.empty(shape, np.int32)  # the scales' table indices straight from the kernel's store
    ours, theirs = scale_idx[: m - c], scale_idx[m - c :]

    def run(i: int, out: np.ndarray, job: parallel.Job | None = None) -> None:
        """0: the means; 1: this thread's scales; 2: the helper's."""
        p, seg, bias4 = parts[min(i, 1)]
        rows = None if i == 0 else (0, m - c) if i == 1 else (m - c, c)
        wino3.conv3(p, prep, seg, bias4, shift, ACT_LIMIT, out, job, lut=lut if i else None, rows=rows)

    job = None
    if h is not None:
        # The helper's calls depend on the shapes and the split alone: recorded once, then made from the template
        # (``parallel.Template``) for this decode's transforms, flush intervals and outputs.
        def record(job: parallel.Job) -> None:
            job.buf(prep.data, "in")
            if m < 2 * c:
                run(2, job.buf(theirs, "out"), job)
                job.end_part()
            run(0, job.buf(means, "out"), job)

        job = HYPER_JOBS.job((t.shape, m), (parts[0][0], parts[1][0]),
                             [prep.data, parts[1][1], parts[0][1], theirs, means], record)
        job.learn = (parallel.share("hyper"), (2 * c - m) / c + 1)  # the means cost about what all the scales do
        if not job.start(h):
            job = None
    run(1, ours)
    if job is None:  # no helper after all: the rest here, now
        if m < 2 * c:
            run(2, theirs)
        run(0, means)
        return lambda: means, scale_idx, None
    scales_taken = m == 2 * c  # True: the helper computes no scales, only the means

    def take_scales() -> None:
        nonlocal job, scales_taken
        if scales_taken:
            return
        scales_taken = True
        if job.wait_part(h) is None:  # the helper failed: its scales and the means here
            run(2, theirs)
            run(0, means)
            job = None

    def take_means() -> np.ndarray:
        take_scales()
        if job is not None and job.wait(h) is None:  # the helper failed: this thread computes them
            run(0, means)
        return means

    return take_means, scale_idx, ((m - c, take_scales) if m < 2 * c else None)


def _bias4(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """4 times the last layer's bias (``wino3.conv3``'s), for the means and for the scales: kept with the model, so
    that the helper's jobs send them once."""
    key = "h2.b#4"
    if key not in model.arrays:
        b4 = 4.0 * model.f64("h2.b")
        c = b4.size // 2
        model.arrays[key + ".means"], model.arrays[key + ".scales"] = b4[:c].copy(), b4[c:].copy()
        model.arrays[key] = np.zeros(0)
    return model.arrays[key + ".means"], model.arrays[key + ".scales"]


def _scales_here(c: int, share: float) -> int:
    """Scale channels for this thread: ``share`` of c (``parallel.share("hyper")``), a multiple of SPLIT_ROWS. The
    share starts at all of them (the helper computes only the means, as its first, cold job should: this
    thread would otherwise wait for its cold scales) and learns down from there: about 3/4 under Node, where this
    thread's y (~3 ms for a Kodak image) and the helper's means (~5 ms, about what all the scales cost) then end
    together."""
    r = SPLIT_ROWS if c % SPLIT_ROWS == 0 else _native.W3_ROWS
    return min(c, max(r, round(share * c / r) * r))


# The split of the scales moves in steps of this many rows (a multiple of the kernel's block, _native.W3_ROWS): 4 %
# of a Kodak image's 192, ~0.1 ms of work, finer than a decode's jitter; each split is a job template of its own
# (HYPER_JOBS), and at the kernel's 2 rows a share moving by a few percent met a new one every third decode (~0.26
# ms to record it).
SPLIT_ROWS = 8


# scale_index of every log-scale between the table's ends: below them it is 0, above them the last index.
SCALE_LUT = scale_index(np.arange(LOG_SCALE_MIN_FX, LOG_SCALE_MAX_FX + 1)).astype(np.int32)


def _scale_kernel_ok() -> bool:
    return conv.kernel_checked("scale_index", _scale_check)


def _scale_check() -> bool:
    """``nic_scale_index`` against ``tables.scale_index`` on every log-scale around the table's ends and on random
    ones over the whole activation range."""
    edges = np.arange(LOG_SCALE_MIN_FX - 3000, LOG_SCALE_MAX_FX + 3000, dtype=np.int64)
    t = np.concatenate([edges, _native.CheckInts().integers(-(1 << 22), (1 << 22) + 1, 5000)])
    want = scale_index(t)
    return bool(want[0] == 0 and want[-1] == NUM_SCALES - 1 and  # the clip ends the kernel assumes
                np.array_equal(_native.scale_index(t.astype(np.float64), SCALE_LUT, LOG_SCALE_MIN_FX), want))


def _wino3_kernel_ok() -> bool:
    return conv.kernel_checked("wino3", _wino3_check)


WINO3_CHECK = ((5, 8, 5, 7, 1 << 8, 1 << 14), (11, 4, 6, 9, wino3.MAX_INPUT, 1 << 9))  # Cin, Cout, h, w, input bound,
# weight bound: weights whose transforms need the high/low split; then inputs at the path's limit, whose int32 sums
# are flushed after every block of 8


def wino3_check_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The inputs (a, w, b, b_lut) of ``_wino3_check`` (``WINO3_CHECK``); b_lut: biases that shift the same sums to
    log-scales of a few hundred around each channel's, spread from below the table's first log-scale to past its
    last."""
    rng = _native.CheckInts()
    cases = []
    for cin, cout, h, wd, amax, wmax in WINO3_CHECK:
        a = rng.integers(-amax, amax + 1, (cin, h, wd)).astype(np.float64)
        w = rng.integers(-wmax, wmax, (cin, cout, 3, 3)).astype(np.float64)
        w[0, 0] = wmax  # a transformed weight of 9 wmax: beyond int16 in the first case
        b = rng.integers(-(1 << 30), 1 << 30, cout).astype(np.float64)
        b_lut = np.linspace(LOG_SCALE_MIN_FX - 400, LOG_SCALE_MAX_FX + 400, cout).round() * float(1 << 19)
        cases.append((a, w, b, b_lut))
    return cases


def _wino3_check() -> bool:
    """``wino3`` on ``wino3_check_cases``: odd sizes (partial tiles), weights whose transforms need the high/low split,
    inputs whose int32 sums are flushed within a term; float64 and int32 planes (the means' type: the kernel's own
    store paths), two ranges of rows (the two threads' parts of the scales), and scale indices (``lut``) across the
    table and past both of its ends. Its planes must hash to ``known_answers.WINO3``, the digest of the layer's NumPy
    reference (``conv._numpy_convt``, ``conv._requantize_numpy``, ``tables.scale_index``: tests/test_decoder_speedups.py
    computes it again)."""
    outs = []
    r = _native.W3_ROWS
    for (a, w, b, b_lut), (cin, cout, h, wd, _, wmax) in zip(wino3_check_cases(), WINO3_CHECK, strict=True):
        p = wino3._make_plan(w, slice(0, cout))  # not cached: these weights are garbage once checked
        prep = wino3.prepare(a, 8 * -(-cin // 8)) if p is not None else None
        seg = wino3.segments(p, prep) if prep is not None else None
        if seg is None or bool(np.any(p.scale != 1)) != (wmax > 1 << 12):
            return False
        b4 = 4.0 * b  # conv3's bias: its sums are 4 times the layer's
        outs.append(wino3.conv3(p, prep, seg, b4, 11, ACT_LIMIT, np.empty((cout, h, wd))))
        outs.append(wino3.conv3(p, prep, seg, b4, 11, ACT_LIMIT, np.empty((cout, h, wd), np.int32)))
        outs += [wino3.conv3(p, prep, seg, b4, 11, ACT_LIMIT, np.empty((r1 - r0, h, wd)), rows=(r0, r1))
                 for r0, r1 in ((0, r), (r, cout))]
        got = wino3.conv3(p, prep, seg, 4.0 * b_lut, 19, ACT_LIMIT, np.empty((cout, h, wd), np.int32),
                          lut=(SCALE_LUT, LOG_SCALE_MIN_FX))
        if not (0 in got and NUM_SCALES - 1 in got and len(np.unique(got)) > 4):  # the table's inside and both ends
            return False
        outs.append(got)
    if known_answers.digest(outs) != known_answers.WINO3:
        return False
    _native.tier_up(lambda: wino3.conv3(p, wino3.prepare(a, 8 * -(-cin // 8)), seg, 4.0 * b_lut, 19, ACT_LIMIT,
                                        np.empty((cout, h, wd), np.int32), lut=(SCALE_LUT, LOG_SCALE_MIN_FX)))
    return True
