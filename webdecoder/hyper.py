"""Integer hyper-decoder: z_hat -> (means in fixed point, scale indices).

This is the bit-exact heart of nic: it decides which probability table every
latent uses, so the encoder runs this very function (``encoder/codec.py``)
rather than its float twin. Activations are integers with ``FRAC_BITS``
fractional bits, weights integers with a per-layer shift; see docs/FORMAT.md.
"""

from __future__ import annotations

import numpy as np

from webdecoder.conv import conv_transpose, requantize_channels
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS, scale_index

ACT_LIMIT = float(1 << 22)  # activations are clipped to +-2^22 (exactness bound)
HYPER_LAYERS = ((5, 2, 2), (5, 2, 2), (3, 1, 1))  # (kernel, stride, crop) of h_s


def hyper_decode(model: Model, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_hat: (Cz, hz, wz) integers -> means_fx (C, 4hz, 4wz) int64 and scale_idx int64."""
    t = z_hat.astype(np.float64) * (1 << FRAC_BITS)
    for i, (_k, stride, crop) in enumerate(HYPER_LAYERS):
        w, wmat = model.convt(f"h{i}.w")
        acc = conv_transpose(t, w, stride, crop, wmat)
        t = requantize_channels(acc, model.int(f"h{i}.shift"), ACT_LIMIT, bias=model.f64(f"h{i}.b"),
                                relu=i < len(HYPER_LAYERS) - 1)
    c = t.shape[0] // 2
    t = t.astype(np.int64)
    return t[:c], scale_index(t[c:])
