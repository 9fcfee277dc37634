"""Speed paths of webdecoder give identical pixels: conv products with and without BLAS, hyper reuse after a preview.

Both carry integers in float64 with every partial sum below 2^53, so any summation order is exact; these
tests pin that down on the worst-case magnitudes the format allows and on real files, in CPython, by
forcing the einsum path that Pyodide takes.
"""

from __future__ import annotations

import numpy as np
import pytest

import webdecoder
from webdecoder import conv


def _reference(a: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Straightforward scatter-add transposed conv in int64 (exact: sums stay far below 2^63)."""
    cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    full = np.zeros((cout, (h - 1) * stride + k, (wd - 1) * stride + k), np.int64)
    ai, wi = a.astype(np.int64), w.astype(np.int64)
    for y in range(h):
        for x in range(wd):
            patch = np.einsum("c,cokl->okl", ai[:, y, x], wi)
            full[:, y * stride : y * stride + k, x * stride : x * stride + k] += patch
    return full[:, pad : pad + stride * h, pad : pad + stride * wd]


@pytest.mark.parametrize("no_blas", [False, True])
@pytest.mark.parametrize(("cin", "cout", "k", "s", "pad"),
                         [(5, 4, 5, 2, 2), (6, 3, 3, 1, 1), (7, 2, 13, 8, 3), (70, 3, 3, 1, 1),  # 70 > SHORT_K
                          (4, 40, 3, 1, 1), (3, 9, 3, 1, 0),  # Cin < Cout at stride 1: the gather path
                          (3, 2, 18, 16, 1), (2, 3, 4, 2, 0), (3, 2, 7, 2, 5), (64, 5, 5, 2, 2)])  # phase groups
def test_conv_transpose_exact_at_format_bounds(monkeypatch, no_blas, cin, cout, k, s, pad):
    monkeypatch.setattr(conv, "NO_BLAS", no_blas)
    rng = np.random.default_rng(cin * 100 + k)
    a = rng.integers(-(1 << 22), (1 << 22) + 1, (cin, 3, 4)).astype(np.float64)  # activations within +-2^22
    w = rng.integers(-(1 << 14) + 1, 1 << 14, (cin, cout, k, k)).astype(np.float64)  # weights below 2^14
    got = conv.conv_transpose(a, w, s, pad)
    assert got.shape == (cout, s * 3, s * 4)
    np.testing.assert_array_equal(got, _reference(a, w, s, pad))
    np.testing.assert_array_equal(conv.conv_transpose(a, w, s, pad, conv.weight_matrix(w)), got)


def test_decode_identical_with_and_without_blas(monkeypatch, small_files):
    want = {d: webdecoder.decode(data) for d, data in small_files.items()}
    monkeypatch.setattr(conv, "NO_BLAS", True)
    for d, data in small_files.items():
        np.testing.assert_array_equal(webdecoder.decode(data), want[d])
        np.testing.assert_array_equal(webdecoder.decode_preview(data[: webdecoder.preview_bytes(data)]).shape,
                                      want[d].shape)


def test_full_decode_after_preview_reuses_hyper_and_is_identical(small_files):
    from webdecoder import decoder

    for data in small_files.values():
        want = webdecoder.decode(data)
        n = webdecoder.preview_bytes(data)
        webdecoder.decode_preview(data[:n])
        assert decoder._last_hyper is not None
        timings: dict = {}
        np.testing.assert_array_equal(webdecoder.decode(data, timings=timings), want)
        assert decoder._last_hyper is None  # used once
        # A preview of another file must not leak into this one (key = model, size, lanes, z bytes).
        other = next(d for d in small_files.values() if d is not data)
        webdecoder.decode_preview(other[: webdecoder.preview_bytes(other)])
        np.testing.assert_array_equal(webdecoder.decode(data), want)


def test_shipped_model_latent_fits_int16(encoder, kodak, monkeypatch):
    """What makes the browser's largest product one int16 pass: the shipped model's synthesis input stays
    within 15 bits on whole Kodak images at the top quality, with and without iterative encoding."""
    import numpy as np
    from PIL import Image

    from webdecoder import decoder, synthesis

    seen = []

    def spy(model, q, means, quality, narrow=False):
        x = synthesis.latent_input(model, q, means, quality, narrow)
        seen.append(int(np.abs(x).max()))
        return x

    monkeypatch.setattr(decoder, "latent_input", spy)
    top = encoder.int_model.qualities - 1
    for path in kodak[:3]:
        decoder.decode(encoder.encode(np.asarray(Image.open(path).convert("RGB")), top, 2, effort="none"))
    crop = np.asarray(Image.open(kodak[0]).convert("RGB"))[:128, :192]
    decoder.decode(encoder.encode(crop, top, 2, effort="fast"))
    assert len(seen) == 4 and max(seen) < 1 << 15, seen
    # ... and within Winograd's bound, so the browser's k13/s8 layer takes the 0.65x path (webdecoder/winograd.py) and
    # gets the latent as int16 (synthesis.latent_input's narrow)
    from webdecoder import winograd

    assert max(seen) <= winograd.MAX_INPUT, seen


def _winograd_numpy(a: np.ndarray, w: np.ndarray, s: int, pad: int) -> np.ndarray:
    """The arithmetic of winograd.convt's plan in NumPy int64 (what nic_wino_data and nic_wino_convt compute in
    wasm): per-axis value / difference transforms of the input, one product per term, summed into the outputs
    of its mask."""
    from webdecoder import winograd

    plan = winograd._make_plan(w, s, pad)
    assert plan is not None
    cin, h, wd = a.shape
    cout = w.shape[1]
    th, tw = -(-h // 2), -(-wd // 2)
    b = plan.border
    ap = np.zeros((cin, 2 * th + 2 * b + 1, 2 * tw + 2 * b + 1), np.int64)
    ap[:, b : b + h, b : b + wd] = a

    def rows(kind: int, j: int, axis: int) -> np.ndarray:
        take = lambda off: np.take(ap, np.arange(th if axis == 1 else tw) * 2 + b + off, axis=axis)  # noqa: E731
        return take(j) if kind == 0 else take(j + 1) - take(j)

    nd = len(plan.desc)
    data = {}
    for iy, (ky, jy) in enumerate(plan.desc):
        ry = rows(ky, jy, 1)[:, :, :]  # (cin, th, width)
        for ix, (kx, jx) in enumerate(plan.desc):
            t = np.take(ry, np.arange(tw) * 2 + b + jx + (1 if kx else 0), axis=2)
            if kx:
                t = t - np.take(ry, np.arange(tw) * 2 + b + jx, axis=2)
            data[iy * nd + ix] = t.reshape(cin, -1)  # (cin, tiles)
    w16 = winograd.natural_rows(plan.w16)[:, :cin].astype(np.int64)
    out = np.zeros((cout, th, 2 * s, tw, 2 * s), np.int64)
    for u in range(len(plan.py)):
        for t in range(plan.tstart[u], plan.tstart[u + 1]):
            prod = (w16[t * cout : (t + 1) * cout] @ data[plan.combo[t]]).reshape(cout, th, tw)
            for o in range(4):
                if plan.mask[t] >> o & 1:
                    out[:, :, (o >> 1) * s + plan.py[u], :, (o & 1) * s + plan.px[u]] += prod
    return out.reshape(cout, 2 * s * th, 2 * s * tw)[:, : s * h, : s * wd]


@pytest.mark.parametrize(("h", "wd"), [(1, 1), (2, 3), (3, 4), (4, 6), (5, 5)])
def test_winograd_plan_equals_the_transposed_conv(h, wd):
    """The browser's k13/s8 Winograd path (webdecoder/winograd.py) computes the transposed conv exactly: its plan's
    transforms, products and output masks, replayed in NumPy int64, against the scatter-add reference, at the
    path's bounds (inputs within 2^13, weights whose 4-term sums fit int16), odd and even sizes (padded tiles)."""
    from webdecoder import winograd

    rng = np.random.default_rng(h * 10 + wd)
    a = rng.integers(-winograd.MAX_INPUT, winograd.MAX_INPUT + 1, (9, h, wd)).astype(np.float64)
    w = rng.integers(-(1 << 13) // 4 + 1, (1 << 13) // 4, (9, 4, 13, 13)).astype(np.float64)
    assert np.array_equal(_winograd_numpy(a, w, 8, 3), _reference(a, w, 8, 3))


def test_winograd_plan_counts_and_declines():
    """F(2,2) does 110.25 products per input position and channel pair where the direct conv does 169 (k13/s8), and
    the plan declines where it would not pay (k18/s16: 11 % fewer), cannot apply (k > 2s) or pairs no channels."""
    from webdecoder import winograd

    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, (4, 2, 13, 13)).astype(np.float64)
    plan = winograd._make_plan(w, 8, 3)
    assert len(plan.combo) / 4 == 110.25 and len(plan.py) == 64 and plan.w16.shape == (441 * 2, 8)
    assert winograd._make_plan(rng.integers(-9, 9, (4, 2, 18, 18)).astype(np.float64), 16, 1) is None
    assert winograd._make_plan(rng.integers(-9, 9, (4, 2, 5, 5)).astype(np.float64), 2, 2) is None
    assert winograd._make_plan(w[:, :1].copy(), 8, 3) is None  # an odd channel count
    # The plan sums weights in int32: it declines what that could not hold exactly, rather than wrap or truncate
    assert winograd._make_plan(w + 0.5, 8, 3) is None
    big = w.copy()
    big[0, 0, 0, 0] = 1 << 30  # beyond int16 anyway, but its int32 sums would wrap back into range
    assert winograd._make_plan(big, 8, 3) is None
    # Plans of one (k, s, pad) share its layout, which no caller may change
    other = winograd._make_plan(w * 2, 8, 3)
    assert other.tstart is plan.tstart and not plan.combo.flags.writeable
    assert np.array_equal(other.w16, plan.w16 * 2)


