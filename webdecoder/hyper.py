"""Integer hyper-decoder: z_hat -> (means in fixed point, scale indices).

This is the bit-exact heart of nic: it decides which probability table every
latent uses, so the encoder runs this very function (``encoder/codec.py``)
rather than its float twin. Activations are integers with ``FRAC_BITS``
fractional bits, weights integers with a per-layer shift; see docs/FORMAT.md.
"""

from __future__ import annotations

import numpy as np

from webdecoder import _native, conv
from webdecoder.conv import conv_transpose, requantize_channels
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS, LOG_SCALE_MAX_FX, LOG_SCALE_MIN_FX, NUM_SCALES, scale_index

ACT_LIMIT = float(1 << 22)  # activations are clipped to +-2^22 (exactness bound)
HYPER_LAYERS = ((5, 2, 2), (5, 2, 2), (3, 1, 1))  # (kernel, stride, crop) of h_s


def hyper_decode(model: Model, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_hat: (Cz, hz, wz) integers -> means_fx (C, 4hz, 4wz) int64 and scale_idx (int64, or int32 from the wasm
    kernel: the type the rANS loop reads)."""
    t = z_hat.astype(np.float64) * (1 << FRAC_BITS)
    for i, (_k, stride, crop) in enumerate(HYPER_LAYERS):
        w, wmat = model.convt(f"h{i}.w")
        acc = conv_transpose(t, w, stride, crop, wmat)
        t = requantize_channels(acc, model.int(f"h{i}.shift"), ACT_LIMIT, bias=model.f64(f"h{i}.b"),
                                relu=i < len(HYPER_LAYERS) - 1)
    c = t.shape[0] // 2
    if _scale_kernel_ok():  # one pass instead of NumPy's six over 300 k values (Kodak), no int64 copy
        return t[:c].astype(np.int64), _native.scale_index(t[c:], SCALE_LUT, LOG_SCALE_MIN_FX)
    t = t.astype(np.int64)
    return t[:c], scale_index(t[c:])


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
