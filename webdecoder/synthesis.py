"""Shallow synthesis, in the same exact integer arithmetic as the hyper-decoder.

Depth 1 ("jpeg"): one transposed conv, kernel 18, stride 16: every latent
vector paints an 18x18 RGB patch on a 16-pixel grid, like a learned JPEG basis.
Depth 2 ("two"): transposed conv k13/s8 to a few channels through an inverse
GDN, plus a linear twin of the same shape, then transposed conv k5/s2 to RGB.
The last layer's weights already include the 255 scale and the +0.5 offset,
so its output is the pixel value in fixed point. Integer-only, so CPython and
the browser produce identical pixels.
"""

from __future__ import annotations

import numpy as np

from webdecoder.conv import conv_transpose, requantize
from webdecoder.hyper import ACT_LIMIT
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS

SYN_FRAC_BITS = 12  # synthesis activations carry more fraction bits than the hyper-decoder's


def _layer(model: Model, name: str, x: np.ndarray, stride: int, crop: int) -> np.ndarray:
    w, wmat = model.convt(f"{name}.w")
    acc = conv_transpose(x, w, stride, crop, wmat)
    return acc + model.f64(f"{name}.b")[:, None, None]


def _fused_up(model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The iGDN branch and its linear twin read the same latent: one matrix product for both."""
    key = "two.upres"
    if key not in model.arrays:
        model.arrays[key + ".w"] = np.concatenate([model["two.up.w"], model["two.res.w"]], axis=1)
        model.arrays[key + ".b"] = np.concatenate([model["two.up.b"], model["two.res.b"]])
        model.arrays[key] = np.zeros(0)
    return (*model.convt(key + ".w"), model.f64(key + ".b"))


def dequantize_latent(model: Model, y_fx: np.ndarray, quality: int) -> np.ndarray:
    """Gained latent (fixed point) -> synthesis input: multiply by the quality's inverse gain."""
    inv, shift = model.f64("invgain")[quality], model.int("invgain.shift")
    shift -= SYN_FRAC_BITS - FRAC_BITS  # from 2^FRAC_BITS to 2^SYN_FRAC_BITS
    return requantize(y_fx.astype(np.float64) * inv[:, None, None], shift, ACT_LIMIT)


def synthesize(model: Model, x: np.ndarray, depth: int) -> np.ndarray:
    """x: (C, hy, wy) latent with SYN_FRAC_BITS fraction bits -> (3, 16hy, 16wy) uint8 pixels."""
    if depth == 1:
        out = _layer(model, "jpeg", x, 16, 1)
        shift = model.int("jpeg.shift")
    else:
        w, wmat, b = _fused_up(model)
        both = conv_transpose(x, w, 8, 3, wmat) + b[:, None, None]
        hidden = both.shape[0] // 2
        up = requantize(both[:hidden], model.int("two.up.shift"), ACT_LIMIT)
        res = requantize(both[hidden:], model.int("two.res.shift"), ACT_LIMIT)
        h = igdn(model, up) + res
        out = _layer(model, "two.out", h, 2, 2)
        shift = model.int("two.out.shift")
    return np.clip(np.floor((out + float(1 << (shift - 1))) * (1.0 / (1 << shift))), 0, 255).astype(np.uint8)


def igdn(model: Model, x: np.ndarray) -> np.ndarray:
    """Inverse GDN1: x_i * (beta_i + sum_j gamma_ij |x_j|), fixed point throughout."""
    gamma, beta = model.f64("two.gdn.gamma"), model.f64("two.gdn.beta")
    g = model.int("two.gdn.shift")
    c = x.shape[0]
    norm = (gamma @ np.abs(x).reshape(c, -1)).reshape(x.shape) + beta[:, None, None]
    norm = requantize(norm, g, ACT_LIMIT)  # scale 2^SYN_FRAC_BITS
    return requantize(x * norm, SYN_FRAC_BITS, ACT_LIMIT)
