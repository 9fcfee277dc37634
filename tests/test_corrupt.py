"""Hostile and broken files: always NicError with a clear message, never a hang or a crash."""

import struct
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

import webdecoder
from webdecoder import NicError, format

HEADER = format.HEADER_SIZE


def with_crc(data: bytes) -> bytes:
    """Fix up the CRC so that corruption reaches the entropy decoder and beyond."""
    b = bytearray(data)
    b[44:48] = struct.pack("<I", zlib.crc32(bytes(b[HEADER:]), zlib.crc32(bytes(b[:44]))))
    return bytes(b)


def assert_rejected_or_decoded(data: bytes) -> None:
    try:
        out = webdecoder.decode(data)
    except NicError as e:
        assert str(e)  # a message that says what is wrong
    else:  # a corruption the format cannot detect must still give a well-formed image
        assert out.dtype == np.uint8 and out.ndim == 3


def test_every_truncation_is_rejected(small_files):
    data = small_files[2]
    for n in range(len(data)):
        with pytest.raises(NicError):
            webdecoder.decode(data[:n])


def test_trailing_bytes_are_rejected(small_files):
    with pytest.raises(NicError, match="truncated or padded"):
        webdecoder.decode(small_files[1] + b"\0")


def test_every_single_bit_flip_is_caught(small_files):
    data = small_files[1]
    rng = np.random.default_rng(0)
    for pos in list(range(HEADER)) + rng.integers(HEADER, len(data), 200).tolist():
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(NicError):
            webdecoder.decode(bytes(bad))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_payload_corruption_behind_a_valid_crc(small_files, data):
    """Garbage that passes the CRC reaches rANS, escapes and the hyper-decoder."""
    f = bytearray(small_files[data.draw(st.sampled_from([1, 2]))])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(HEADER, len(f) - 1))
        f[pos] = data.draw(st.integers(0, 255))
    assert_rejected_or_decoded(with_crc(bytes(f)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(blob):
    with pytest.raises(NicError):
        webdecoder.decode(blob)
    with pytest.raises(NicError):
        webdecoder.decode(format.MAGIC + blob)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", 0, "outside"), ("height", 9000, "outside"), ("width", 8192, "exceeds"),
        ("z_lanes", 0, "lane"), ("y_lanes", 5000, "lane"), ("depth", 3, "depth"),
        ("quality", 200, "quality"), ("model_id", b"\xff" * 8, "unknown model"),
        ("mac_per_px", 1, "decode cost"), ("y_rans_len", 2**31, "stream lengths"),
        ("version", 2, "version"), ("precision", 12, "precision"),
    ],
)
def test_hostile_header_fields(small_files, field, value, message):
    data = small_files[2]
    names = ["magic", "version", "depth", "quality", "precision", "width", "height", "z_lanes", "y_lanes",
             "model_id", "mac_per_px", "z_rans_len", "z_esc_len", "y_rans_len", "y_esc_len", "crc32"]
    fields = dict(zip(names, format.HEADER.unpack_from(data), strict=True))
    fields[field] = value
    if field == "width":
        fields["height"] = 8192 if value == 8192 else fields["height"]
    bad = with_crc(format.HEADER.pack(*fields.values()) + data[HEADER:])
    with pytest.raises(NicError, match=message):
        webdecoder.decode(bad)


def test_huge_dimensions_do_not_allocate(small_files):
    """A 48-byte header claiming 4096x4096 with empty streams fails before any big allocation."""
    names = format.HEADER.unpack_from(small_files[1])
    fields = list(names)
    fields[5], fields[6] = 4096, 4096
    bad = with_crc(format.HEADER.pack(*fields) + small_files[1][HEADER:])
    with pytest.raises(NicError):
        webdecoder.decode(bad)


def test_not_bytes():
    with pytest.raises(NicError, match="expected bytes"):
        webdecoder.decode("hello")
