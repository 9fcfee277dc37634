"""Rate-distortion-optimised rounding (encoder/rounding.py): exact code lengths, real gains, same files."""

import numpy as np
from PIL import Image
import pytest

torch = pytest.importorskip("torch")

from encoder import rounding  # noqa: E402
from encoder.sga import EFFORT_ROUNDING, EFFORT_STEPS  # noqa: E402
from webdecoder import entropy  # noqa: E402


def test_code_lengths_add_up_to_the_real_streams(encoder):
    """Ideal bits per value (symbols and escapes) against what entropy.encode_values writes."""
    m = encoder.int_model
    freqs, offsets = np.asarray(m["y.freqs"]), np.asarray(m["y.offsets"])
    rng = np.random.default_rng(1)
    n_tables = offsets.size - 1
    tables = rng.integers(0, n_tables, 20000)
    r = entropy.half_ranges(offsets)[tables]
    values = np.round(rng.laplace(0, 1 + tables / 8)).astype(np.int64)
    values[::997] = r[::997] + rng.integers(1, 20000, values[::997].size)  # escapes of 1-3 varint bytes
    assert (np.abs(values) > r).sum() >= 20
    bits = rounding.code_lengths(values, tables, freqs, offsets)
    lanes = 4
    rans, esc = entropy.encode_values(values, tables, freqs, offsets, lanes)
    esc_bits = bits - rounding.code_lengths(np.clip(values, -r, r), tables, freqs, offsets)
    esc_bits += np.where(np.abs(values) > r, np.log2(freqs[offsets[tables] + 2 * r + 1] /
                                                     freqs[offsets[tables] + np.clip(values, -r, r) + r]), 0)
    assert 8 * len(esc) == pytest.approx(esc_bits.sum(), abs=1e-6)  # varint lengths exactly
    # the rANS stream: its ideal length, plus the lanes' final states, a word of slack per lane and the coder's
    # own small inefficiency (a 32-bit state with 16-bit words: ~0.1 % here)
    ideal = bits.sum() - 8 * len(esc)
    assert 0 <= 8 * len(rans) - ideal <= lanes * (32 + 16) + 0.002 * ideal


@pytest.fixture(scope="module")
def crop(kodak):
    return np.asarray(Image.open(kodak[0]).convert("RGB"))[192:320, 256:448]


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("quality", [1, 5])
def test_rounding_lowers_the_rd_cost_of_the_real_file(encoder, crop, depth, quality):
    import webdecoder

    nearest = encoder.encode(crop, quality, depth, effort="none")
    optimised = encoder.encode(crop, quality, depth, effort="light")
    assert webdecoder.decode(optimised).shape == crop.shape
    before, after = encoder.rd_cost(nearest, crop, quality), encoder.rd_cost(optimised, crop, quality)
    assert after < 0.995 * before, (after, before)


def test_rounding_after_sga_still_pays_and_is_deterministic(encoder, crop):
    y, z = encoder.latents(crop, 2, 2, 40)
    h, w = crop.shape[:2]
    plain = encoder.write(y, z, w, h, 2, 2)
    once = encoder.write(y, z, w, h, 2, 2, optimise_for=crop)
    assert once == encoder.write(y, z, w, h, 2, 2, optimise_for=crop)
    assert encoder.rd_cost(once, crop, 2) < encoder.rd_cost(plain, crop, 2)


def test_rounding_runs_under_inference_mode_and_on_tiny_images(encoder, crop):
    with torch.inference_mode():
        data = encoder.encode(crop[:37, :53], 3, 2, effort="light")
    assert encoder.rd_cost(data, crop[:37, :53], 3) < encoder.rd_cost(
        encoder.encode(crop[:37, :53], 3, 2, effort="none"), crop[:37, :53], 3)
    assert len(encoder.encode(crop[:1, :1], 3, 2, effort="light")) > 0


def test_presets_agree_everywhere():
    """The CLI's, the evaluation's and the encode endpoint's effort names are the encoder's presets."""
    from pathlib import Path
    import sys

    from bench.rd import NIC_EFFORTS
    from encoder.cli import build_parser

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "site"))  # nic_site, never `site`
    from nic_site import api

    assert api.EFFORT_STEPS == EFFORT_STEPS
    assert tuple(NIC_EFFORTS) == tuple(EFFORT_STEPS) == tuple(EFFORT_ROUNDING)
    encode = build_parser()._subparsers._group_actions[0].choices["encode"]
    effort = next(a for a in encode._actions if a.dest == "effort")
    assert tuple(effort.choices) == tuple(EFFORT_STEPS)
    assert not EFFORT_ROUNDING["none"] and all(EFFORT_ROUNDING[e] for e in EFFORT_STEPS if e != "none")
