"""Integer hyper-decoder: z_hat -> (means in fixed point, scale indices).

This is the bit-exact heart of nic: it decides which probability table every
latent uses, so the encoder runs this very function (``encoder/codec.py``)
rather than its float twin. Activations are integers with ``FRAC_BITS``
fractional bits, weights integers with a per-layer shift; see docs/FORMAT.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from webdecoder import _native, conv, parallel
from webdecoder.conv import conv_transpose, requantize_channels
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS, LOG_SCALE_MAX_FX, LOG_SCALE_MIN_FX, NUM_SCALES, scale_index

ACT_LIMIT = float(1 << 22)  # activations are clipped to +-2^22 (exactness bound)
HYPER_LAYERS = ((5, 2, 2), (5, 2, 2), (3, 1, 1))  # (kernel, stride, crop) of h_s
SPLIT_MIN_MACS = 20_000_000  # below this the last layer runs on one thread: the helper's hand-over costs ~0.3 ms


def hyper_decode(model: Model, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_hat: (Cz, hz, wz) integers -> means_fx (C, 4hz, 4wz) int64 and scale_idx (int64, or int32 from the wasm
    kernel: the type the rANS loop reads)."""
    means, scale_idx = hyper_decode_deferred(model, z_hat)
    return means(), scale_idx


def hyper_decode_deferred(model: Model, z_hat: np.ndarray) -> tuple[Callable[[], np.ndarray], np.ndarray]:
    """``hyper_decode`` with the means handed over later, as a function that returns them: where a helper thread
    is there (``parallel``), it computes the means half of the last layer while this thread computes the scale
    half and the caller decodes y with the scales (the means are needed only at the end)."""
    t = z_hat.astype(np.float64) * (1 << FRAC_BITS)
    for i, (_k, stride, crop) in enumerate(HYPER_LAYERS):
        w, wmat = model.convt(f"h{i}.w")
        if i == len(HYPER_LAYERS) - 1:
            split = _last_layer_on_two_threads(model, t, w, crop)
            if split is not None:
                return split
        acc = conv_transpose(t, w, stride, crop, wmat)
        t = requantize_channels(acc, model.int(f"h{i}.shift"), ACT_LIMIT, bias=model.f64(f"h{i}.b"),
                                relu=i < len(HYPER_LAYERS) - 1)
    c = t.shape[0] // 2
    if _scale_kernel_ok():  # one pass instead of NumPy's six over 300 k values (Kodak), no int64 copy
        means = t[:c].astype(np.int64)
        return lambda: means, _native.scale_index(t[c:], SCALE_LUT, LOG_SCALE_MIN_FX)
    t = t.astype(np.int64)
    return lambda: t[:c], scale_index(t[c:])


def _last_layer_on_two_threads(model: Model, t: np.ndarray, w: np.ndarray,
                               crop: int) -> tuple[Callable[[], np.ndarray], np.ndarray] | None:
    """The last layer (stride 1: a gather product) split by output channels: means on the helper thread, scales
    here. None without a helper, the kernels, or operands that fit int16 (``conv.gather_operands``)."""
    h = parallel.helper()
    if h is None or not (_scale_kernel_ok() and conv._requantize_kernel_ok()):
        return None
    ops = conv.gather_operands(t, w, crop)
    if ops is None or ops[0].size * ops[1].shape[0] < SPLIT_MIN_MACS or ops[0].shape[0] % 2:
        return None
    w16, at16, chunk = ops
    c, n = w16.shape[0] // 2, at16.shape[0]
    bias, shift, shape = model.f64("h2.b"), model.int("h2.shift"), (c, *t.shape[1:])
    means = np.empty((c, n))

    def half(rows: slice, out: np.ndarray, run: parallel.Job | None = None) -> np.ndarray:
        acc = np.zeros((c, n)) if run is None else run.buf(np.empty((c, n)), "zeros")  # a job's: only a name
        _native.matmul_i16(w16[rows], at16, acc, chunk, 1.0, run=run)
        b = np.ascontiguousarray(bias[rows])
        if run is not None:
            run.buf(b, "in")
        return _native.requantize(acc, None, b, shift, -ACT_LIMIT, ACT_LIMIT, out=out, run=run)

    job = parallel.Job()
    job.buf(w16, "const")
    job.buf(at16, "in")
    job.buf(means, "out")
    half(slice(0, c), means, job)
    if not job.start(h):
        return None
    scales = half(slice(c, 2 * c), np.empty((c, n)))
    scale_idx = _native.scale_index(scales, SCALE_LUT, LOG_SCALE_MIN_FX).reshape(shape)

    def take_means() -> np.ndarray:
        if job.wait(h) is None:  # the helper failed: this thread computes them
            half(slice(0, c), means)
        return means.reshape(shape).astype(np.int64)

    return take_means, scale_idx


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
