"""Files encoded with an earlier default model keep decoding, to the same pixels, after a new model ships.

tests/data/legacy-<model id>-d<depth>.nic were encoded (kodim01 crop, quality 3, effort none) when that
model was the default; its decoder file now lives in models/legacy/ (or still in models/).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import webdecoder

DATA = Path(__file__).resolve().parent / "data"
# What each fixture decoded to when its model shipped: written by scripts/make_legacy_fixtures.py, which adds
# the new model's two entries and never touches the older ones.
PIXELS_SHA256: dict[str, str] = json.loads((DATA / "legacy-pixels.json").read_text())


@pytest.mark.parametrize("name", sorted(PIXELS_SHA256))
def test_legacy_file_decodes_to_its_original_pixels(name: str) -> None:
    data = (DATA / name).read_bytes()
    assert webdecoder.info(data)["model_id"] == name.split("-")[1]
    rgb = webdecoder.decode(data)
    assert rgb.shape == (96, 160, 3)
    assert hashlib.sha256(rgb.tobytes()).hexdigest() == PIXELS_SHA256[name]


def test_a_caller_supplied_digest_names_the_model_like_hashing_it() -> None:
    # The browser passes the SHA-256 it computed natively; the id must be the one hashlib gives.
    data = (Path(__file__).resolve().parents[1] / "models" / "nic.npz").read_bytes()
    digest = hashlib.sha256(data).digest()
    assert webdecoder.register_model(data, sha256=digest) == webdecoder.register_model(data) == digest[:8].hex()
    with pytest.raises(webdecoder.NicError, match="32 bytes, not 31"):
        webdecoder.register_model(data, sha256=digest[:31])


def test_every_legacy_fixture_has_its_pixel_hash() -> None:
    # A fixture written without its hash (or a hash without its file) would silently go unchecked.
    assert sorted(p.name for p in DATA.glob("legacy-*.nic")) == sorted(PIXELS_SHA256)
