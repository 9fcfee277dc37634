"""parse -> z -> hyper-decoder -> y -> synthesis -> pixels."""

from __future__ import annotations

from collections.abc import Callable
import time

import numpy as np

from webdecoder import entropy, format
from webdecoder.errors import NicError
from webdecoder.hyper import Pending, hyper_decode, hyper_decode_deferred
from webdecoder.model import Model, get_model
from webdecoder.synthesis import dequantize_latent, latent_input, synthesize
from webdecoder.tables import FRAC_BITS


def _header_and_model(
    data: bytes, check_crc: bool = True, model: Model | None = None, partial: bool = False
) -> tuple[format.Header, Model]:
    h = format.parse(data, check_crc=check_crc, partial=partial)
    if model is None or model.model_id != h.model_id:
        model = get_model(h.model_id)
    if h.quality >= model.qualities:
        raise NicError(f"quality {h.quality} outside 0..{model.qualities - 1} of model {h.model_id.hex()}")
    if h.mac_per_px != model.mac_per_px(h.depth):
        raise NicError(f"decode cost field {h.mac_per_px} does not match the model ({model.mac_per_px(h.depth)})")
    hy, wy, hz, wz = format.latent_shape(h.width, h.height)
    for name, symbols, lanes in (("z", model.z_channels * hz * wz, h.z_lanes),
                                 ("y", model.y_channels * hy * wy, h.y_lanes)):
        if -(-symbols // lanes) > format.MAX_STEPS:
            raise NicError(f"{name} stream: {lanes} lanes for {symbols} symbols exceeds {format.MAX_STEPS} steps")
    return h, model


# The hyper-decoder output of the last preview, keyed by everything it depends on: a progressive viewer
# decodes the preview and then the whole file, whose hyper pass (~20% of a decode) would be the same work.
# One entry (a few MB), used once; hyper_decode is deterministic, so reusing it cannot change a pixel.
HyperOut = tuple[np.ndarray, np.ndarray]
_last_hyper: tuple[tuple, HyperOut] | None = None


def _hyper_key(model: Model, h: format.Header, z_rans: bytes, z_esc: bytes) -> tuple:
    return (model.model_id, h.width, h.height, h.z_lanes, z_rans, z_esc)


def _take_previewed_hyper(key: tuple) -> HyperOut | None:
    global _last_hyper
    hit = _last_hyper[1] if _last_hyper is not None and _last_hyper[0] == key else None
    _last_hyper = None
    return hit


def decode_z(model: Model, h: format.Header, z_rans: bytes, z_esc: bytes) -> np.ndarray:
    _, _, hz, wz = format.latent_shape(h.width, h.height)
    cz = model["z.offsets"].size - 1
    tables = np.repeat(np.arange(cz, dtype=np.int64), hz * wz)
    z = entropy.decode_values(z_rans, z_esc, tables, model["z.freqs"], model["z.offsets"], h.z_lanes)
    return z.reshape(cz, hz, wz)


def decode_symbols(model: Model, h: format.Header, means_fx: np.ndarray | Callable[[], np.ndarray],
                   scale_idx: np.ndarray, y_rans: bytes, y_esc: bytes,
                   pending: Pending = None) -> tuple[np.ndarray, np.ndarray]:
    """The latent's residual symbols (shaped like the means) and the integer means. ``means_fx`` may be a function
    that returns them (``hyper_decode_deferred``): it is called once the symbols are decoded. ``pending`` (k, fn):
    the scale indices of channels k and after are there once fn() has returned (``hyper_decode_deferred``); y's
    first k channels are decoded meanwhile."""
    pause = None if pending is None else (pending[0] * scale_idx[0].size, pending[1])
    q = entropy.decode_values(y_rans, y_esc, scale_idx.ravel(), model["y.freqs"], model["y.offsets"], h.y_lanes,
                              pause)
    means = means_fx() if callable(means_fx) else means_fx
    return q.reshape(means.shape), means


def decode_y(model: Model, h: format.Header, means_fx: np.ndarray | Callable[[], np.ndarray], scale_idx: np.ndarray,
             y_rans: bytes, y_esc: bytes) -> np.ndarray:
    """Residual symbols around the integer means -> gained latent in fixed point (int64)."""
    q, means = decode_symbols(model, h, means_fx, scale_idx, y_rans, y_esc)
    return (q.astype(np.int64) << FRAC_BITS) + means


def decode(data: bytes, timings: dict | None = None, rgba: bool = False, header: dict | None = None) -> np.ndarray:
    """Decode a .nic file to an (H, W, 3) uint8 array; raises NicError on any bad input.

    ``timings``, if given, receives seconds per stage: parse, z, hyper, y, synthesis.
    ``rgba``: an (H, W, 4) array with an opaque alpha channel instead, the layout of a canvas's ImageData
    (what the browser's worker asks for: made in the pass that rounds the pixels, no copy afterwards; building
    it from the RGB result took 5.5 ms more per Kodak image in Pyodide).
    ``header``, if given, receives ``info(data)``'s fields from this decode's own parse (the browser's worker
    reports them with every image: a second parse and CRC pass cost it 0.13 ms a Kodak image in Chromium).
    """
    return decode_with_model(data, None, timings, rgba, header)


def decode_with_model(data: bytes, model: Model | None, timings: dict | None = None,
                      rgba: bool = False, header: dict | None = None) -> np.ndarray:
    """``decode`` with a model already in hand (the encoder's); looked up by id when None."""
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        clock.append(time.perf_counter())
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + clock[-1] - clock[-2]

    h, model = _header_and_model(data, model=model)
    z_rans, z_esc, y_rans, y_esc = h.sections(bytes(data))
    if header is not None:
        header.update(_info_fields(h, len(data)))
    lap("parse")
    previewed = _take_previewed_hyper(_hyper_key(model, h, z_rans, z_esc))
    z_hat = decode_z(model, h, z_rans, z_esc) if previewed is None else None
    lap("z")
    # The means may still be on their way from the helper thread while y is decoded (hyper_decode_deferred).
    means_fx, scale_idx, pending = hyper_decode_deferred(model, z_hat) if previewed is None else (*previewed, None)
    lap("hyper")
    q, means = decode_symbols(model, h, means_fx, scale_idx, y_rans, y_esc, pending)
    # dequantize_latent(decode_y(...)), fused in Pyodide; int16 there where depth 2's Winograd path reads it
    x = latent_input(model, q, means, h.quality, narrow=h.depth == 2)
    lap("y")
    out = synthesize(model, x, h.depth, (h.height, h.width), "rgba" if rgba else "rgb")
    lap("synthesis")
    return out


def info(data: bytes) -> dict:
    """Header facts and costs, without decoding the pixels."""
    return _info_fields(_header_and_model(data)[0], len(data))


def _info_fields(h: format.Header, size: int) -> dict:
    px = h.width * h.height
    return {
        "width": h.width, "height": h.height, "quality": h.quality, "depth": h.depth,
        "bytes": size, "bpp": 8 * size / px, "kmac_per_px": h.mac_per_px / 1000,
        "total_mac": h.mac_per_px * px, "model_id": h.model_id.hex(),
        "z_lanes": h.z_lanes, "y_lanes": h.y_lanes,
    }


def preview_bytes(data: bytes) -> int:
    """How many bytes of a file a preview needs (header + z section); 0 while the header is incomplete."""
    if len(data) < format.HEADER_SIZE:
        return 0
    fields = format.HEADER.unpack_from(bytes(data[: format.HEADER_SIZE]))
    return format.HEADER_SIZE + fields[11] + fields[12]  # z_rans_len + z_esc_len


def decode_preview(data: bytes, rgba: bool = False) -> np.ndarray:
    """A coarse preview from the first bytes of a file: the synthesis of the hyper-decoder's means.

    Needs only the header and the z section (laid out first for this), i.e. a few percent of the
    file; every latent is taken at its predicted mean, as if all residuals were zero.
    Same (H, W, 3) uint8 shape as ``decode`` (or (H, W, 4) with ``rgba``). The CRC cannot be checked
    before the whole file is in.
    """
    global _last_hyper
    h, model = _header_and_model(data, check_crc=False, partial=True)
    z_rans, z_esc, _, _ = h.sections(bytes(data))
    hyper = hyper_decode(model, decode_z(model, h, z_rans, z_esc))
    _last_hyper = (_hyper_key(model, h, z_rans, z_esc), hyper)
    return synthesize(model, dequantize_latent(model, hyper[0], h.quality), h.depth, (h.height, h.width),
                      "rgba" if rgba else "rgb")