def _wino3_numpy(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The arithmetic of wino3's plan in NumPy int64 (what nic_wino3_data and nic_wino3_conv compute in wasm): the
    B^T d B transforms of each 2x2 tile's 4x4 input patch, one product per term (its weights unpacked from the plan's
    int32 pairs, times its scale: the high/low split), summed per transform, then A^T M A, which is 4x the conv."""
    from webdecoder import wino3

    plan = wino3._make_plan(w, slice(0, w.shape[1]))
    assert plan is not None
    cin, h, wd = a.shape
    th, tw = -(-h // 2), -(-wd // 2)
    ap = np.zeros((cin, 2 * th + 2, 2 * tw + 2), np.int64)
    ap[:, 1 : 1 + h, 1 : 1 + wd] = a
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    patch = np.stack([np.stack([ap[:, i : i + 2 * th : 2, j : j + 2 * tw : 2] for j in range(4)], -1)
                      for i in range(4)], -2)  # (cin, th, tw, 4, 4): rows 2ty - 1 + i, columns 2tx - 1 + j
    v = np.einsum("ai,bj,ctsij->abcts", bt, bt, patch).reshape(16, cin, th * tw)
    lo = (plan.upk << 16 >> 16).astype(np.int64)  # the pairs' low halves, sign-extended, then the high halves
    hi = (plan.upk >> 16).astype(np.int64)
    wt = np.stack([lo, hi], -1).reshape(*plan.upk.shape[:2], -1)[:, :, :cin]  # (terms, cout, cin)
    m = np.zeros((16, w.shape[1], th * tw), np.int64)
    for t, combo in enumerate(plan.combo):
        m[combo] += int(plan.scale[t]) * (wt[t] @ v[combo])
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    out4 = np.einsum("ya,xb,abcn->cnyx", at, at, m.reshape(4, 4, -1, th * tw)).reshape(-1, th, tw, 2, 2)
    assert not np.any(out4 % 4)  # 4x the direct sums: exactly divisible
    out = (out4 // 4).transpose(0, 1, 3, 2, 4).reshape(-1, 2 * th, 2 * tw)
    return out[:, :h, :wd]


@pytest.mark.parametrize(("h", "wd"), [(1, 1), (2, 3), (5, 4), (6, 6)])
def test_wino3_plan_equals_the_3x3_layer(h, wd):
    """The browser's hyper-decoder 3x3 layer in F(2x2, 3x3) (webdecoder/wino3.py) computes the stride-1 transposed
    conv exactly: its plan (transformed weights, the high/low split of those beyond int16, the packed pairs),
    replayed in NumPy int64, against the scatter-add reference, at the path's bound (inputs within 2^13), with
    weights large enough to need the split, odd and even sizes."""
    from webdecoder import wino3

    rng = np.random.default_rng(h * 10 + wd)
    a = rng.integers(-wino3.MAX_INPUT, wino3.MAX_INPUT + 1, (11, h, wd)).astype(np.float64)
    w = rng.integers(-(1 << 11), 1 << 11, (11, 6, 3, 3)).astype(np.float64)  # transforms within int16 ...
    w[:, 0] = rng.integers(-(1 << 14), 1 << 14, (11, 3, 3))  # ... but those of output channel 0 (up to 9 * 2^14)
    plan = wino3._make_plan(w, slice(0, 6))
    assert plan is not None and bool(np.any(plan.scale == wino3.HIGH_SCALE)) and len(plan.combo) > 16
    assert bool(plan.skip[16:, 1:].all()) and not plan.skip[:, 0].any()  # high terms: only the pair of channel 0
    assert np.array_equal(_wino3_numpy(a, w), _reference(a, w, 1, 1))


@pytest.mark.parametrize("band_cols", [conv.PHASE_BAND_COLS, 7, 14])
@pytest.mark.parametrize(("cin", "k", "s", "pad"), [(6, 5, 2, 2), (7, 13, 8, 3), (2, 18, 16, 1), (3, 7, 2, 5)])
def test_phase_gather_equals_scatter(monkeypatch, cin, k, s, pad, band_cols):
    """CPython's phase-gathered transposed conv (few input channels) against the scatter form it replaces,
    on one phase group (5x5/s2, pad 2) and on several (k13/s8 pad 3: phases 0-4 and 5-7 read different rows),
    in one band of input rows, in bands of 1 row (7 columns) and in bands of 2 rows, the last one overhanging
    the 5 rows (its extra row reads the zero border and is cropped)."""
    monkeypatch.setattr(conv, "NO_BLAS", False)
    monkeypatch.setattr(conv, "PHASE_BAND_COLS", band_cols)
    rng = np.random.default_rng(k * 10 + s)
    a = rng.integers(-(1 << 22), (1 << 22) + 1, (cin, 5, 7)).astype(np.float64)
    w = rng.integers(-(1 << 14) + 1, 1 << 14, (cin, 3, k, k)).astype(np.float64)
    got = conv._conv_phases(a, w, s, pad)
    monkeypatch.setattr(conv, "PHASE_MAX_CIN", 0)
    np.testing.assert_array_equal(got, conv.conv_transpose(a, w, s, pad))
    np.testing.assert_array_equal(got, _reference(a, w, s, pad))


def test_phase_gather_buffers_never_alias(monkeypatch):
    """Its output and its shifted copies are scratch buffers: with Cout*s*s == ceil(k/s)^2*Cin (here 12 = 12)
    the two have one shape, and must still be two buffers."""
    monkeypatch.setattr(conv, "NO_BLAS", False)
    rng = np.random.default_rng(7)
    a = rng.integers(-(1 << 13), 1 << 13, (3, 6, 5)).astype(np.float64)
    w = rng.integers(-(1 << 12), 1 << 12, (3, 3, 3, 3)).astype(np.float64)  # k3/s2: 2x2 taps, 3 ch -> 12 rows
    for _ in range(2):  # the second call finds both buffers cached
        np.testing.assert_array_equal(conv._conv_phases(a, w, 2, 1), _reference(a, w, 2, 1))


def test_rgba_output_is_the_rgb_decode_with_opaque_alpha(small_files):
    # The browser's worker asks for RGBA (a canvas's layout); it must carry exactly decode()'s pixels, cropped
    # from the padded planes the same way (96x160 decodes from 128x192 planes).
    for data in small_files.values():
        rgb = webdecoder.decode(data)
        rgba = webdecoder.decode(data, rgba=True)
        assert rgba.shape == (*rgb.shape[:2], 4) and rgba.dtype == np.uint8 and rgba.flags.c_contiguous
        np.testing.assert_array_equal(rgba[..., :3], rgb)
        assert (rgba[..., 3] == 255).all()
        head = data[: webdecoder.preview_bytes(data)]
        preview_rgba = webdecoder.decode_preview(head, rgba=True)
        np.testing.assert_array_equal(preview_rgba[..., :3], webdecoder.decode_preview(head))
        assert (preview_rgba[..., 3] == 255).all()


@pytest.mark.parametrize("band_cols", [conv.PHASE_BAND_COLS, 7, 14])
@pytest.mark.parametrize("layout", ["planes", "rgb", "rgba"])
def test_pixels_by_band_equal_conv_then_to_pixels(monkeypatch, layout, band_cols):
    """CPython's depth-2 output layer rounds each band of the phase-gathered product to uint8 as it goes
    (``synthesis._pixels_by_band``): the same pixels as the whole transposed conv followed by ``to_pixels``,
    in every layout, cropped and not, in one band and in several (the last one overhanging)."""
    from webdecoder import synthesis

    monkeypatch.setattr(conv, "PHASE_BAND_COLS", band_cols)
    rng = np.random.default_rng(band_cols)
    x = rng.integers(-(1 << 15), 1 << 15, (6, 5, 7)).astype(np.float64)
    w = rng.integers(-(1 << 13), 1 << 13, (6, 3, 5, 5)).astype(np.float64)
    b = rng.integers(-(1 << 20), 1 << 20, 3).astype(np.float64)
    shift = 22  # pixels spread over 0..255 with both clip ends hit
    for size in ((1, 1), (9, 13), (10, 14)):  # the last: whole, uncropped
        want = synthesis._pixels_numpy(conv._conv_phases(x, w, 2, 2), b, shift, size, layout)
        got = synthesis._pixels_by_band(x, w, 2, 2, b, shift, size, layout)
        assert got.flags.c_contiguous and got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    assert 0 < (want == 0).mean() and 0 < (want == 255).mean() and 0.2 < ((want > 0) & (want < 255)).mean()


def test_known_answers_are_the_numpy_references():
    """The digests that Pyodide's kernels must reproduce on their checks' inputs (``conv._phase_check``,
    ``conv._winograd_check``, ``winograd._plan_check``, ``wino3._plan_check``, ``synthesis._igdn16_check``, ...) are
    those of the NumPy references on the same inputs: made again here, in CPython."""
    from webdecoder import known_answers as known
    from webdecoder import wino3, winograd

    ref = [conv._numpy_convt(a, w, conv.weight_matrix(w), s, pad) for a, w, s, pad in conv.phase_check_cases()]
    assert known.digest(ref) == known.PHASE
    ref = [conv._numpy_convt(a, w, conv.weight_matrix(w), 8, 3) for a, w in conv.winograd_check_cases()]
    assert known.digest(ref) == known.WINOGRAD
    lay = winograd._layout(13, 8, 3)
    plans = [winograd._plan_weights(w, lay, kp) for w, kp in winograd.plan_check_cases()]
    assert known.digest(a for p in plans for a in p) == known.WINOGRAD_PLAN
    plans3 = [wino3._plan_numpy(w, rows) for w, rows in wino3.plan_check_cases()]
    assert [len(p.combo) for p in plans3] == [32, 16, 27]  # every transform split, none, some
    assert any(p.skip[16:].any() and not p.skip[16:].all() for p in plans3)  # high parts zero in some blocks only
    assert known.digest(a for p in plans3 for a in p) == known.WINO3_PLAN
    from webdecoder import hyper, synthesis
    from webdecoder._native import W3_ROWS
    from webdecoder.tables import scale_index

    outs = []
    for (a, w, b, b_lut), (_, cout, *_) in zip(hyper.wino3_check_cases(), hyper.WINO3_CHECK, strict=True):
        acc = conv._numpy_convt(a, w, conv.weight_matrix(w), 1, 1)
        want = conv._requantize_numpy(acc, 11, hyper.ACT_LIMIT, None, b, False)
        outs += [want, want, want[:W3_ROWS], want[W3_ROWS:cout]]
        outs.append(scale_index(conv._requantize_numpy(acc, 19, hyper.ACT_LIMIT, None, b_lut, False).astype(np.int64)))
    assert known.digest(outs) == known.WINO3
    outs, biases = [], []
    for a, w, b in synthesis.direct_pixels_check_cases():
        acc = conv._numpy_convt(a, w, conv.weight_matrix(w), 2, 2)
        biases.append(((1 << 12) - acc[0, 1, 0], -acc[1].max() - (1 << 13), 300 * (1 << 13) - acc[-1].min()))
        h, wd = a.shape[1:]
        for row0, crop_h, crop_w, layout in synthesis.PIXEL_CHECK_ROWS:
            size = (2 if crop_h is None else 2 * h - crop_h), 2 * wd - crop_w
            outs.append(synthesis._pixels_numpy(acc[:, row0:].copy(), b, 13, size, layout))
        assert outs[-3][1, 0, 0] in (0, 1) and not outs[-3][..., 1].any() and (outs[-3][..., -1] == 255).all()
    assert biases == [tuple(map(float, x)) for x in known.DIRECT_PIXELS_BIASES]
    assert known.digest(outs) == known.DIRECT_PIXELS
    outs = []
    for acc, b, gamma, beta in synthesis.igdn16_check_cases():
        want = synthesis._hidden_numpy(acc.astype(np.float64), b, gamma, beta, synthesis.IGDN16_SHIFTS)
        # within int16 (the kernel's output), channel 0 through the kernel's int64 path (|u| past its int32 bound)
        assert np.abs(want).max() < 1 << 15 and np.abs(want[0]).max() > 1 << 10
        assert np.abs(acc[0]).max() >> synthesis.IGDN16_SHIFTS[0] > 1 << 20
        outs += [synthesis.pairs16(want, 5, 2).ravel(), np.array([np.abs(want).max()])]
    assert known.digest(outs) == known.IGDN16
    # A digest tells integers apart, not the sign of a zero
    assert known.digest([np.array([0.0, -0.0])]) == known.digest([np.zeros(2, np.int8)])
    assert known.digest([np.array([1.0, 0.0])]) != known.digest([np.array([0.0, 1.0])])
