"""Files encoded with an earlier default model keep decoding, to the same pixels, after a new model ships.

tests/data/legacy-<model id>-d<depth>.nic were encoded (kodim01 crop, quality 3, effort none) when that
model was the default; its decoder file now lives in models/legacy/ (or still in models/).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import webdecoder

DATA = Path(__file__).resolve().parent / "data"
PIXELS_SHA256 = {
    "legacy-8b2f244bdee48d9d-d1.nic": "07ce45f2eb227b2046dead92f84c7371a782be06e848675680ad65ac351a6351",
    "legacy-8b2f244bdee48d9d-d2.nic": "aa102020b9f76badd57f4e862a4780b242934fce4cc1e180594c4608d4f0f208",
    "legacy-cc3f600bc9358f1a-d1.nic": "555bc697cf74a7bad91933eab252fc698fce5a9cda1d03dd9af09b414f4d647f",
    "legacy-cc3f600bc9358f1a-d2.nic": "03f9d2c7b579e0584d2ee5523e0869ce14849735463f12ede13c7a85e4f5d2f1",
    "legacy-481e07352bef9b63-d1.nic": "5c20580da8e72ce45bd2a3e66687e1b1c5b622e4c41cb1fae1a9b0905dd5ecc1",
    "legacy-481e07352bef9b63-d2.nic": "0f4ac6ae9a16de8ce07df2e997d09c68883663cfddda0bbe0d4d2a8e1512b256",
    "legacy-40807f5896c809cd-d1.nic": "c01dffeb1ff34d5e397a665603309fd6c83b7a2c215545cd6ca61a2f32376b51",
    "legacy-40807f5896c809cd-d2.nic": "bcc0ce6917d11e75a91ce963d4d796df5bf98c865afa78974dda83f8a3e9304a",
    "legacy-c70e283cb922a40b-d1.nic": "6aec1adf48ac2eba0f2fe7dc3b540f1b9d4c2a32c1f9ef1bcf3ac0be5a5c6a07",
    "legacy-c70e283cb922a40b-d2.nic": "ce963ca49cda704f99d6eaf3a86ae46559435505c5f8d957343240ddf1319c0b",
    "legacy-000f4481292a753a-d1.nic": "eaba1a7e16b2a3925105fe15d8f22248ebb7be97ce138f131ad4d6535329f6b5",
    "legacy-000f4481292a753a-d2.nic": "81e23dedf35994dfd2e35dc5fe0c5764c114659c355872176fe949010809f1fd",
    "legacy-24a5bf8e9acb2627-d1.nic": "98b81eedfe3cf6b2031341a367e57a14a84576e554d935b67fdd6256137ad025",
    "legacy-24a5bf8e9acb2627-d2.nic": "4c92aab6584230b56e5d05a5a42751de1895e7e6c0fdd35a081a49c0c740a024",
    "legacy-324e8e02b86009d3-d1.nic": "aa961fbd141578dcd613b3dc7b6f5b5d7e409a50a684743bfe6a64b50b15af08",
    "legacy-324e8e02b86009d3-d2.nic": "b58a1ca5da442176954c337867e19662da444e9f9872d3be66a201028e8c3000",
    "legacy-c4979eba9c116d7c-d1.nic": "beaf36b52d497b2fc68e3d80684cd56d35df967f96a12565591de182b8abef49",
    "legacy-c4979eba9c116d7c-d2.nic": "4ed9b6f06f2709e53b62047c51d209fc3cdf0cbb84b0218274cdbd9b8170c5e3",
    "legacy-af80068bed255420-d1.nic": "63863095ab5eb09dbb51b99356f2b99b6ced8255c22fd802fa16393e9e56846d",
    "legacy-af80068bed255420-d2.nic": "c9befb61a58ac9d4c332ee92afec3b792252ed002221f1c7d874e03d46bd5317",
}


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
