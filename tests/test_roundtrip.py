"""Encode -> decode on real photos and awkward inputs."""

import io

import numpy as np
from PIL import Image
import pytest

from encoder.image import ImageError, to_rgb
import webdecoder

# PSNR floors (dB) per quality on the centre of kodim23 with effort "none", measured on the shipped model
# minus a 0.5 dB margin (see BENCHMARKS.md for the figures they come from).
PSNR_FLOOR = {1: [27.9, 29.4, 30.7, 32.1, 33.4, 34.5, 35.5, 36.2], 2: [28.0, 29.5, 30.9, 32.3, 33.7, 34.8, 35.8, 36.6]}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


@pytest.mark.parametrize("depth", [1, 2])
def test_psnr_floor_and_rate_order_per_quality(encoder, kodak, depth):
    # the 256x384 centre of kodim23 keeps the test quick on two cores
    img = np.asarray(Image.open([p for p in kodak if p.name == "kodim23.png"][0]).convert("RGB"))[128:384, 192:576]
    sizes = []
    for q in range(encoder.qualities):
        data = encoder.encode(img, q, depth, effort="none")
        header: dict = {}
        out = webdecoder.decode(data, header=header)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert psnr(out, img) >= PSNR_FLOOR[depth][q], (q, psnr(out, img))
        info = webdecoder.info(data)
        assert (info["quality"], info["depth"], info["bytes"]) == (q, depth, len(data))
        assert header == info  # the browser's worker reports these from the decode's own parse
        sizes.append(len(data))
    assert sizes == sorted(sizes)  # higher quality, more bytes


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (17, 33), (65, 129), (64, 64), (5, 700)])
def test_odd_sizes(encoder, kodak, shape):
    src = np.asarray(Image.open(kodak[0]).convert("RGB"))
    img = src[: shape[0], : shape[1]]
    out = webdecoder.decode(encoder.encode(img, 6, 2, effort="none"))
    assert out.shape == img.shape
    if min(shape) > 8:
        assert psnr(out, img) > 20


def test_grayscale_16bit_rgba_palette_inputs(encoder, kodak):
    rgb = np.asarray(Image.open(kodak[0]).convert("RGB"))[:64, :96]
    gray = Image.fromarray(rgb).convert("L")
    out = webdecoder.decode(encoder.encode(gray, 6, 2, effort="none"))
    assert out.shape == (64, 96, 3)
    # An RGB codec does not force equal channels, but a grey input must come back nearly grey
    # (observed 3.2 levels of mean |R - B| on this crop at quality 6; colour photos give ~20).
    assert np.abs(out.astype(int)[..., 0] - out[..., 2]).mean() < 6
    g16 = (rgb.astype(np.uint16) * 257)
    assert np.array_equal(to_rgb(g16), rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 0, np.uint8)])
    assert np.all(to_rgb(rgba) == 255)  # fully transparent -> composited onto white
    pal = Image.fromarray(rgb).convert("P")
    assert to_rgb(pal).shape == rgb.shape


def test_exif_orientation_is_honoured(encoder, kodak):
    rgb = np.asarray(Image.open(kodak[0]).convert("RGB"))[:32, :64]
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    buf.seek(0)
    assert to_rgb(Image.open(buf)).shape == (64, 32, 3)


def test_bad_images_raise_image_error():
    with pytest.raises(ImageError):
        to_rgb(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError):
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        to_rgb(np.zeros((4, 4, 3), np.float32))


def test_sga_lowers_the_rd_cost(encoder, kodak):
    img = np.asarray(Image.open(kodak[0]).convert("RGB"))[:128, :128]
    lam = encoder.model.cfg.lambdas[3]

    def cost(data: bytes) -> float:
        out = webdecoder.decode(data)
        return 8 * len(data) / img[..., 0].size + lam * np.mean((out.astype(float) - img) ** 2)

    base = cost(encoder.encode(img, 3, 2, effort="none"))
    refined = cost(encoder.encode(img, 3, 2, sga_steps=150))
    assert refined < base


def test_compact_lanes_same_pixels_fewer_bytes(encoder, kodak):
    """lanes="compact": the fewest lanes the format allows; same latents, so the same pixels, in fewer bytes."""
    from encoder.codec import min_lanes

    img = np.asarray(Image.open([p for p in kodak if p.name == "kodim23.png"][0]).convert("RGB"))[128:384, 192:576]
    symbols = 192 * (256 // 16) * (384 // 16)  # y's latent: 192 channels at 1/16 resolution
    for q in (0, 7):
        auto = encoder.encode(img, q, 2, effort="none")
        compact = encoder.encode(img, q, 2, effort="none", lanes="compact")
        y_auto, y_compact = webdecoder.info(auto)["y_lanes"], webdecoder.info(compact)["y_lanes"]
        assert y_compact == min_lanes(symbols) == 5 and y_auto > y_compact, (y_auto, y_compact)
        assert len(compact) < len(auto), (q, len(compact), len(auto))
        assert np.array_equal(webdecoder.decode(compact), webdecoder.decode(auto))
    with pytest.raises(ValueError, match="lanes must be one of auto, compact"):
        encoder.encode(img[:16, :16], 0, 2, effort="none", lanes="few")


def test_auto_lanes_follow_the_stream_size_smoothly(encoder, kodak):
    """lanes="auto": about one lane per BYTES_PER_LANE bytes of the y stream at every size, not a power of
    two (which gave a stream just under a step half the lanes, and CPython twice the decode steps)."""
    from encoder.codec import BYTES_PER_LANE

    img = np.asarray(Image.open([p for p in kodak if p.name == "kodim23.png"][0]).convert("RGB"))
    per_lane = []
    for q in range(8):
        data = encoder.encode(img, q, 2, effort="none")
        per_lane.append(len(data) / webdecoder.info(data)["y_lanes"])  # the whole file: z and header are ~5 %
    assert all(0.9 * BYTES_PER_LANE < b < 1.3 * BYTES_PER_LANE for b in per_lane), per_lane
