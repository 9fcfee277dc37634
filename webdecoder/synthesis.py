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

from webdecoder import _native, conv, known_answers, parallel, winograd
from webdecoder.conv import conv_transpose, requantize, requantize_channels
from webdecoder.hyper import ACT_LIMIT
from webdecoder.model import Model
from webdecoder.tables import FRAC_BITS

SYN_FRAC_BITS = 12  # synthesis activations carry more fraction bits than the hyper-decoder's


def _fused_up(model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The iGDN branch and its linear twin read the same latent: one matrix product for both."""
    key = "two.upres"
    if key not in model.arrays:
        model.arrays[key + ".w"] = np.concatenate([model["two.up.w"], model["two.res.w"]], axis=1)
        model.arrays[key + ".b"] = np.concatenate([model["two.up.b"], model["two.res.b"]])
        model.arrays[key] = np.zeros(0)
    return (*model.convt(key + ".w"), model.f64(key + ".b"))


def input_frac_bits(model: Model) -> int:
    """Fraction bits of the synthesis input: the model's ``syn.in_frac``, or SYN_FRAC_BITS for models without it
    (those exported before it existed). Exports set 8, so that the latent fits one int16 product pass."""
    return model.int("syn.in_frac") if "syn.in_frac" in model.arrays else SYN_FRAC_BITS


def _inverse_gain(model: Model, quality: int) -> tuple[np.ndarray, int]:
    """The quality's per-channel inverse gain and the shift that takes the product from 2^FRAC_BITS to the
    synthesis input's fraction bits."""
    return model.f64("invgain")[quality], model.int("invgain.shift") - (input_frac_bits(model) - FRAC_BITS)


def dequantize_latent(model: Model, y_fx: np.ndarray, quality: int) -> np.ndarray:
    """Gained latent (fixed point) -> synthesis input: multiply by the quality's inverse gain."""
    inv, shift = _inverse_gain(model, quality)
    return requantize_channels(y_fx.astype(np.float64), shift, ACT_LIMIT, mul=inv)


def latent_input(model: Model, q: np.ndarray, means: np.ndarray, quality: int, narrow: bool = False) -> np.ndarray:
    """The synthesis input from the latent's residual symbols q and the hyper-decoder's integer means (same shape):
    ``dequantize_latent`` of the gained latent ``(q << FRAC_BITS) + means`` (``decoder.decode_y``), in one wasm pass
    where the kernel is checked (``nic_latent``: no int64 or float64 copies in between).

    ``narrow`` (the depth-2 synthesis's Winograd path, which reads int16): the same integers as int16 where the
    kernel is there and every value is within that path's input bound (``winograd.MAX_INPUT``), else float64.
    A quarter of the bytes to write, to read, and to hand to the helper thread for its band."""
    # int32 in the kernel: |q| <= entropy.MAX_ABS = 2^15 (decode_values' bound), |means| <= ACT_LIMIT = 2^22.
    if not _latent_kernel_ok():
        return dequantize_latent(model, (q.astype(np.int64) << FRAC_BITS) + means, quality)
    inv, shift = _inverse_gain(model, quality)
    if narrow:
        x = _native.latent16(q, means, inv, FRAC_BITS, shift, ACT_LIMIT, winograd.MAX_INPUT)
        if x is not None:
            return x
    return _native.latent(q, means, inv, FRAC_BITS, shift, ACT_LIMIT)


def _latent_kernel_ok() -> bool:
    return conv.kernel_checked("latent", _latent_check)


def _latent_check() -> bool:
    """``nic_latent`` against the NumPy arithmetic of ``latent_input`` (``requantize_channels``' reference) on random
    symbols, means and inverse gains at their bounds."""
    rng = _native.CheckInts()
    q = rng.integers(-(1 << 15), (1 << 15) + 1, (3, 5, 7))
    means = rng.integers(-(1 << 22), (1 << 22) + 1, (3, 5, 7))
    inv = rng.integers(1, 1 << 20, 3).astype(np.float64)
    want = conv._requantize_numpy(((q << FRAC_BITS) + means).astype(np.float64), 21, ACT_LIMIT, inv, None, False)
    if not np.array_equal(_native.latent(q, means, inv, FRAC_BITS, 21, ACT_LIMIT), want):
        return False
    # int16 (shifted further, so that every value fits): refused while one is beyond the bound, the same integers
    # once the bound holds them all
    want = conv._requantize_numpy(((q << FRAC_BITS) + means).astype(np.float64), 30, ACT_LIMIT, inv, None, False)
    lim16 = int(np.abs(want).max())
    got = _native.latent16(q, means, inv, FRAC_BITS, 30, ACT_LIMIT, lim16)
    if not (_native.latent16(q, means, inv, FRAC_BITS, 30, ACT_LIMIT, lim16 - 1) is None and got is not None
            and 1 << 12 < lim16 < 1 << 15 and np.array_equal(got, want)):
        return False
    _native.tier_up(lambda: _native.latent16(q, means, inv, FRAC_BITS, 30, ACT_LIMIT, lim16))
    return True


LAYOUTS = ("planes", "rgb", "rgba")


def synthesize(model: Model, x: np.ndarray, depth: int, size: tuple[int, int] | None = None,
               layout: str = "planes") -> np.ndarray:
    """x: (C, hy, wy) latent with ``input_frac_bits`` fraction bits (float64, or int16: ``latent_input``'s
    ``narrow``) -> uint8 pixels.

    ``size`` (height, width) crops the (16hy, 16wy) output to the image (default: all of it); ``layout`` is
    "planes" (3, height, width), "rgb" (height, width, 3) or "rgba" (height, width, 4) with opaque alpha,
    a canvas's layout: made in the same pass, so the browser's worker copies nothing more.
    """
    _check_layout(layout)
    if layout != "planes":
        bands = _two_by_bands if depth == 2 else _one_by_bands
        img = bands(model, x, size or (16 * x.shape[1], 16 * x.shape[2]), layout)
        if img is not None:
            return img
    x = x.astype(np.float64, copy=False)  # the layer by layer paths compute in float64
    name, x, stride, crop = ("jpeg", x, 16, 1) if depth == 1 else ("two.out", hidden_layer(model, x), 2, 2)
    w, wmat = model.convt(f"{name}.w")
    b, shift = model.f64(f"{name}.b"), model.int(f"{name}.shift")
    size = size or (stride * x.shape[1], stride * x.shape[2])
    if conv.uses_phases(x.shape[0], w.shape[1], stride):
        return _pixels_by_band(x, w, stride, crop, b, shift, size, layout)
    acc = conv_transpose(x, w, stride, crop, wmat)
    return to_pixels(acc, b, shift, size, layout)  # acc: new memory, consumed


# Below this many Winograd tiles (16x16 hidden pixels each) an image decodes on one core: the helper's
# hand-over (~0.3 ms) would cost more than half of such a band saves.
SPLIT_MIN_TILES = 64
# The lower band's jobs, recorded once per plan, shape and split (``parallel.Templates``): a page decodes many images
# of a few sizes, and the learnt split moves among a few rows.
BAND_JOBS = parallel.Templates(64)


def _two_by_bands(model: Model, x: np.ndarray, size: tuple[int, int], layout: str) -> np.ndarray | None:
    """Depth 2 through the WebAssembly kernels, by bands of whole Winograd tile rows; where a helper thread is
    there (``parallel``), it computes the lower band while this thread computes the upper one. None where
    the kernels or the Winograd path do not apply, or a product could not be exact in int16: the caller then
    runs the layer by layer path.

    Tile rows t0 .. t1 - 1 make hidden rows 16 t0 .. 16 t1 - 1 and, through the output layer (k5/s2: output row
    o reads hidden rows (o - 2) / 2 .. (o + 2) / 2), every image row whose taps lie in them. Split at tile row
    T, the upper band owns the image rows up to 32 T - 3 and the lower one those from 32 T + 2; the four rows
    between read two hidden rows of each band, which the helper sends back, and are made here from those
    four hidden rows. Same integers as one band. (A latent of odd size, which no .nic file has, would leave
    part of a tile past the hidden layer: it takes the other path.)
    """
    if not (conv.winograd_ok() and _igdn16_kernel_ok() and _direct_pixels_kernel_ok()):
        return None
    plan = winograd.plan_for(_fused_up(model)[0], 8, 3)
    w_out = model.convt("two.out.w")[0]
    pairs = conv.direct_pairs(w_out)
    if plan is None or pairs is None or w_out.shape[0] > conv.DIRECT_MAX_CIN:
        return None
    _, hy, wy = x.shape
    if hy % 2 or wy % 2 or not winograd.fits(plan, hy, wy):  # .nic latents are multiples of 4: never odd here
        return None
    x = np.ascontiguousarray(x, np.int16 if x.dtype == np.int16 else np.float64)  # int16: latent_input's narrow
    th, tw = hy // 2, wy // 2
    height, width = size
    img = np.empty((height, width, 3 + (layout == "rgba")), np.uint8)

    def whole() -> np.ndarray | None:  # one band, on this thread
        rc, _ = _band(model, plan, x, pairs, 0, th, 0, height, img, _band_buffers(model, plan, th, tw, pairs))
        return None if rc else img

    h = parallel.helper()
    share = parallel.share("bands2")  # this thread's part of the tile rows, learnt from the previous decodes
    split = share.rows(th)
    if not 2 <= 32 * split - 2 < 32 * split + 2 < height:
        split = th // 2
    if h is None or th * tw < SPLIT_MIN_TILES or not 2 <= 32 * split - 2 < 32 * split + 2 < height:
        return whole()
    bufs = _band_buffers(model, plan, max(split, th - split), tw, pairs)
    c = model["two.gdn.gamma"].shape[0]
    wpk, wmax = pairs
    # the lower band's first two hidden rows, as the output layer reads them
    edge = np.empty(_native.pairs_shape(c, 2, 16 * tw, wpk.shape[1], 2), np.int16)
    # The lower band's calls depend on the shapes and the split alone: recorded once, then made from the template.
    def record(job: parallel.Job) -> None:
        _, hidden_names = _band(model, plan, x, pairs, split, th, 32 * split + 2, height, img, bufs, job)
        for q in range(edge.shape[0]):
            job.copy_out(edge[q], hidden_names[q, :2])

    job = BAND_JOBS.job((x.shape, x.dtype.char, size, layout, split), (plan, pairs[0]), [x, img, edge], record)
    job.learn = (share, (th - split) / th)
    if not job.start(h):  # busy or gone: this thread computes the whole image
        return whole()
    rc, hidden = _band(model, plan, x, pairs, 0, split, 0, 32 * split - 2, img, bufs)
    rcs = job.wait(h)
    if rcs is None:  # the helper failed: this thread computes its band
        rc_low, hidden_low = _band(model, plan, x, pairs, split, th, 32 * split + 2, height, img,
                                   _band_buffers(model, plan, th - split, tw, pairs))
        rcs, edge = [rc_low], hidden_low[:, :2]
    if rc or any(rcs):
        return None
    # Image rows 32 T - 2 .. 32 T + 1 from hidden rows 16 T - 2 .. 16 T + 1: output rows 2 .. 5 of those four.
    four = np.concatenate([hidden[:, -2:], edge], axis=1)  # int16 pairs, as the output layer reads them
    amax = np.array([np.abs(four).max()], np.int32)  # |values| <= 32767: upres_igdn16 checked them
    scratch = np.empty(_native.direct_pixels_scratch(c, wpk.shape[0], 4, 16 * tw, wpk.shape[1], 2), np.int16)
    b_out, shift = model.f64("two.out.b"), model.int("two.out.shift")
    if _native.convt_direct_i16_pixels16(four, amax, c, 4, 16 * tw, wpk, wmax, 2, 2, 2, b_out, shift,
                                         img[32 * split - 2 : 32 * split + 2], scratch):
        return None
    return img


def _one_by_bands(model: Model, x: np.ndarray, size: tuple[int, int], layout: str) -> np.ndarray | None:
    """Depth 1 through the fused int16 kernel in two bands of latent rows, the lower one on the helper thread
    (``parallel``); None where there is no helper, the image is small, or the products could not be exact in int16:
    the caller then runs the whole layer on this thread.

    Split at latent row T, the upper band owns image rows 0 .. 16 T - 1 and the lower one the rest. Latent row i
    paints rows 16 i - 1 .. 16 i + 16 (k18/s16, cropped by 1), so each band also reads the one latent row across
    the split (6 % more products for a Kodak image) and every row it owns gets all of its products: same sums,
    same pixels.
    """
    h = parallel.helper()
    cin, hy, wy = x.shape
    height, width = size
    share = parallel.share("bands1")  # this thread's part of the latent rows, learnt from the previous decodes
    split = share.rows(hy)
    if not 0 < 16 * split < height:
        split = hy // 2
    if (h is None or hy * wy < 4 * SPLIT_MIN_TILES or not 0 < 16 * split < height or not _pixels_kernel_ok()
            or not conv.fused_ok()):
        return None
    w, wmat = model.convt("jpeg.w")
    b, shift = model.f64("jpeg.b"), model.int("jpeg.shift")
    cout, k = w.shape[1], w.shape[2]
    r0 = split - 1  # the lower band: one latent row above the split, whose first 16 output rows it drops
    rows, y0 = hy - r0, 16 * split
    # The helper's accumulator is its own memory, which stays grown for the page's life: the largest images keep
    # theirs on this thread (the Winograd path's cap on its transformed inputs).
    if (k, w.shape[3]) != (18, 18) or cout * 16 * rows * 16 * wy * 8 > winograd.MAX_DATA_BYTES:
        return None
    ops = conv._int16_parts(wmat, np.ascontiguousarray(x[:, r0:], np.float64).reshape(cin, -1))
    if ops is None:  # weights beyond int16: the same for every band
        return None
    img = np.empty((height, width, 3 + (layout == "rgba")), np.uint8)

    def here(first: int, stop: int, skip: int, top: int, bottom: int) -> bool:
        """Image rows top .. bottom - 1 on this thread from latent rows first .. stop - 1, whose output rows start
        ``skip`` rows above top; False where the products could not be exact in int16."""
        acc = conv._fused_convt(np.ascontiguousarray(x[:, first:stop], np.float64), w, wmat, 16, 1)
        if acc is not None:
            _native.pixels_rows(acc, skip, b, shift, img[top:bottom])
        return acc is not None

    # The lower band's calls, recorded for the helper (the same kernel calls as ``conv._fused_convt``'s).
    w16, parts = ops
    job = parallel.Job()
    acc = job.buf(np.empty((cout, 16 * rows, 16 * wy)), "zero")  # only names the helper's accumulator
    tap, pix = conv._scatter_index(cout, k, 16, 1, rows, wy)
    for arr in (w16, tap, pix, b):
        job.buf(arr, "const")
    dst = job.buf(img[y0:], "out")
    for at, chunk, scale in parts:
        _native.convt_i16(w16, job.buf(at, "in"), acc, chunk, scale, tap, pix, run=job)
    _native.pixels_rows(acc, 16, b, shift, dst, run=job)
    job.learn = (share, rows / (hy + 2))  # the bands share one latent row each way
    started = job.start(h)
    ok = here(0, split + 1, 0, 0, y0)
    if not started or job.wait(h) is None:  # busy, gone or failed: this thread computes the lower band too
        ok = here(r0, hy, 16, y0, height) and ok
    return img if ok else None


def _band_buffers(model: Model, plan: winograd.Plan, tile_rows: int, tw: int,
                  pairs: tuple[np.ndarray, int]) -> list:
    """Flat buffers for a band of ``tile_rows`` (``_band`` takes a prefix of each): the Winograd layer's int32 sums, the
    output layer's int16 input and row planes (``_native.direct_pixels_scratch``), the hidden layer's largest
    |value|, and the Winograd layer's own."""
    c, k = model["two.gdn.gamma"].shape[0], model["two.out.w"].shape[2]
    rows, cols = 16 * tile_rows, 16 * tw
    return [np.empty(2 * c * rows * cols, np.int32),
            np.empty(_native.direct_pixels_scratch(c, pairs[0].shape[0], rows, cols, k, 2), np.int16),
            np.empty(1, np.int32), winograd.band_buffers(plan, 2 * tw, tile_rows)]


def _band(model: Model, plan: winograd.Plan, x: np.ndarray, pairs: tuple[np.ndarray, int], t0: int, t1: int,
          y0: int, y1: int, img: np.ndarray, bufs: list, job: parallel.Job | None = None) -> tuple[int, np.ndarray]:
    """Image rows y0 .. y1 - 1 into ``img`` from tile rows t0 .. t1 - 1 of the latent x (``_two_by_bands``) in
    prefixes of ``bufs`` (``_band_buffers``): 0, or nonzero where the Winograd layer did not apply or a value left the
    int32 / int16 ranges of this path (0 when recorded in ``job``); and the band's hidden layer as the output layer
    reads it, int16 channel pairs ((C + 1) / 2, 16 (t1 - t0), 16 tw + 2 e, 2), e zero columns each side (for a job:
    the array naming the helper's).

    All in integers: the Winograd layer's sums as int32 (each checked below 2^30), the iGDN in int32 lanes
    (``_native.upres_igdn16``) straight into the int16 pairs the output layer multiplies: no float64 planes. The same
    integers as ``hidden_layer`` and ``_pixels_by_band``'s float64 arithmetic."""
    rows, cols = 16 * (t1 - t0), 8 * x.shape[2]
    _, _, b_up = _fused_up(model)
    gamma, beta = model.f64("two.gdn.gamma"), model.f64("two.gdn.beta")
    wpk, wmax = pairs
    b_out, shift = model.f64("two.out.b"), model.int("two.out.shift")
    c, cout, k = gamma.shape[0], wpk.shape[0], wpk.shape[1]
    acc = bufs[0][: 2 * c * rows * cols].reshape(2 * c, rows, cols)
    scratch = bufs[1][: _native.direct_pixels_scratch(c, cout, rows, cols, k, 2)]
    amax = bufs[2]
    shape = _native.pairs_shape(c, rows, cols, k, 2)  # the output layer's input, at the scratch's start
    hidden = scratch[: int(np.prod(shape))].reshape(shape)
    dst = img[y0:y1]
    if job is not None:
        for arr in (acc, scratch, amax):
            job.buf(arr, "scratch")
        for arr in (b_up, gamma, beta, wpk, b_out):
            job.buf(arr, "const")
        job.buf(dst, "out")
    rc = winograd.convt_band(plan, x, t0, t1, 8, acc, bufs[3], run=job)
    if rc:
        return rc, hidden
    shifts = (model.int("two.up.shift"), model.int("two.res.shift"), model.int("two.gdn.shift"), SYN_FRAC_BITS)
    rc = _native.upres_igdn16(acc, b_up, gamma, beta, shifts, ACT_LIMIT, k, 2, scratch, amax, run=job)
    if rc:
        return rc, hidden
    # The output layer's sums become pixels row by row (no float64 planes of 2 rows x 2 columns per hidden pixel)
    rc = _native.convt_direct_i16_pixels16(scratch, amax, c, rows, cols, wpk, wmax, 2, 2, y0 - 32 * t0, b_out, shift,
                                          dst, scratch, run=job)
    return rc or 0, hidden


def _pixels_by_band(x: np.ndarray, w: np.ndarray, stride: int, pad: int, b: np.ndarray, shift: int,
                    size: tuple[int, int], layout: str) -> np.ndarray:
    """CPython's depth-2 output layer and ``to_pixels`` in one pass per band of rows (``conv.phase_bands``):
    each block of the product is rounded and cast to uint8 while it is still in cache, and the float64
    planes of the whole image (9.4 MB each for Kodak) are never made nor interleaved. Same arithmetic as
    ``_pixels_numpy`` (``_round_clip``): 2.5 ms less per Kodak image (11.1 -> 8.6 ms, session 21)."""
    _, h, wd = x.shape
    cout, s = w.shape[1], stride
    band, bands = conv.phase_band_rows(h, wd)
    channels = cout + (layout == "rgba")
    # Full bands, cropped at the end; each block lands in the image through a strided view of its rows.
    if layout == "planes":
        img = np.empty((channels, bands * band * s, wd * s), np.uint8)
        dst = img.reshape(channels, bands, band, s, wd, s).transpose(1, 0, 3, 5, 2, 4)
    else:
        img = np.empty((bands * band * s, wd * s, channels), np.uint8)
        dst = img.reshape(bands, band, s, wd, s, channels).transpose(0, 5, 2, 4, 1, 3)
        if layout == "rgba":
            img[..., -1] = 255
    for i, block in conv.phase_bands(x, w, s, pad):  # block: (Cout, phase y, phase x, rows, W)
        dst[i, :cout] = _round_clip(block, b, shift)
    height, width = size
    out = img[..., :height, :width] if layout == "planes" else img[:height, :width]
    return img if out.shape == img.shape else np.ascontiguousarray(out)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")


def _round_clip(acc: np.ndarray, b: np.ndarray, shift: int) -> np.ndarray:
    """In place: floor((acc + b) / 2^shift + 1/2) clipped to 0..255 (still float64), b per channel (axis 0).

    Four passes: the bias and the rounding half are one addition (integers below 2^53: exact in any order)
    and the clip comes before the cast to uint8, whose truncation is then the floor (every value is in
    [0, 255])."""
    acc += (b + float(1 << (shift - 1))).reshape(-1, *(1,) * (acc.ndim - 1))
    acc *= 1.0 / (1 << shift)  # a power of two: exact
    np.minimum(acc, 255.0, out=acc)  # not np.clip: see conv.requantize
    return np.maximum(acc, 0.0, out=acc)


def to_pixels(acc: np.ndarray, b: np.ndarray, shift: int, size: tuple[int, int], layout: str = "planes") -> np.ndarray:
    """The last layer's accumulator plus bias, round(. / 2^shift) clipped to 0..255: uint8 pixels of the
    top-left ``size`` crop in ``layout`` (see ``synthesize``).

    In place: the full-resolution float64 planes (9.4 MB each for a Kodak image) are the largest arrays of a
    decode, and each temporary is memory a browser tab must grow. ``acc`` is consumed.
    """
    _check_layout(layout)
    if _pixels_kernel_ok():
        return _native.pixels(acc, b, shift, size, layout)
    return _pixels_numpy(acc, b, shift, size, layout)


def _pixels_numpy(acc: np.ndarray, b: np.ndarray, shift: int, size: tuple[int, int], layout: str) -> np.ndarray:
    """The reference arithmetic of ``to_pixels``: floor((acc + b) / 2^shift + 1/2) clipped to 0..255.

    Five passes over the planes, not eight (1.5 ms less per Kodak image in CPython): ``_round_clip``, then
    the cast writes straight into the output's layout. The wasm kernel ``nic_pixels`` floors first and clips
    after; for every input that is the same value, and ``_pixels_check`` compares the two.
    """
    _round_clip(acc, b, shift)
    height, width = size
    channels = acc.shape[0]
    if layout == "planes":
        out = np.empty((channels, height, width), np.uint8)
        out[...] = acc[:, :height, :width]
        return out
    out = np.empty((height, width, channels + (layout == "rgba")), np.uint8)
    if layout == "rgba":
        out[..., -1] = 255
    out[..., :channels].transpose(2, 0, 1)[...] = acc[:, :height, :width]  # the cast, in the caller's layout
    return out


def hidden_layer(model: Model, x: np.ndarray) -> np.ndarray:
    """Depth 2's hidden layer: iGDN(up(x)) + res(x), both branches from one transposed conv."""
    w, wmat, b = _fused_up(model)
    acc = conv_transpose(x, w, 8, 3, wmat)
    gamma, beta = model.f64("two.gdn.gamma"), model.f64("two.gdn.beta")
    shifts = (model.int("two.up.shift"), model.int("two.res.shift"), model.int("two.gdn.shift"), SYN_FRAC_BITS)
    if _igdn_kernel_ok():
        return _native.upres_igdn(acc, b, gamma, beta, shifts, ACT_LIMIT)
    return _hidden_numpy(acc, b, gamma, beta, shifts)


def _hidden_numpy(acc: np.ndarray, b: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                  shifts: tuple[int, int, int, int]) -> np.ndarray:
    """The reference arithmetic (the wasm kernel ``nic_upres_igdn`` computes the same integers).

    Inverse GDN1: u_i * (beta_i + sum_j gamma_ij |u_j|), fixed point throughout, plus the linear twin.
    ``acc`` is consumed: worked in place, as every temporary is a 384x256 plane per channel to page in.
    """
    s_up, s_res, s_gdn, s_frac = shifts
    c = acc.shape[0] // 2
    # The biases go in with the rounding (``requantize``'s offset): a pass fewer over the planes each.
    up = requantize(acc[:c], s_up, ACT_LIMIT, out=acc[:c], offset=b[:c])
    res = requantize(acc[c:], s_res, ACT_LIMIT, out=acc[c:], offset=b[c:])
    norm = (gamma @ np.abs(up).reshape(c, -1)).reshape(up.shape)
    requantize(norm, s_gdn, ACT_LIMIT, out=norm, offset=beta)  # scale 2^SYN_FRAC_BITS
    norm *= up
    requantize(norm, s_frac, ACT_LIMIT, out=norm)
    return np.add(norm, res, out=norm)


def _igdn_kernel_ok() -> bool:
    return conv.kernel_checked("upres_igdn", _igdn_check)


def _igdn_check() -> bool:
    """``nic_upres_igdn`` against ``_hidden_numpy`` on random integers."""
    rng = _native.CheckInts()
    c = 6
    acc = rng.integers(-(1 << 40), 1 << 40, (2 * c, 5, 11)).astype(np.float64)  # odd: the scalar tail too
    b = rng.integers(-(1 << 30), 1 << 30, 2 * c).astype(np.float64)
    gamma = rng.integers(0, 1 << 14, (c, c)).astype(np.float64)
    beta = rng.integers(1, 1 << 20, c).astype(np.float64)
    shifts = (19, 18, 14, SYN_FRAC_BITS)
    if not np.array_equal(_native.upres_igdn(acc, b, gamma, beta, shifts, ACT_LIMIT),
                          _hidden_numpy(acc.copy(), b, gamma, beta, shifts)):
        return False
    _native.tier_up(lambda: _native.upres_igdn(acc, b, gamma, beta, shifts, ACT_LIMIT))
    return True


def _igdn16_kernel_ok() -> bool:
    return conv.kernel_checked("upres_igdn16", _igdn16_check)


def pairs16(a: np.ndarray, k: int, stride: int) -> np.ndarray:
    """A (C, h, w) integer input as the int16 channel pairs a k x k, ``stride`` output layer reads
    (``_native.pairs_shape``), in NumPy."""
    c, h, wd = a.shape
    npairs, _, wp, _ = _native.pairs_shape(c, h, wd, k, stride)
    e = _native.direct_border(k, stride)
    ap = np.zeros((npairs, 2, h, wp), np.int16)
    ap.reshape(-1, h, wp)[:c, :, e : e + wd] = a
    return np.ascontiguousarray(ap.transpose(0, 2, 3, 1))


IGDN16_CHECK = ((6, 5, 11), (5, 3, 9))  # C (the shipped model's, unrolled; an odd one), h, w (with a scalar tail)
IGDN16_SHIFTS = (9, 9, 16, SYN_FRAC_BITS)  # the shipped model's


def igdn16_check_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The inputs (acc int32, b, gamma, beta) of ``_igdn16_check`` (``IGDN16_CHECK``): random sums at the model's
    scales, channel 0 with |u| past the kernel's int32 bound in five pixels (its norm reads no |u| and is 8: its
    values stay within int16), the rest within it."""
    rng = _native.CheckInts()
    cases = []
    for c, h, wd in IGDN16_CHECK:
        acc = rng.integers(-(1 << 22), 1 << 22, (2 * c, h, wd))
        b = rng.integers(-(1 << 16), 1 << 16, 2 * c).astype(np.float64)
        gamma = rng.integers(0, 1 << 12, (c, c)).astype(np.float64)
        beta = rng.integers(1 << 26, 1 << 28, c).astype(np.float64)
        gamma[:, 0] = gamma[0] = 0
        beta[0] = 8 << 16
        acc[0, 1, :5] = [(1 << 30) - 1, -(1 << 30) + 1, 1 << 29, -(1 << 28), 1 << 27]
        cases.append((acc.astype(np.int32), b, gamma, beta))
    return cases


def _igdn16_check() -> bool:
    """``nic_upres_igdn16`` on ``igdn16_check_cases``: the four-pixel vectors, the int64 path of the pixels past the
    int32 bound, the scalar tail of each row; its channel pairs and largest |value| must hash to
    ``known_answers.IGDN16``, the digest of ``_hidden_numpy``'s (tests/test_decoder_speedups.py); and its refusal of
    a value beyond int16."""
    outs = []
    for acc, b, gamma, beta in igdn16_check_cases():
        c, h, wd = acc.shape[0] // 2, *acc.shape[1:]
        ap = np.full(_native.direct_i16_scratch(c, h, wd, 5, 2), 99, np.int16)
        amax = np.zeros(1, np.int32)
        if _native.upres_igdn16(acc, b, gamma, beta, IGDN16_SHIFTS, ACT_LIMIT, 5, 2, ap, amax) != 0:
            return False
        outs += [ap, amax]
    if known_answers.digest(outs) != known_answers.IGDN16:
        return False
    acc[1:c, 0, 0] = (1 << 23) - 1  # |u| = 2^14 in the norm of channel 1, of ~2^14: a value beyond int16, refused
    gamma[1, 1:] = (1 << 13) - 1
    if _native.upres_igdn16(acc, b, gamma, beta, IGDN16_SHIFTS, ACT_LIMIT, 5, 2, ap, amax) != 1:
        return False
    acc = _native.CheckInts(1).integers(-(1 << 22), 1 << 22, (12, 16, 64)).astype(np.int32)  # the model's C
    ap = np.empty(_native.direct_i16_scratch(6, 16, 64, 5, 2), np.int16)
    gamma, beta, b = np.full((6, 6), float(1 << 11)), np.full(6, float(1 << 27)), np.zeros(12)
    _native.tier_up(lambda: _native.upres_igdn16(acc, b, gamma, beta, IGDN16_SHIFTS, ACT_LIMIT, 5, 2, ap, amax))
    return True


def _direct_pixels_kernel_ok() -> bool:
    return conv.kernel_checked("direct_pixels", _direct_pixels_check)


PIXEL_CHECK_ROWS = ((0, 0, 0, "rgb"), (1, 3, 3, "rgba"), (3, None, 1, "rgb"))  # row0, rows and columns cropped (None:
# 2 rows), layout


def direct_pixels_check_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The inputs (a, w, b) of ``_direct_pixels_check`` (5x5/s2, pad 2, shift 13): three and four output channels (one
    group of each), widths with and without a partial block of 8 columns; three biases per case from
    ``known_answers.DIRECT_PIXELS_BIASES`` (made from the NumPy conv of a and w: tests/test_decoder_speedups.py), so
    that pixel (1, 0) of channel 0 lands right on a rounding boundary, channel 1 clips to 0 everywhere and the last
    channel to 255."""
    rng = _native.CheckInts()
    cases = []
    shapes = ((6, 3, 4, 11), (5, 4, 3, 8))
    for (cin, cout, h, wd), fixed in zip(shapes, known_answers.DIRECT_PIXELS_BIASES, strict=True):
        a = rng.integers(-(1 << 12), 1 << 12, (cin, h, wd)).astype(np.float64)
        w = rng.integers(-(1 << 12), 1 << 12, (cin, cout, 5, 5)).astype(np.float64)
        b = rng.integers(-(1 << 21), 1 << 21, cout).astype(np.float64)
        b[0], b[1], b[-1] = fixed
        cases.append((a, w, b))
    return cases


def _direct_pixels_check() -> bool:
    """``nic_convt_direct_i16_pixels16`` on ``direct_pixels_check_cases`` (as int16 channel pairs, ``pairs16``): rows
    inside the output, crops, both layouts; its images must hash to ``known_answers.DIRECT_PIXELS``, the digest of
    the NumPy transposed conv and ``_pixels_numpy``'s (tests/test_decoder_speedups.py); and its refusal of a bound
    beyond int16 (the image untouched)."""
    shift = 13
    outs = []
    for a, w, b in direct_pixels_check_cases():
        cin, h, wd = a.shape
        cout = w.shape[1]
        wpk, wmax = _native.weight_pairs(w)
        scratch = np.empty(_native.direct_pixels_scratch(cin, cout, h, wd, 5, 2), np.int16)
        ap, amax = pairs16(a, 5, 2), np.array([np.abs(a).max()], np.int32)
        for row0, crop_h, crop_w, layout in PIXEL_CHECK_ROWS:
            oh, ow = (2 if crop_h is None else 2 * h - crop_h), 2 * wd - crop_w
            got = np.full((oh, ow, cout + (layout == "rgba")), 7, np.uint8)
            if _native.convt_direct_i16_pixels16(ap, amax, cin, h, wd, wpk, wmax, 2, 2, row0, b, shift, got, scratch):
                return False
            outs.append(got)
        if cout == 3:  # the output layer's kernel
            args = (ap, amax, cin, h, wd, wpk, wmax, 2, 2, 0, b, shift, np.empty_like(got), scratch)  # not into a
            _native.tier_up(lambda args=args: _native.convt_direct_i16_pixels16(*args))  # checked image
        got = np.full((2, 2 * wd, cout), 7, np.uint8)
        if _native.convt_direct_i16_pixels16(ap, np.array([1 << 15], np.int32), cin, h, wd, wpk, wmax, 2, 2, 0, b,
                                             shift, got, scratch) != 1 or np.any(got != 7):
            return False
    return known_answers.digest(outs) == known_answers.DIRECT_PIXELS


def _pixels_kernel_ok() -> bool:
    return conv.kernel_checked("pixels", _pixels_check)


def _pixels_check() -> bool:
    """``nic_pixels`` against ``_pixels_numpy``: both clip ends, the rounding boundary, every layout, odd sizes
    cropped from larger planes (the SIMD body and the scalar tail of each row)."""
    rng = _native.CheckInts()
    shift = 13
    acc = rng.integers(-(1 << 22), 1 << 22, (3, 9, 14)).astype(np.float64)
    acc[0, 0, :3] = [-(1 << (shift - 1)), (1 << (shift - 1)) - 1, 255 * (1 << shift) + (1 << (shift - 1))]
    b = rng.integers(-(1 << 21), 1 << 21, 3).astype(np.float64)
    b[0] = 0
    return all(np.array_equal(_native.pixels(acc, b, shift, size, layout),
                              _pixels_numpy(acc.copy(), b, shift, size, layout))
               for layout in LAYOUTS for size in ((9, 14), (7, 13)))
